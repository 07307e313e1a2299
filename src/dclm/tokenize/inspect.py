"""`dclm tokenize-shuffle inspect DIR`: what a token dataset holds, checked against its manifest."""

from __future__ import annotations

import os

import numpy as np

from dclm.errors import DclmError
from dclm.tokenize import shards as S


def inspect_dataset(directory: str, samples: int = 3, sample_chars: int = 300, decode: bool = True,
                    tokenizer: str | None = None, scan_shards: int = 16) -> dict:
    """Counts, EOT/PAD density (over up to `scan_shards` shards spread evenly; 0 = all), manifest/native
    agreement and a few decoded samples."""
    if not os.path.isdir(directory):
        raise DclmError(f"not a directory: {directory}")
    ds = S.TokenShards.open(directory)
    index = ds.index
    manifest = S.read_manifest(directory)
    problems = []
    if [(m["shard"], m["num_sequences"]) for m in manifest] != [(r["shard"], r["num_sequences"]) for r in index["shards"]]:
        problems.append("manifest.jsonl disagrees with index.json")
    for r in index["shards"]:
        for ext, key in ((".tar", "tar_bytes"), (".bin", "bin_bytes")):
            p = os.path.join(directory, r["shard"] + ext)
            if not os.path.isfile(p):
                problems.append(f"missing {r['shard']}{ext}")
            elif os.path.getsize(p) != r[key]:
                problems.append(f"{r['shard']}{ext} has {os.path.getsize(p)} bytes, index says {r[key]}")
    eot, pad = index["eot_id"], index["pad_id"]
    n_eot = n_pad = n_tok = 0
    n_shards = len(index["shards"])
    scan = range(n_shards) if not scan_shards or scan_shards >= n_shards else \
        sorted(set(np.linspace(0, n_shards - 1, scan_shards).round().astype(int).tolist()))
    for k in scan:
        if f"missing {index['shards'][k]['shard']}.bin" in problems:
            continue
        a = ds.shard(k)
        n_tok += a.size
        n_eot += int(np.count_nonzero(a == eot))
        n_pad += int(np.count_nonzero(a == pad))
    report = {
        "directory": directory,
        "name": index.get("name"),
        "tokenizer": index["tokenizer"],
        "seqlen": index["seqlen"],
        "dtype": index["dtype"],
        "num_shards": len(index["shards"]),
        "num_sequences": index["num_sequences"],
        "num_tokens": index["num_sequences"] * index["seqlen"],
        "scanned_shards": len(scan),
        "eot_per_1k_tokens": round(1000 * n_eot / n_tok, 3) if n_tok else 0.0,
        "mean_tokens_per_document": round((n_tok - n_pad) / n_eot, 1) if n_eot else None,
        "pad_fraction": round(n_pad / n_tok, 6) if n_tok else 0.0,
        "runs": [{k: r[k] for k in ("documents", "rejected", "fallback_documents", "num_sequences", "sources", "seed",
                                    "shuffle", "tail", "seconds")} for r in index["runs"]],
        "problems": problems,
        "samples": [],
    }
    if decode and samples and len(ds):
        from dclm.tokenize.tokenizer import load_encoder

        enc = load_encoder(tokenizer or index["tokenizer"]["name"])
        if enc.info.sha256 != index["tokenizer"]["sha256"]:
            raise DclmError(f"tokenizer {enc.info.name} is not the one that made {directory} "
                            f"({index['tokenizer']['name']}); pass it with --tokenizer")
        rng = np.random.default_rng(0)
        for g in sorted(rng.choice(len(ds), size=min(samples, len(ds)), replace=False).tolist()):
            row = _row(ds, g)
            ids = [int(t) for t in row if t != pad or t < enc.hf.get_vocab_size()]
            report["samples"].append({"sequence": g, "text": enc.decode(ids)[:sample_chars]})
    return report


def _row(ds: S.TokenShards, g: int) -> np.ndarray:
    for k, r in enumerate(ds.index["shards"]):
        if g < r["num_sequences"]:
            return np.asarray(ds.shard(k)[g])
        g -= r["num_sequences"]
    raise IndexError(g)


def format_report(report: dict) -> str:
    lines = [
        f"{report['directory']}: {report['num_shards']} shards, {report['num_sequences']:,} sequences x "
        f"{report['seqlen']} = {report['num_tokens']:,} tokens ({report['dtype']})",
        f"tokenizer: {report['tokenizer']['name']} (sha256 {report['tokenizer']['sha256'][:12]}, "
        f"EOT {report['tokenizer']['eot_id']}, PAD {report['tokenizer']['pad_id']})",
        f"EOT per 1k tokens: {report['eot_per_1k_tokens']} (over {report['scanned_shards']} shards)  mean tokens/document: {report['mean_tokens_per_document']}  "
        f"PAD fraction: {report['pad_fraction']}",
    ]
    for r in report["runs"]:
        src = ", ".join(f"{s}: {v['tokens_out']:,} tok (x{v['frequency']:.4g})" for s, v in r["sources"].items())
        lines.append(f"run: {r['documents']:,} documents, {r['rejected']} rejected, {r['num_sequences']:,} sequences, "
                     f"seed {r['seed']}, shuffle {r['shuffle']}, tail {r['tail']}; sources: {src}")
    lines += [f"PROBLEM: {p}" for p in report["problems"]] or ["manifest, index and shard files agree"]
    for s in report["samples"]:
        lines.append(f"--- sequence {s['sequence']}: {s['text']!r}")
    return "\n".join(lines)
