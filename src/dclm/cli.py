"""The `dclm` command line: a thin layer that parses arguments and calls each stage's run function.

Each verb lives in its stage's own `cli` module, which exposes `register(subparsers)`; the module adds
its parser and sets `func` to a callable taking the parsed namespace and returning an exit code.
Stage cli modules import their heavy dependencies inside `func`, so `dclm --help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from dclm import __version__
from dclm.errors import DclmError
from dclm.extras import extra_for, missing_extra_message
from dclm.runtime.config import ConfigError

# verb modules, in the order `dclm --help` lists them
VERB_MODULES = (
    "dclm.demo.cli",
    "dclm.experiment.cli",
    "dclm.extract.cli",
    "dclm.process.cli",
    "dclm.dedup.cli",
    "dclm.classifier.cli",
    "dclm.tokenize.cli",
    "dclm.train.cli",
    "dclm.generate.cli",
    "dclm.convert.cli",
    "dclm.export.cli",
    "dclm.finetune.cli",
    "dclm.serve.cli",
    "dclm.assets.cli",
    "dclm.eval.cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dclm",
        description="DataComp for Language Models: curate web text, dedup, filter, tokenize, and run the open_lm model.",
    )
    parser.add_argument("--version", action="version", version=f"dclm {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    for name in VERB_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from dclm.generate import passive_openmp

    # before torch or numba load: OpenMP threads that spin briefly, then sleep (see passive_openmp)
    passive_openmp()
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except ConfigError as e:
        print(f"dclm: {e.as_flag()}", file=sys.stderr)
        return e.exit_code
    except DclmError as e:
        print(f"dclm: {e}", file=sys.stderr)
        return e.exit_code
    except ModuleNotFoundError as e:
        if not extra_for(e.name):
            raise  # not an optional dependency: a real bug, keep its traceback
        print(f"dclm: {missing_extra_message(f'dclm {args.verb}', e.name)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("dclm: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
