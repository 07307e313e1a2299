"""CORE / EXTENDED and the other aggregates of a DCLM eval JSON, from `eval_metrics.icl` alone.

Follows DCLM's eval/aggregated_metrics.py (spec §7.3): centered score c = (acc - b/100) / (1 - b/100) with
the task's random baseline b in percent. Means over a list skip the tasks that are absent (pandas' NaN
skipping there), while Core_* / Extended_* become "N/A due to missing tasks: [...]" when any of their tasks
is absent. v2 baselines are the current ones (unversioned Core/Extended = v2); v1 are DCLM's older table.
Tasks in `icl` that DCLM does not list are ignored, as DCLM's `.map` ignores them.
"""

from __future__ import annotations

from statistics import fmean

from dclm.errors import DclmError
from dclm.eval.tables import AGGREGATION_LISTS, TASKS

VERSIONS = ("v1", "v2")


def centered(acc: float, baseline_percent: float) -> float:
    b = baseline_percent / 100.0
    return (acc - b) / (1.0 - b)


def _mean(values: list[float | None]) -> float | str:
    present = [v for v in values if v is not None]
    return fmean(present) if present else "N/A"


def aggregate(icl: dict[str, float]) -> dict:
    """Every aggregate field of a DCLM eval JSON (spec §1.6) computed from {task: accuracy}."""
    missing = [t for t in TASKS if t not in icl]
    baseline_col = {"v1": 1, "v2": 2}

    def cen(task: str, version: str = "v2") -> float | None:
        if task not in icl or task not in TASKS:
            return None
        return centered(float(icl[task]), TASKS[task][baseline_col[version]])

    out: dict = {"missing tasks": str(missing)}
    categories: dict[str, list[float | None]] = {}
    for task, (category, _, _) in TASKS.items():
        categories.setdefault(category, []).append(cen(task))
    out["aggregated_task_categories_centered"] = {c: _mean(v) for c, v in sorted(categories.items())}
    out["aggregated_centered_results"] = _mean([cen(t) for t in TASKS])
    out["aggregated_results"] = _mean([float(icl[t]) if t in icl else None for t in TASKS])
    for name, tasks in AGGREGATION_LISTS.items():
        members = [t for t in tasks if t in TASKS]
        out[name] = _mean([float(icl[t]) if t in icl else None for t in members])
        out[f"{name}_centered"] = _mean([cen(t) for t in members])
    core = AGGREGATION_LISTS["low_variance_datasets"]
    missing_core = [t for t in core if t not in icl]
    for version in VERSIONS:
        out[f"Core_{version}"] = (f"N/A due to missing tasks: {missing_core}" if missing_core
                                  else fmean(cen(t, version) for t in core))
        out[f"Extended_{version}"] = (f"N/A due to missing tasks: {missing}" if missing
                                      else fmean(cen(t, version) for t in TASKS))
    out["Core"], out["Extended"] = out["Core_v2"], out["Extended_v2"]
    out["eval_version"] = "v2"
    return out


def reaggregate(doc: dict) -> dict:
    """`doc` with every aggregate recomputed from its eval_metrics.icl (other fields kept)."""
    try:
        icl = doc["eval_metrics"]["icl"]
    except (KeyError, TypeError):
        raise DclmError("not a DCLM eval JSON: no eval_metrics.icl") from None
    if not isinstance(icl, dict):
        raise DclmError("not a DCLM eval JSON: eval_metrics.icl is not an object")
    return {**doc, **aggregate(icl)}
