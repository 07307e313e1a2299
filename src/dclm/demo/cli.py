"""`dclm demo`: the main job on the embedded sample."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="run the whole curation loop on an embedded sample of web pages",
        description="Generate a seeded sample of web pages in DCLM-Pool layout and run every dclm stage on it: "
        "the DCLM-Baseline heuristics, BFF dedup, fastText quality filtering, tokenize-shuffle and the open_lm "
        "model. Writes each stage's output and summary.json under --output; rerunning resumes.",
    )
    p.add_argument("--output", default="dclm-demo", help="directory for all outputs (default: ./dclm-demo)")
    p.add_argument("--pages", type=int, default=2000, help="pages in the generated pool (default: 2000)")
    p.add_argument("--seed", type=int, default=0, help="seed for the sample and every seeded stage")
    p.add_argument("--workers", type=int, default=2, help="processes for the parallel stages (default: 2)")
    p.add_argument("--overwrite", action="store_true", help="start from scratch instead of resuming")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from dclm.extras import require

    require("dclm demo (it trains and samples a model)", "torch", "transformers", "safetensors")
    from dclm.demo.run import format_reports, run_demo

    reports = run_demo(args.output, n_pages=args.pages, seed=args.seed, workers=args.workers,
                       overwrite=args.overwrite, progress=not args.no_progress)
    print(format_reports(reports))
    print(f"summary: {args.output}/summary.json")
    return 0
