"""`dclm process`: run a DCLM-format YAML pipeline of mappers over page shards."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    from dclm.process.config import ProcessConfig
    from dclm.runtime.config import add_config_arguments

    p = sub.add_parser(
        "process",
        help="run a DCLM YAML pipeline of mappers over page shards",
        description="Run a DCLM-format YAML pipeline (a list of {source, steps}) over every page shard under --input. "
        "Outputs go to OUTPUT/<yaml name>/processed_data, per-shard stats to .../stats, failed pages to .../_rejects. "
        "Rerunning the same command resumes: finished shards and steps are skipped.",
    )
    add_config_arguments(p, ProcessConfig)
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from dclm.process.config import ProcessConfig
    from dclm.process.runner import format_summary, run_process
    from dclm.runtime.config import config_from_args

    result = run_process(config_from_args(ProcessConfig, args, progress=args.progress and not args.quiet))
    if not args.quiet:
        print(format_summary(result))
    for rel, err in result.failed:
        print(f"dclm: shard {rel} failed: {err}")
    return 0 if result.ok else 1
