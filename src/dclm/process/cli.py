"""`dclm process`: run a DCLM-format YAML pipeline of mappers over page shards."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "process",
        help="run a DCLM YAML pipeline of mappers over page shards",
        description="Run a DCLM-format YAML pipeline (a list of {source, steps}) over every page shard under --input. "
        "Outputs go to OUTPUT/<yaml name>/processed_data, per-shard stats to .../stats, failed pages to .../_rejects. "
        "Rerunning the same command resumes: finished shards and steps are skipped.",
    )
    p.add_argument("--config", required=True, help="pipeline YAML: a path, or a bundled name such as dclm_baseline_refinedweb")
    p.add_argument("--input", required=True, nargs="+", help="input shard files or directories (local paths or fsspec URLs)")
    p.add_argument("--output", required=True, help="output directory; results go under OUTPUT/<yaml name>/")
    p.add_argument("--source-name", help="which `source` entry of the YAML to run (default: the only one)")
    p.add_argument("--workers", type=int, default=0, help="processes over shards (default: all cores)")
    p.add_argument("--overwrite", action="store_true", help="discard earlier outputs instead of resuming")
    p.add_argument("--ray", action="store_true", help="run each shard as a Ray task")
    p.add_argument("--ray-address", help="address of an existing Ray cluster (default: start a local one)")
    p.add_argument("--mappers-module", action="append", default=[], metavar="MODULE",
                   help="import user mappers from a module name or a .py file (repeatable); register them with "
                   "dclm.mappers.register, or name them in YAML as a dotted path")
    p.add_argument("--output-format", default="same", choices=["same", "jsonl", "jsonl.gz", "jsonl.zst", "parquet"],
                   help="format of processed_data files (default: same as each input)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from dclm.process.runner import format_summary, run_process

    result = run_process(
        config=args.config, inputs=args.input, output=args.output, source_name=args.source_name,
        workers=args.workers, overwrite=args.overwrite, ray=args.ray, ray_address=args.ray_address,
        mapper_modules=args.mappers_module,
        output_format=args.output_format, progress=not args.no_progress,
    )
    if not args.quiet:
        print(format_summary(result))
    for rel, err in result.failed:
        print(f"dclm: shard {rel} failed: {err}")
    return 0 if result.ok else 1
