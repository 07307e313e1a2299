"""`dclm extract`: Common Crawl WARC/WET files to DCLM-Pool page shards."""

from __future__ import annotations

import argparse

from dclm.extract.extractors import EXTRACTORS


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "extract",
        help="extract DCLM-Pool pages from Common Crawl WARC/WET files",
        description="Turn WARC files (HTML responses, via resiliparse main-content extraction as in DCLM-Pool) and "
        "WET files (text as is) into page shards {text, url, metadata: WARC headers, warcinfo}. Output paths mirror "
        "the inputs (x.warc.gz -> OUTPUT/x.warc.jsonl.zst); per-file counts, skipped and damaged records go to "
        "OUTPUT/stats/x.warc.json, failed records and damaged regions also to OUTPUT/_rejects/x.warc.gz.jsonl. "
        "Rerunning resumes: files whose output exists are skipped.",
    )
    p.add_argument("--input", required=True, nargs="+",
                   help="WARC/WET files (.warc, .warc.gz, .warc.wet.gz, ...) or directories to walk (sorted)")
    p.add_argument("--output", required=True, help="output directory (local path or fsspec URL)")
    p.add_argument("--extractor", default="resiliparse", choices=EXTRACTORS,
                   help="HTML to text: resiliparse main content (DCLM-Pool, default), trafilatura, or justext "
                   "(all paragraphs, as DCLM's html_content_extraction_modifier)")
    p.add_argument("--workers", type=int, default=0, help="processes, one file each (default 0 = all cores)")
    p.add_argument("--ray", action="store_true", help="run each file as a Ray task (local Ray unless --ray-address)")
    p.add_argument("--ray-address", help="address of an existing Ray cluster, e.g. auto or ray://host:10001")
    p.add_argument("--max-record-bytes", type=int, default=None, metavar="N",
                   help="skip (and count) records, or decompressed payloads, larger than N bytes (default 16 MiB)")
    p.add_argument("--compression", default="zst", choices=["zst", "gz", "none"],
                   help="output shard compression: .jsonl.zst (default), .jsonl.gz or plain .jsonl")
    p.add_argument("--overwrite", action="store_true", help="redo files whose output already exists")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from dclm.extract.run import DEFAULT_MAX_RECORD_BYTES, format_summary, run_extract

    result = run_extract(
        args.input, args.output, extractor=args.extractor, workers=args.workers,
        max_record_bytes=args.max_record_bytes or DEFAULT_MAX_RECORD_BYTES, compression=args.compression,
        overwrite=args.overwrite, progress=not args.no_progress, ray=args.ray, ray_address=args.ray_address,
    )
    if not args.quiet:
        print(format_summary(result))
    return 0 if result.ok else 1
