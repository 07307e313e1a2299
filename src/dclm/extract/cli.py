"""`dclm extract`: Common Crawl WARC/WET files to DCLM-Pool page shards."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    from dclm.extract.config import ExtractConfig
    from dclm.runtime.config import add_config_arguments

    p = sub.add_parser(
        "extract",
        help="extract DCLM-Pool pages from Common Crawl WARC/WET files",
        description="Turn WARC files (HTML responses, via resiliparse main-content extraction as in DCLM-Pool) and "
        "WET files (text as is) into page shards {text, url, metadata: WARC headers, warcinfo}. Output paths mirror "
        "the inputs (x.warc.gz -> OUTPUT/x.warc.jsonl.zst); per-file counts, skipped and damaged records go to "
        "OUTPUT/stats/x.warc.json, failed records and damaged regions also to OUTPUT/_rejects/x.warc.gz.jsonl. "
        "Rerunning resumes: files whose output exists are skipped.",
    )
    add_config_arguments(p, ExtractConfig)
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from dclm.extract.config import ExtractConfig
    from dclm.extract.run import format_summary, run_extract
    from dclm.runtime.config import config_from_args

    result = run_extract(config_from_args(ExtractConfig, args, progress=args.progress and not args.quiet))
    if not args.quiet:
        print(format_summary(result))
    return 0 if result.ok else 1
