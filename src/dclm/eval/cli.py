"""`dclm eval aggregate`: recompute CORE / EXTENDED of a DCLM eval JSON."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from dclm.errors import DclmError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="DCLM in-context-learning evaluation scores",
                       description="Tools for DCLM's ICL evaluation (CORE and EXTENDED scores).")
    verbs = p.add_subparsers(dest="eval_verb", required=True)
    a = verbs.add_parser("aggregate", help="recompute every aggregate from eval_metrics.icl",
                         description="Recompute Core/Extended (_v1, _v2), category means and DCLM's aggregation "
                         "lists from a DCLM eval JSON's eval_metrics.icl; prints the headline scores as JSON.")
    a.add_argument("file", help="DCLM eval JSON")
    a.add_argument("--output", default=None, help="write the re-aggregated JSON here")
    a.set_defaults(func=run_aggregate)


def run_aggregate(ns: argparse.Namespace) -> int:
    from dclm.eval.aggregate import reaggregate
    from dclm.io import atomic_open

    path = Path(ns.file)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DclmError(f"{path}: no such file") from None
    except json.JSONDecodeError as e:
        raise DclmError(f"{path}: not JSON ({e})") from None
    out = reaggregate(doc)
    if ns.output:
        with atomic_open(ns.output, "w") as f:
            json.dump(out, f, indent=4)
    keys = ("Core_v1", "Core_v2", "Extended_v1", "Extended_v2", "missing tasks")
    json.dump({k: out[k] for k in keys}, sys.stdout)
    sys.stdout.write("\n")
    return 0
