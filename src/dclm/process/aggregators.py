"""DCLM's `_aggregate` step options (baselines/aggregators.py): percentiles, histogram, threshold_transform."""

from __future__ import annotations

from collections import Counter
from typing import Any, Callable

import numpy as np

from dclm.errors import DclmError


def percentiles(values: list) -> dict:
    """min, max, median, p25/p75/p90/p95/p99 (numpy 'nearest') and mean."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0:
        return {}
    q = {"p25": 25, "median": 50, "p75": 75, "p90": 90, "p95": 95, "p99": 99}
    out = {"min": float(arr.min()), "max": float(arr.max())}
    for name, p in q.items():
        out[name] = float(np.percentile(arr, p, method="nearest"))
    out["mean"] = float(arr.mean())
    return out


def histogram(values: list) -> dict:
    """Counts per value for strings, else a 10-bin histogram keyed by each bin's left edge."""
    if not values:
        return {}
    if all(isinstance(v, str) for v in values):
        return dict(sorted(Counter(values).items()))
    counts, edges = np.histogram(np.asarray(values, dtype=np.float64), bins=10)
    return {repr(float(edge)): int(c) for edge, c in zip(edges[:-1], counts)}


def threshold_transform(d: dict, threshold: float, default: str = "unknown") -> Any:
    """Drop entries below `threshold`, then return the key of the largest remaining value (or `default`)."""
    kept = {k: v for k, v in d.items() if v >= threshold}
    if not kept:
        return default
    return max(kept, key=kept.get)


AGGREGATORS: dict[str, Callable[[list], Any]] = {"percentiles": percentiles, "histogram": histogram}
TRANSFORMS: dict[str, Callable[..., Any]] = {"threshold_transform": threshold_transform}


def make_aggregator(key: str, spec: Any) -> Callable[[list], Any]:
    """Turn one `_aggregate` entry (a type name, or {type, transform?, **transform kwargs}) into a function."""
    if isinstance(spec, str):
        spec = {"type": spec}
    if not isinstance(spec, dict) or "type" not in spec:
        raise DclmError(f"_aggregate.{key}: expected an aggregator name or a mapping with 'type'")
    spec = dict(spec)
    kind = spec.pop("type")
    if kind not in AGGREGATORS:
        raise DclmError(f"_aggregate.{key}: unknown type {kind!r} (choose from {', '.join(AGGREGATORS)})")
    agg = AGGREGATORS[kind]
    tname = spec.pop("transform", None)
    if tname is None:
        if spec:
            raise DclmError(f"_aggregate.{key}: options {sorted(spec)} need a 'transform'")
        return agg
    if tname not in TRANSFORMS:
        raise DclmError(f"_aggregate.{key}: unknown transform {tname!r} (choose from {', '.join(TRANSFORMS)})")
    transform = TRANSFORMS[tname]
    return lambda values: agg([transform(v, **spec) for v in values])
