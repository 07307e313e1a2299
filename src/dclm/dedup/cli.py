"""`dclm dedup`: BFF Bloom-filter n-gram dedup (`bff`, `bff sysreq`) and exact URL/text dedup (`exact`)."""

from __future__ import annotations

import argparse
import atexit
import gc
import json

BFF_DESCRIPTION = (
    "DCLM's BFF dedup (the Rust `bff` tool, same flags): n-grams of Unicode word tokens are checked "
    "against one Bloom filter in file and document order; duplicated paragraphs/documents are removed "
    "(or annotated). DCLM-Baseline used: --fp-rate 0.01 --min-ngram-size 13 --max-ngram-size 13 "
    "--filtering-threshold 0.8 --remove-type old-both --annotate. Outputs mirror input-relative paths; "
    "results are identical for any --workers (bff's --threads). `dclm dedup bff sysreq` sizes a filter."
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("dedup", help="deduplicate page shards: BFF n-gram Bloom filter, or exact URL/text",
                       description="Deduplicate page shards with DCLM's BFF Bloom-filter n-gram method or exact hashing.")
    verbs = p.add_subparsers(dest="dedup_cmd", metavar="METHOD")
    verbs.required = True
    _register_bff(verbs)
    _register_exact(verbs)


def _register_bff(verbs) -> None:
    from dclm.dedup.bff.config import BffConfig, SysreqConfig
    from dclm.runtime.config import add_config_arguments

    b = verbs.add_parser("bff", help="Bloom-filter n-gram dedup (DCLM's bff)", description=BFF_DESCRIPTION)
    add_config_arguments(b, BffConfig)
    for action in b._actions:
        if action.dest in _BFF_REQUIRED:
            action.required = False  # `dclm dedup bff sysreq` takes none of them; `_run_bff` checks them
    # bff's own names for two shared flags, so DCLM's bff command lines run unchanged
    b.add_argument("--threads", "-t", type=int, dest="workers", default=argparse.SUPPRESS, help="same as --workers")
    b.add_argument("--no-progress-bar", dest="progress", action="store_false", default=argparse.SUPPRESS,
                   help="same as --no-progress")
    b.add_argument("--json", action="store_true", help="print the run statistics as JSON")
    b.set_defaults(func=_run_bff)
    sv = b.add_subparsers(dest="bff_cmd", metavar="sysreq")
    s = sv.add_parser("sysreq", help="filter size and hasher count for an n-gram count and fp rate",
                      description="Print the Bloom filter size and number of hashers bff's formulas give for "
                      "--expected-ngram-count and --fp-rate, and whether it fits in this machine's available memory.")
    add_config_arguments(s, SysreqConfig)
    s.set_defaults(func=_run_sysreq)


_BFF_REQUIRED = ("inputs", "output_directory", "expected_ngram_count", "fp_rate")


def _register_exact(verbs) -> None:
    from dclm.dedup.exact import ExactDedupConfig
    from dclm.runtime.config import add_config_arguments

    e = verbs.add_parser(
        "exact", help="exact dedup of URLs or normalised text over a whole dataset",
        description="Exact dedup over every shard at once (DCLM's exact_dedup): each unit under --key (a string, "
        "or each line of a list) is hashed with MD5 after --normalize; among equal hashes the first (lowest "
        "shard, page, line) is kept, or the one whose page has the smallest (--selection-reverse: largest) "
        "normalised --selection-key. Pages with nothing left are dropped. Reads the inputs twice, keeps no pages in memory.")
    add_config_arguments(e, ExactDedupConfig)
    e.set_defaults(func=_run_exact)


def _run_bff(args: argparse.Namespace) -> int:
    from dclm.dedup.bff import BffConfig, run_bff
    from dclm.errors import DclmError
    from dclm.runtime.config import config_from_args, flag_name, to_dict

    missing = [flag_name(f) for f in _BFF_REQUIRED if getattr(args, f) is None]
    if missing:
        raise DclmError(f"dedup bff: missing {', '.join(missing)}")
    res = run_bff(config_from_args(BffConfig, args, progress=args.progress and not args.quiet))
    # numba leaves many objects behind whose collection at interpreter exit takes ~0.25 s (a quarter of a
    # small run); nothing needs collecting then, so exclude them from that final pass
    atexit.register(gc.freeze)
    if args.json:
        print(json.dumps(to_dict(res)))
    elif not args.quiet:
        print(f"bff: {res.files} files ({res.files_written} written, {res.files_failed} failed), "
              f"{res.docs_in} documents in, {res.docs_out} out ({res.docs_in - res.docs_out} removed), "
              f"{res.rejects} rejected lines; {res.text_bytes_in / 1e6:.1f} MB of text in {res.secs:.1f} s "
              f"({res.mb_per_s} MB/s, {res.shards} shard(s), {res.workers} workers); filter {res.filter_bytes} "
              f"bytes, {res.num_hashers} hashers, {res.filter_fill:.2%} full")
        for rel, err in res.failed:
            print(f"dclm: {rel} failed: {err}")
    return 0 if res.ok else 1


def _run_sysreq(args: argparse.Namespace) -> int:
    from dclm.dedup.bff.bloom import available_memory, human_bytes, sysreq
    from dclm.dedup.bff.config import SysreqConfig
    from dclm.runtime.config import config_from_args, to_dict

    cfg = config_from_args(SysreqConfig, args)
    size = sysreq(cfg.expected_ngram_count, cfg.fp_rate, cfg.num_hashers)
    avail = available_memory()
    fits = size.bytes <= 0.9 * avail
    print(f"To handle {size.expected_ngram_count} n-grams with fp rate {size.fp_rate}, you'd need a filter of "
          f"{human_bytes(size.bytes)} ({size.bytes} bytes) and {size.num_hashers} hashers "
          f"(predicted fp {size.predicted_fp_rate:.3g}); {human_bytes(avail)} available now: "
          f"{'fits' if fits else 'does NOT fit'}.")
    print(json.dumps({**to_dict(size), "available_memory_bytes": avail, "fits": fits}))
    return 0


def _run_exact(args: argparse.Namespace) -> int:
    from dclm.dedup.exact import ExactDedupConfig, run_exact_dedup
    from dclm.runtime.config import config_from_args

    from dclm.runtime.config import to_dict

    res = run_exact_dedup(config_from_args(ExactDedupConfig, args, progress=args.progress and not args.quiet))
    print(json.dumps(to_dict(res)))
    return 0
