"""`dclm eval` (score a model on a suite), `dclm eval aggregate` and `dclm eval download`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from dclm.errors import DclmError


def register(sub: argparse._SubParsersAction) -> None:
    from dclm.eval.runner import EvalConfig
    from dclm.runtime.config import add_config_arguments

    p = sub.add_parser(
        "eval", help="DCLM's ICL evaluation: per-task accuracy, CORE and EXTENDED",
        description="Score a DCLM/open_lm checkpoint (--model) or a transformers causal LM (--hf-model) on a task "
        "suite with llm-foundry 0.9.0's prompts and scoring, and write DCLM's eval JSON (eval_metrics.icl, "
        "Core/Extended _v1/_v2). Sub-commands: `aggregate` recomputes the scores of an eval JSON, `download` "
        "fetches the task files.")
    add_config_arguments(p, EvalConfig)
    for action in p._actions:  # checked in run_eval, so that `dclm eval aggregate FILE` needs none of them
        action.required = False
    p.set_defaults(func=run_eval)
    verbs = p.add_subparsers(dest="eval_verb", metavar="SUBCOMMAND")
    a = verbs.add_parser("aggregate", help="recompute every aggregate from eval_metrics.icl",
                         description="Recompute Core/Extended (_v1, _v2), category means and DCLM's aggregation "
                         "lists from a DCLM eval JSON's eval_metrics.icl; prints the headline scores as JSON.")
    a.add_argument("file", help="DCLM eval JSON")
    a.add_argument("--output", dest="agg_output", default=None, help="write the re-aggregated JSON here")
    a.set_defaults(func=run_aggregate)
    d = verbs.add_parser("download", help="fetch the suite's task files (llm-foundry local_data layout)",
                         description="Download the task files of a suite into DEST/local_data/... from "
                         "llm-foundry's repository (or --base-url), skipping files already there.")
    d.add_argument("--dest", required=True, help="directory to fill (pass it later as --data-dir)")
    d.add_argument("--suite", default="heavy", help="suite or task YAML whose files to fetch (default heavy)")
    d.add_argument("--base-url", default=None, help="URL prefix the files' relative paths are appended to "
                   "(default: llm-foundry v0.9.0 scripts/eval/ on GitHub)")
    d.set_defaults(func=run_download)


def run_eval(ns: argparse.Namespace) -> int:
    from dclm.eval.runner import EvalConfig, run
    from dclm.runtime.config import ConfigError, config_from_args

    for name in ("tasks", "data_dir", "output"):
        if getattr(ns, name) is None:
            raise ConfigError(name, "required (or use a sub-command: aggregate, download)")
    res = run(config_from_args(EvalConfig, ns))
    keys = ("Core", "Extended", "missing tasks")
    json.dump({"output": res.output, "icl": res.doc["eval_metrics"]["icl"], **{k: res.doc[k] for k in keys}}, sys.stdout)
    sys.stdout.write("\n")
    return 0


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
    if ns.agg_output:
        with atomic_open(ns.agg_output, "w") as f:
            json.dump(out, f, indent=4)
    keys = ("Core_v1", "Core_v2", "Extended_v1", "Extended_v2", "missing tasks")
    json.dump({k: out[k] for k in keys}, sys.stdout)
    sys.stdout.write("\n")
    return 0


def run_download(ns: argparse.Namespace) -> int:
    from dclm.eval.download import download

    res = download(ns.dest, ns.suite, ns.base_url)
    json.dump(res, sys.stdout)
    sys.stdout.write("\n")
    return 0
