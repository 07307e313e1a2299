"""Mixing YAML: which source each input file belongs to, and how often its contexts are repeated.

open_lm's format is accepted as is:

    sources:
      - source: COMMON_CRAWL
        markers: [common_crawl, cc_]      # first source whose marker is a substring of the file path wins
    sampling_frequencies:
      COMMON_CRAWL: 0.9233                # per context: floor(f) copies, one more with probability frac(f)

A source may also list `paths:` (files or folders, added to the inputs and matched before markers), and the
mix may give `weights:` (target token shares) instead of frequencies; then each source's frequency is
weight_share × target / tokens_of_source, where the target is `target_tokens` or, by default, the largest
total that needs no source repeated. Files matching no source belong to UNKNOWN.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import yaml

from dclm.errors import DclmError

UNKNOWN = "UNKNOWN"


@dataclass
class Mix:
    sources: list[dict] = field(default_factory=list)  # [{source, markers, paths}]
    frequencies: dict[str, float] | None = None
    weights: dict[str, float] | None = None
    target_tokens: int | None = None
    raw: dict | None = None  # the YAML as loaded, recorded as `sampling_yaml`

    @property
    def names(self) -> list[str]:
        return [s["source"] for s in self.sources]

    def extra_paths(self) -> list[str]:
        return [p for s in self.sources for p in s["paths"]]

    def source_of(self, url: str, from_paths: dict[str, str]) -> str:
        """The source of input file `url`: by the `paths:` it came from, else the first marker found in it."""
        if url in from_paths:
            return from_paths[url]
        for s in self.sources:
            if any(m in url for m in s["markers"]):
                return s["source"]
        return UNKNOWN

    def frequencies_for(self, tokens: dict[str, int]) -> dict[str, float]:
        """Repeat factor per source, given each source's tokens before mixing (contexts x seqlen)."""
        if self.frequencies is not None:
            missing = sorted(s for s in tokens if s not in self.frequencies)
            if missing:
                raise DclmError(f"mix: no sampling frequency for source(s) {', '.join(missing)} "
                                f"(add them to sampling_frequencies, e.g. {missing[0]}: 1.0)")
            return {s: float(self.frequencies[s]) for s in tokens}
        assert self.weights is not None
        missing = sorted(s for s in tokens if s not in self.weights)
        if missing:
            raise DclmError(f"mix: no weight for source(s) {', '.join(missing)}")
        active = {s: w for s, w in self.weights.items() if w > 0 and s in tokens}
        total_w = sum(active.values())
        if not active or total_w <= 0:
            raise DclmError("mix: every source with input has weight 0")
        empty = [s for s in active if tokens[s] == 0]
        if empty:
            raise DclmError(f"mix: source {empty[0]} has a positive weight but no tokens")
        target = self.target_tokens or min(tokens[s] * total_w / w for s, w in active.items())
        return {s: (active[s] / total_w * target / tokens[s]) if s in active else 0.0 for s in tokens}


def _str_list(v, what: str) -> list[str]:
    if v is None:
        return []
    if isinstance(v, str):
        return [v]
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise DclmError(f"mix: {what} must be a string or a list of strings")
    return list(v)


def _number_map(v, what: str) -> dict[str, float]:
    if not isinstance(v, dict):
        raise DclmError(f"mix: {what} must be a mapping of source name to number")
    out = {}
    for k, x in v.items():
        if isinstance(x, bool) or not isinstance(x, (int, float)) or x < 0 or not math.isfinite(x):
            raise DclmError(f"mix: {what}[{k}] must be a number >= 0, got {x!r}")
        out[str(k)] = float(x)
    return out


def load_mix(path: str) -> Mix:
    """Parse and check a mixing YAML; every problem is a one-line DclmError."""
    try:
        with open(path, encoding="utf-8") as f:
            raw = yaml.safe_load(f)
    except FileNotFoundError:
        raise DclmError(f"mix YAML not found: {path}") from None
    except yaml.YAMLError as e:
        raise DclmError(f"mix YAML {path} is not valid YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("sources"), list) or not raw["sources"]:
        raise DclmError(f"mix YAML {path}: expected a mapping with a non-empty `sources:` list")
    base = os.path.dirname(os.path.abspath(path))
    sources = []
    for i, s in enumerate(raw["sources"]):
        if not isinstance(s, dict) or not isinstance(s.get("source"), str):
            raise DclmError(f"mix YAML {path}: sources[{i}] needs a `source:` name")
        paths = [p if "://" in p or os.path.isabs(p) else os.path.join(base, p) for p in _str_list(s.get("paths"), "paths")]
        sources.append({"source": s["source"], "markers": _str_list(s.get("markers"), "markers"), "paths": paths})
    names = [s["source"] for s in sources]
    if len(set(names)) != len(names):
        raise DclmError(f"mix YAML {path}: duplicate source names")
    has_f, has_w = "sampling_frequencies" in raw, "weights" in raw
    if has_f == has_w:
        raise DclmError(f"mix YAML {path}: give exactly one of `sampling_frequencies` (repeat factors) or `weights`")
    target = raw.get("target_tokens")
    if target is not None and (not isinstance(target, int) or target <= 0):
        raise DclmError(f"mix YAML {path}: target_tokens must be a positive integer")
    return Mix(sources=sources,
               frequencies=_number_map(raw["sampling_frequencies"], "sampling_frequencies") if has_f else None,
               weights=_number_map(raw["weights"], "weights") if has_w else None,
               target_tokens=target, raw=raw)


def copies(rng, n: int, freq: float):
    """How many times each of `n` contexts is emitted: floor(f), plus one with probability frac(f)."""
    import numpy as np

    whole = math.floor(freq)
    frac = freq - whole
    out = np.full(n, whole, dtype=np.int64)
    if frac > 0:
        out += rng.random(n) < frac
    return out
