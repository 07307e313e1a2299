"""Frozen config dataclasses and the command line built from them.

A stage declares its parameters once, as a frozen dataclass whose fields are made with `arg(...)`:

    @dataclass(frozen=True)
    class TrainConfig:
        scale: str = arg(help="a scale name (see --list-scales)")            # no default: required
        data: tuple[str, ...] = arg((), help="token shards, manifests or folders")
        lr: float | None = arg(None, help="peak learning rate (default: the scale's)")
        compile: bool = arg(False, help="torch.compile the model")
        precision: Literal["bf16", "fp32"] = arg("bf16", help="...")

`add_config_arguments(parser, TrainConfig)` adds one flag per field (`--scale`, `--data A B`, `--lr`,
`--compile/--no-compile`, `--precision {bf16,fp32}`), each help text ending with the dataclass's own default,
so argparse, the help text and the run function can never disagree. `config_from_args(TrainConfig, ns)`
builds the config back. The library raises `ConfigError(param, message)` speaking of parameter names; the
CLI (dclm/cli.py) shows it with the flag the user typed.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from typing import Any, Callable, Literal

from dclm.errors import DclmError

_MISSING = dataclasses.MISSING


class ConfigError(DclmError):
    """A bad parameter value. `param` is the config field's name; the CLI maps it to its flag."""

    def __init__(self, param: str, message: str):
        self.param = param
        self.message = message
        super().__init__(f"{param}: {message}")

    def as_flag(self) -> str:
        return f"{flag_name(self.param)}: {self.message}"


def flag_name(param: str) -> str:
    return "--" + param.replace("_", "-")


def arg(default: Any = _MISSING, *, help: str, flag: str | None = None, metavar: str | None = None,
        parse: Callable[[str], Any] | None = None, positional: bool = False, cli: bool = True,
        show_default: bool = True, repeatable: bool = False) -> Any:
    """A dataclass field with its command-line description.

    `parse` converts one command-line word (e.g. a size such as "4G"); `positional` makes it a positional
    argument; `cli=False` keeps a field off the command line (set by library callers only); `repeatable`
    makes a tuple field a flag given once per value (`--x a --x b`) instead of one flag with many. A list or dict
    default is stored as a tuple / read-only value, since configs are frozen."""
    meta = {"help": help, "flag": flag, "metavar": metavar, "parse": parse, "positional": positional,
            "cli": cli, "show_default": show_default, "repeatable": repeatable}
    if isinstance(default, list):
        default = tuple(default)
    if default is _MISSING:
        return dataclasses.field(metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def _describe(tp: Any) -> tuple[Callable[[str], Any] | None, list | None, bool]:
    """(converter of one word, choices, many words) for a field type."""
    tp, _ = _unwrap_optional(tp)
    origin = typing.get_origin(tp)
    if origin is Literal:
        choices = list(typing.get_args(tp))
        return type(choices[0]), choices, False
    if origin in (tuple, list):
        inner = [a for a in typing.get_args(tp) if a is not Ellipsis]
        conv, choices, _ = _describe(inner[0]) if inner else (str, None, False)
        return conv, choices, True
    if tp in (int, float, str):
        return tp, None, False
    return str, None, False


def _default_text(value: Any) -> str:
    if isinstance(value, tuple):
        return " ".join(map(str, value)) if value else "none"
    if value is None:
        return "none"
    return str(value)


def config_fields(cls: type) -> list[tuple[dataclasses.Field, Any]]:
    """The command-line fields of `cls`, its own before inherited ones (a stage's flags before `Execution`'s)."""
    hints = typing.get_type_hints(cls, include_extras=False)
    own = cls.__dict__.get("__annotations__", {})
    fields = [f for f in dataclasses.fields(cls) if f.metadata.get("cli", True)]
    return [(f, hints[f.name]) for f in sorted(fields, key=lambda f: f.name not in own)]


def add_config_arguments(parser: argparse.ArgumentParser, cls: type, *, exclude: tuple[str, ...] = ()) -> None:
    """One argparse argument per `arg()` field of the dataclass `cls` (see the module docstring)."""
    for f, tp in config_fields(cls):
        if f.name in exclude:
            continue
        meta = f.metadata
        has_default = f.default is not _MISSING or f.default_factory is not _MISSING
        default = f.default if f.default is not _MISSING else (
            f.default_factory() if f.default_factory is not _MISSING else None)
        help_text = meta.get("help", "")
        if has_default and meta.get("show_default", True):
            help_text = f"{help_text} (default: {_default_text(default)})"
        help_text = help_text.replace("%", "%%")
        conv, choices, many = _describe(tp)
        if meta.get("parse"):
            conv = meta["parse"]
        base, _ = _unwrap_optional(tp)
        kwargs: dict[str, Any] = {"help": help_text, "dest": f.name}
        if meta.get("metavar"):
            kwargs["metavar"] = meta["metavar"]
        if base is bool:
            names = [meta.get("flag") or flag_name(f.name)]
            parser.add_argument(*names, action=argparse.BooleanOptionalAction, default=default, **kwargs)
            continue
        kwargs.update(type=conv)
        if choices:
            kwargs["choices"] = choices
        if meta.get("positional"):
            kwargs.pop("dest")
            if many:
                kwargs["nargs"] = "*" if has_default else "+"
            elif has_default:
                kwargs["nargs"] = "?"
            if has_default:
                kwargs["default"] = default
            parser.add_argument(f.name, **kwargs)
            continue
        if many and meta.get("repeatable"):
            kwargs["action"] = "append"
            default = None  # argparse appends to a given default; None = not given, the field's default stays
        elif many:
            kwargs["nargs"] = "+"
        kwargs["default"] = default
        if not has_default:
            kwargs["required"] = True
        parser.add_argument(meta.get("flag") or flag_name(f.name), **kwargs)


def config_from_args(cls: type, ns: argparse.Namespace, **overrides: Any):
    """The dataclass `cls` from parsed arguments (fields not on the command line keep their defaults)."""
    values = {}
    for f, tp in config_fields(cls):
        if hasattr(ns, f.name):
            v = getattr(ns, f.name)
            if v is None and f.metadata.get("repeatable"):
                continue
            _, many = _describe(tp)[1:]
            if many and isinstance(v, list):
                v = tuple(v)
            values[f.name] = v
    values.update(overrides)
    return cls(**values)


def as_tuples(config: Any, *names: str) -> None:
    """In a frozen config's `__post_init__`: let callers pass one string or a list for tuple fields."""
    for name in names:
        value = getattr(config, name)
        if isinstance(value, str):
            object.__setattr__(config, name, (value,))
        elif isinstance(value, list):
            object.__setattr__(config, name, tuple(value))


def replace(config: Any, **changes: Any):
    """`dataclasses.replace` that reports an unknown field as a ConfigError with close matches."""
    import difflib

    names = {f.name for f in dataclasses.fields(config)}
    for k in changes:
        if k not in names:
            close = difflib.get_close_matches(k, names, n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise ConfigError(k, f"no such parameter of {type(config).__name__}{hint}")
    return dataclasses.replace(config, **changes)


def to_dict(config: Any) -> dict[str, Any]:
    """A JSON-ready dict of a config or result dataclass (tuples become lists)."""
    def plain(v: Any) -> Any:
        if dataclasses.is_dataclass(v) and not isinstance(v, type):
            return {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, (tuple, list)):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {str(k): plain(x) for k, x in v.items()}
        return v

    return plain(config)
