"""DCLM pipeline YAML: a list of `{source, steps}`; a step is `commit` or `{func, **kwargs, _aggregate?}`.

Steps are validated up front (unknown funcs and unknown kwargs are one-line errors with close matches) and
cut into chunks the way DCLM's Ray driver does: runs of local steps alternate with single global steps.
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import inspect
import os
from dataclasses import dataclass, field
from typing import Any, Callable

import orjson
import yaml

from dclm import mappers
from dclm.errors import DclmError

COMMIT = "commit"
GLOBAL_FUNCS = ("exact_dedup",)


@dataclass(frozen=True)
class Step:
    index: int
    func: str  # registry name / dotted path, or "commit"
    kwargs: dict = field(default_factory=dict)
    aggregate: dict = field(default_factory=dict)

    @property
    def is_commit(self) -> bool:
        return self.func == COMMIT

    @property
    def is_global(self) -> bool:
        return self.func in GLOBAL_FUNCS


@dataclass(frozen=True)
class Chunk:
    index: int
    steps: tuple[Step, ...]

    @property
    def is_global(self) -> bool:
        return len(self.steps) == 1 and self.steps[0].is_global


@dataclass(frozen=True)
class Pipeline:
    name: str  # yaml basename, names the output folder
    source: str
    steps: tuple[Step, ...]
    config_path: str

    @property
    def chunks(self) -> list[Chunk]:
        chunks: list[Chunk] = []
        run: list[Step] = []
        for step in self.steps:
            if step.is_global:
                if run:
                    chunks.append(Chunk(len(chunks), tuple(run)))
                    run = []
                chunks.append(Chunk(len(chunks), (step,)))
            else:
                run.append(step)
        if run:
            chunks.append(Chunk(len(chunks), tuple(run)))
        return chunks


def steps_digest(steps) -> str:
    """A digest of step specs, stored with commits so a resume with a changed YAML is refused."""
    spec = [[s.func, s.kwargs, s.aggregate] for s in steps]
    return hashlib.sha256(orjson.dumps(spec, option=orjson.OPT_SORT_KEYS, default=str)).hexdigest()[:16]


def load_pipeline(config: str, source_name: str | None = None, base_dir: str | None = None) -> Pipeline:
    from dclm.configs import resolve_config

    path = str(resolve_config(config))
    try:
        with open(path, encoding="utf-8") as f:
            raw = yaml.safe_load(f)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise DclmError(f"bad YAML in {path}{where}: {problem}") from None
    except OSError as e:
        raise DclmError(f"cannot read config {path}: {e.strerror}") from None
    if not isinstance(raw, list) or not raw or not all(isinstance(e, dict) and "source" in e and "steps" in e for e in raw):
        raise DclmError(f"{path}: expected a list of {{source, steps}} entries")
    by_source = {str(e["source"]): e["steps"] for e in raw}
    if source_name is None:
        if len(by_source) > 1:
            raise DclmError(f"{path} has several sources ({', '.join(by_source)}); pick one with --source-name")
        source_name = next(iter(by_source))
    if source_name not in by_source:
        raise DclmError(f"{path}: no source {source_name!r} (sources: {', '.join(by_source)})")
    steps = parse_steps(by_source[source_name], path, base_dir)
    name = os.path.splitext(os.path.basename(path))[0]
    return Pipeline(name=name, source=source_name, steps=tuple(steps), config_path=os.path.abspath(path))


def parse_steps(raw_steps: Any, where: str = "config", base_dir: str | None = None) -> list[Step]:
    if not isinstance(raw_steps, list) or not raw_steps:
        raise DclmError(f"{where}: 'steps' must be a non-empty list")
    steps: list[Step] = []
    for i, raw in enumerate(raw_steps):
        if raw == COMMIT:
            steps.append(Step(i, COMMIT))
            continue
        if not isinstance(raw, dict) or "func" not in raw:
            raise DclmError(f"{where}: step {i + 1} must be 'commit' or a mapping with 'func'")
        func = str(raw["func"])
        kwargs = {k: v for k, v in raw.items() if k != "func" and not k.startswith("_")}
        aggregate = raw.get("_aggregate") or {}
        if not isinstance(aggregate, dict):
            raise DclmError(f"{where}: step {i + 1} ({func}): _aggregate must be a mapping")
        step = Step(i, func, kwargs, aggregate)
        if step.is_global:
            if not steps or all(s.is_commit for s in steps):
                raise DclmError(f"{where}: the first step cannot be the global step {func!r}")
            _check_global_kwargs(step, where)
        else:
            _check_kwargs(resolve(func, base_dir), step, where)
            from dclm.process.aggregators import make_aggregator

            for key, spec in aggregate.items():
                make_aggregator(key, spec)
        steps.append(step)
    return steps


def resolve(func: str, base_dir: str | None = None) -> Callable:
    return mappers.get(func, base_dir=base_dir)


def _accepted(fn: Callable, skip_first: bool) -> tuple[set[str], bool]:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return set(), True
    params = list(sig.parameters.values())
    if skip_first and params:
        params = params[1:]
    var_kw = any(p.kind is p.VAR_KEYWORD for p in params)
    names = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    return names, var_kw


def _check_kwargs(fn: Callable, step: Step, where: str) -> None:
    names, var_kw = _accepted(fn, skip_first=not mappers.is_factory(fn))
    if var_kw:
        return
    for key in step.kwargs:
        if key not in names:
            close = difflib.get_close_matches(key, sorted(names), n=2, cutoff=0.6)
            hint = f" (did you mean {', '.join(close)}?)" if close else f" (accepted: {', '.join(sorted(names)) or 'none'})"
            raise DclmError(f"{where}: step {step.index + 1} ({step.func}): unknown argument {key!r}{hint}")


def _check_global_kwargs(step: Step, where: str) -> None:
    from dclm.process.global_steps import GLOBAL_ARGS

    allowed = GLOBAL_ARGS[step.func]
    for key in step.kwargs:
        if key not in allowed:
            close = difflib.get_close_matches(key, allowed, n=2, cutoff=0.6)
            hint = f" (did you mean {', '.join(close)}?)" if close else f" (accepted: {', '.join(allowed)})"
            raise DclmError(f"{where}: step {step.index + 1} ({step.func}): unknown argument {key!r}{hint}")


def build_mapper(step: Step, base_dir: str | None = None) -> Callable:
    """The per-page callable for a local step: factories are called once, plain mappers get kwargs bound."""
    fn = resolve(step.func, base_dir)
    if mappers.is_factory(fn):
        try:
            return fn(**step.kwargs)
        except DclmError:
            raise
        except Exception as e:
            raise DclmError(f"step {step.index + 1} ({step.func}): setup failed: {e.__class__.__name__}: {e}") from None
    return functools.partial(fn, **step.kwargs) if step.kwargs else fn
