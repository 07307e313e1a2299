"""DCLM mappers: `get(name)`, `names()`, `register`, and the `factory_function` marker."""

from dclm.mappers.registry import factory_function, get, is_factory, load_module, mapper, names, register

__all__ = ["factory_function", "get", "is_factory", "load_module", "mapper", "names", "register"]
