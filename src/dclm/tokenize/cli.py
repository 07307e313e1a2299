"""`dclm tokenize-shuffle`: pages -> shuffled token contexts (open_lm tars + native shards); `... inspect DIR`."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "tokenize-shuffle",
        help="tokenize pages into shuffled fixed-length contexts for training (DCLM's tokshuf)",
        description="Tokenize page shards (GPT-NeoX-20B by default, ids exactly those of HF tokenizers), append "
        "EOT (0) after every document, cut each input file's token stream into contexts of exactly --seqlen "
        "tokens (the file's tail padded with PAD 50256 as DCLM's tokshuf-rs does, or dropped with --tail drop), "
        "optionally mix sources by a YAML of repeat factors or weights, shuffle globally in two phases on local disk (seeded buckets, then each bucket sorted) with bounded memory, "
        "and write open_lm webdataset tars (shard_XXXXXXXX.tar of <key>.json.gz) with manifest.jsonl, the same "
        "contexts as memory-mappable shard_XXXXXXXX.bin files described by index.json, and DCLM's tokenized "
        "dataset reference JSON. Rerunning resumes; the same inputs and --seed give byte-identical shards for "
        "any --workers, --memory-budget and --ray. Bad lines go to OUTPUT/_rejects/. `dclm tokenize-shuffle inspect DIR` summarises a result.",
    )
    from dclm.runtime.config import add_config_arguments
    from dclm.tokenize.config import TokenizeConfig

    add_config_arguments(p, TokenizeConfig)
    p.set_defaults(func=_run)

    actions = p.add_subparsers(dest="tokenize_action", metavar="{inspect}", title="optional action",
                               description="without an action, tokenize --input into --output")
    q = actions.add_parser("inspect", help="summarise a token dataset: counts, EOT density, decoded samples",
                           description="Check manifest.jsonl, index.json and the shard files against each other and "
                           "print counts, EOT and PAD density, per-source token counts and a few decoded samples.")
    q.add_argument("directory", metavar="DIR", help="output folder of a tokenize-shuffle run")
    q.add_argument("--samples", type=int, default=3, help="how many random contexts to decode (default 3)")
    q.add_argument("--chars", type=int, default=300, help="characters shown per sample (default 300)")
    q.add_argument("--tokenizer", dest="inspect_tokenizer", help="tokenizer for decoding (default: the one recorded)")
    q.add_argument("--scan-shards", type=int, default=16, help="shards read for EOT/PAD density, spread evenly (default 16; 0 = all)")
    q.add_argument("--json", action="store_true", help="print the report as JSON")
    q.set_defaults(func=_inspect)


def _run(args: argparse.Namespace) -> int:
    from dclm.runtime.config import config_from_args
    from dclm.tokenize.config import TokenizeConfig
    from dclm.tokenize.run import run_tokenize_shuffle

    r = run_tokenize_shuffle(config_from_args(TokenizeConfig, args))
    if not args.quiet:
        what = "already complete" if r.skipped else f"{r.seconds:.1f}s, {r.tokens_per_second / 1e6:.2f}M tok/s"
        print(f"{r.output}: {r.num_shards} shards, {r.num_sequences:,} sequences, {r.num_tokens:,} tokens from "
              f"{r.documents:,} documents ({r.rejected} rejected, {r.fallback_documents} via HF) [{what}]")
        for s, v in r.sources.items():
            print(f"  {s}: {v['documents']:,} docs, {v['tokens']:,} tokens in, x{v['frequency']:.4g} -> {v['tokens_out']:,} tokens out")
        print(f"reference: {r.reference}")
        if r.rejected:
            print(f"rejects: {r.output}/_rejects/")
    return 0


def _inspect(args: argparse.Namespace) -> int:
    from dclm.tokenize.inspect import format_report, inspect_dataset

    report = inspect_dataset(args.directory, samples=args.samples, sample_chars=args.chars,
                             tokenizer=args.inspect_tokenizer, scan_shards=args.scan_shards)
    print(json.dumps(report, indent=1) if args.json else format_report(report))
    return 1 if report["problems"] else 0
