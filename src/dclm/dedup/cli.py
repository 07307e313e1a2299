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
    "results are identical for any --threads. `dclm dedup bff sysreq` sizes a filter."
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("dedup", help="deduplicate page shards: BFF n-gram Bloom filter, or exact URL/text",
                       description="Deduplicate page shards with DCLM's BFF Bloom-filter n-gram method or exact hashing.")
    verbs = p.add_subparsers(dest="dedup_cmd", metavar="METHOD")
    verbs.required = True
    _register_bff(verbs)
    _register_exact(verbs)


def _register_bff(verbs) -> None:
    b = verbs.add_parser("bff", help="Bloom-filter n-gram dedup (DCLM's bff)", description=BFF_DESCRIPTION)
    b.add_argument("--inputs", nargs="+", metavar="PATH",
                   help="input shard files or directories (searched recursively for .jsonl/.jsonl.gz/.jsonl.zst/.parquet)")
    b.add_argument("--output-directory", metavar="DIR", help="where deduplicated shards go, mirroring input-relative paths")
    b.add_argument("--expected-ngram-count", type=int, metavar="N",
                   help="expected number of n-grams overall (sizes a new filter; ignored when --bloom-filter-file exists)")
    b.add_argument("--fp-rate", type=float, metavar="F", help="target per-n-gram false-positive rate of a new filter")
    b.add_argument("--min-ngram-size", type=int, default=20,
                   help="units with fewer tokens than this are never deduplicated; units with at least this many "
                   "but fewer than --max-ngram-size tokens are one n-gram (default 20)")
    b.add_argument("--max-ngram-size", type=int, default=20, help="n-gram window in tokens (default 20; DCLM-Baseline used 13)")
    b.add_argument("--filtering-threshold", type=float, default=0.8,
                   help="a unit is removed when contained/total n-grams exceeds this (default 0.8)")
    b.add_argument("--remove-type", default="paragraph",
                   choices=["paragraph", "document", "both", "naive-both", "old-both", "substring", "exact"],
                   help="what is removed: paragraphs, whole documents, both (see `dclm.dedup.bff`), old-both "
                   "(DCLM-Baseline), substring spans, or exact whole-text duplicates (default paragraph)")
    b.add_argument("--substr-seqlen", type=int, default=50, help="substring mode: shortest duplicated run removed, in tokens (default 50)")
    b.add_argument("--num-hashers", type=int, default=0, help="hash functions per n-gram; 0 = optimal for the filter size (default)")
    b.add_argument("--bloom-filter-file", metavar="FILE",
                   help="load the filter from FILE if it exists and save it there at the end (global dedup across runs; "
                   "dclm's own format, not bff's)")
    b.add_argument("--no-update-bloom-filter", action="store_true", help="check against the filter but never insert")
    b.add_argument("--no-save-bloom-filter", action="store_true", help="do not write --bloom-filter-file at the end")
    b.add_argument("--annotate", action="store_true",
                   help="keep text intact and add bff_duplicate_spans (UTF-8 byte spans) and bff_contained_ngram_count; "
                   "old-both then keeps only id, source and text besides them, as bff does")
    b.add_argument("--shard-num", type=int, default=0, help="process only files i with i %% total-shards == shard-num (default 0)")
    b.add_argument("--total-shards", type=int, default=1, help="number of virtual shards of the sorted file list (default 1)")
    b.add_argument("--threads", "-t", type=int, default=0, help="worker processes; 0 = all cores (default). Results do not depend on it")
    b.add_argument("--no-progress-bar", action="store_true", help="no progress bar")
    b.add_argument("--seed", type=int, default=None, help="hash seed of a new filter (default 0; a loaded filter keeps its own)")
    b.add_argument("--shuffle-files", type=int, metavar="SEED", default=None,
                   help="process files in an order shuffled with SEED instead of sorted order (changes which copy survives)")
    b.add_argument("--json", action="store_true", help="print the run statistics as JSON")
    b.set_defaults(func=_run_bff)
    sv = b.add_subparsers(dest="bff_cmd", metavar="sysreq")
    s = sv.add_parser("sysreq", help="filter size and hasher count for an n-gram count and fp rate",
                      description="Print the Bloom filter size and number of hashers bff's formulas give for "
                      "--expected-ngram-count and --fp-rate, and whether it fits in this machine's available memory.")
    s.add_argument("--expected-ngram-count", type=int, required=True, metavar="N", help="expected number of n-grams")
    s.add_argument("--fp-rate", type=float, required=True, metavar="F", help="target false-positive rate")
    s.add_argument("--num-hashers", type=int, default=0, help="fixed hasher count; 0 = optimal (default)")
    s.set_defaults(func=_run_sysreq)


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

    missing = [f for f, v in (("--inputs", args.inputs), ("--output-directory", args.output_directory),
                              ("--expected-ngram-count", args.expected_ngram_count), ("--fp-rate", args.fp_rate)) if v is None]
    if missing:
        raise DclmError(f"dedup bff: missing {', '.join(missing)}")
    cfg = BffConfig(
        inputs=args.inputs, output_directory=args.output_directory, expected_ngram_count=args.expected_ngram_count,
        fp_rate=args.fp_rate, min_ngram_size=args.min_ngram_size, max_ngram_size=args.max_ngram_size,
        filtering_threshold=args.filtering_threshold, remove_type=args.remove_type, substr_seqlen=args.substr_seqlen,
        num_hashers=args.num_hashers, bloom_filter_file=args.bloom_filter_file,
        no_update_bloom_filter=args.no_update_bloom_filter, no_save_bloom_filter=args.no_save_bloom_filter,
        annotate=args.annotate, shard_num=args.shard_num, total_shards=args.total_shards, threads=args.threads,
        progress=not args.no_progress_bar and not args.quiet, seed=args.seed, shuffle_files=args.shuffle_files)
    stats = run_bff(cfg)
    # numba leaves many objects behind whose collection at interpreter exit takes ~0.25 s (a quarter of a
    # small run); nothing needs collecting then, so exclude them from that final pass
    atexit.register(gc.freeze)
    if args.json:
        print(json.dumps(stats))
    elif not args.quiet:
        removed = stats["docs_in"] - stats["docs_out"]
        print(f"bff: {stats['files']} files ({stats['files_written']} written, {stats['files_failed']} failed), "
              f"{stats['docs_in']} documents in, {stats['docs_out']} out ({removed} removed), "
              f"{stats['rejects']} rejected lines; {stats['text_bytes_in'] / 1e6:.1f} MB of text in {stats['secs']:.1f} s "
              f"({stats['mb_per_s']} MB/s, {stats['threads']} workers); filter {stats['filter_bytes']} bytes, "
              f"{stats['num_hashers']} hashers, {stats['filter_fill']:.2%} full")
        for rel, err in stats["failed"]:
            print(f"dclm: {rel} failed: {err}")
    return 1 if stats["failed"] else 0


def _run_sysreq(args: argparse.Namespace) -> int:
    from dclm.dedup.bloom import available_memory, human_bytes, sysreq

    req = sysreq(args.expected_ngram_count, args.fp_rate, args.num_hashers)
    avail = available_memory()
    req["available_memory_bytes"] = avail
    req["fits"] = req["bytes"] <= 0.9 * avail
    print(f"To handle {req['expected_ngram_count']} n-grams with fp rate {req['fp_rate']}, you'd need a filter of "
          f"{human_bytes(req['bytes'])} ({req['bytes']} bytes) and {req['num_hashers']} hashers "
          f"(predicted fp {req['predicted_fp_rate']:.3g}); {human_bytes(avail)} available now: "
          f"{'fits' if req['fits'] else 'does NOT fit'}.")
    print(json.dumps(req))
    return 0


def _run_exact(args: argparse.Namespace) -> int:
    from dclm.dedup.exact import ExactDedupConfig, run_exact_dedup
    from dclm.runtime.config import config_from_args

    stats = run_exact_dedup(config_from_args(ExactDedupConfig, args, progress=args.progress and not args.quiet))
    print(json.dumps(stats))
    return 0
