"""`dclm demo`: `dclm experiment` on the embedded spec and crawl."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    from dclm.demo.run import DemoConfig
    from dclm.runtime.config import add_config_arguments

    p = sub.add_parser(
        "demo",
        help="the whole DCLM experiment on an embedded crawl: raw vs DCLM-Baseline-curated, trained and evaluated",
        description="Build a seeded crawl of web-like pages (WARC), extract it, and compare two arms trained on "
        "the same tokens: the raw pool, and the pool curated as DCLM-Baseline (heuristics, BFF dedup, fastText "
        "top share). Writes every stage under --output, summary.json and report.html; rerunning resumes.",
    )
    add_config_arguments(p, DemoConfig)
    p.set_defaults(func=_run)


def _run(ns: argparse.Namespace) -> int:
    from dclm.extras import require

    require("dclm demo (it trains and evaluates models)", "torch", "transformers", "safetensors", "matplotlib")
    from dclm.demo.run import DemoConfig, run_demo
    from dclm.experiment.cli import print_result
    from dclm.runtime.config import config_from_args

    print_result(run_demo(config_from_args(DemoConfig, ns)))
    return 0
