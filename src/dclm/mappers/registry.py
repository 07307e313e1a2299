"""The mapper registry: DCLM's calling convention, names and factory marker.

A mapper takes one page dict and returns a list of pages ([] = removed, [page] = kept, more = split).
A *factory* is called once with the YAML kwargs and returns such a mapper; it carries `_is_factory = True`
exactly as DCLM's `@factory_function` sets it, so DCLM users' own factories work unchanged.

Names resolve in this order: mappers registered at run time (`register`), then DCLM's catalogue modules,
then a dotted path `pkg.mod.fn` (an importable module, or the file `pkg/mod.py` under the working
directory, which is how DCLM resolves user code).
"""

from __future__ import annotations

import difflib
import hashlib
import importlib
import importlib.util
import os
import sys
from typing import Callable

from dclm.errors import DclmError

Mapper = Callable[..., list]

# the modules holding DCLM's catalogue (baselines/mappers/**), searched for bare names
CATALOGUE_MODULES: tuple[str, ...] = (
    "dclm.mappers.modifiers",
    "dclm.mappers.source_modifiers",
    "dclm.mappers.filters.content_filters",
    "dclm.mappers.filters.metadata_filters",
    "dclm.mappers.enrichers.counters",
    "dclm.mappers.enrichers.language_id",
    "dclm.mappers.enrichers.kenlm_perplexity",
    "dclm.mappers.enrichers.quality",
)

_registered: dict[str, Callable] = {}
_catalogue: dict[str, Callable] | None = None


def factory_function(func: Callable) -> Callable:
    """Mark `func` as a factory: called once with the step kwargs, it returns the per-page mapper."""
    func._is_factory = True
    return func


def is_factory(func: Callable) -> bool:
    return bool(getattr(func, "_is_factory", False))


def mapper(func: Callable) -> Callable:
    """Mark a catalogue function as a mapper, so `names()` lists it and YAML can name it."""
    func._is_mapper = True
    return func


def register(name: str, func: Callable | None = None):
    """Register a user mapper under `name` (usable as a decorator: `@register("my_filter")`)."""

    def deco(f: Callable) -> Callable:
        _registered[name] = f
        return f

    return deco(func) if func is not None else deco


def _load_catalogue() -> dict[str, Callable]:
    global _catalogue
    if _catalogue is None:
        found: dict[str, Callable] = {}
        for modname in CATALOGUE_MODULES:
            mod = importlib.import_module(modname)
            for name, obj in vars(mod).items():
                if callable(obj) and getattr(obj, "_is_mapper", False) and not name.startswith("_"):
                    found.setdefault(name, obj)
        _catalogue = found
    return _catalogue


def names() -> list[str]:
    """Every mapper name the registry knows (catalogue plus user-registered)."""
    return sorted(set(_load_catalogue()) | set(_registered))


def load_module(spec: str):
    """Import a user module given as a dotted name or as a path to a .py file."""
    if spec.endswith(".py") or os.sep in spec:
        path = os.path.abspath(spec)
        if not os.path.isfile(path):
            raise DclmError(f"mapper module not found: {spec}")
        modname = "dclm_user_" + hashlib.sha1(path.encode()).hexdigest()[:8] + "_" + os.path.splitext(os.path.basename(path))[0]
        if modname in sys.modules:
            return sys.modules[modname]
        mspec = importlib.util.spec_from_file_location(modname, path)
        mod = importlib.util.module_from_spec(mspec)
        sys.modules[modname] = mod
        mspec.loader.exec_module(mod)
        return mod
    try:
        return importlib.import_module(spec)
    except ImportError as e:
        raise DclmError(f"cannot import mapper module {spec!r}: {e}") from None


def _load_dotted(name: str, base_dir: str | None) -> Callable:
    if name.startswith("."):
        raise DclmError(f"relative func paths are not allowed: {name!r}")
    modpath, _, attr = name.rpartition(".")
    candidate = os.path.join(base_dir or os.getcwd(), *modpath.split(".")) + ".py"
    if os.path.isfile(candidate):
        mod = load_module(candidate)
    else:
        try:
            mod = importlib.import_module(modpath)
        except ImportError:
            raise DclmError(f"unknown func {name!r}: no module {modpath!r} (neither importable nor a file {candidate})") from None
    if not hasattr(mod, attr):
        raise DclmError(f"unknown func {name!r}: module {modpath!r} has no {attr!r}")
    return getattr(mod, attr)


def get(name: str, base_dir: str | None = None) -> Callable:
    """The mapper (or factory) called `name`; unknown names give a one-line error with close matches.

    A dotted `pkg.mod.fn` is looked up as the file `pkg/mod.py` under `base_dir` (default: the working
    directory), then as an importable module."""
    if name in _registered:
        return _registered[name]
    catalogue = _load_catalogue()
    if name in catalogue:
        return catalogue[name]
    if "." in name:
        return _load_dotted(name, base_dir)
    close = difflib.get_close_matches(name, names(), n=3, cutoff=0.6)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    raise DclmError(f"unknown func {name!r}{hint}")
