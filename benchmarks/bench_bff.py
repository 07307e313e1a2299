"""Benchmark `dclm dedup bff` end to end (process start-up included) and print JSON.

A web-like corpus is assembled from real English lines (Vim's help files and ../shared eval data when
present), seeded: documents of 5-40 lines, 10% exact copies of earlier documents, 20% of lines from a
boilerplate pool; once the source lines are used up they are reused with their words shuffled, so the
rest of the text stays novel. It is written as .jsonl.zst shards, then `dclm dedup bff` runs as a subprocess with
DCLM-Baseline's settings (old-both, 13-grams, threshold 0.8, fp 0.01) for each --threads value.
Reported: MB/s of input text (UTF-8 bytes of the `text` fields) over wall time and per CPU-second
(user+sys of the whole process tree), documents/s, the peak RSS of the largest process, the start-up
time of `dclm ... --help` alone, the wall and CPU cost of a run on a one-line input (the fixed start-up),
and the load average before and after, since the machine may be shared.

    .venv/bin/python benchmarks/bench_bff.py --mb 100 --threads 1 2
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time

import orjson
import zstandard

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCES = ["/usr/share/vim/vim90/doc/*.txt", os.path.join(REPO, "..", "shared", "eval_data", "**", "*.jsonl")]


def _lines() -> list[str]:
    lines: list[str] = []
    for pattern in SOURCES:
        for path in sorted(glob.glob(pattern, recursive=True)):
            with open(path, encoding="utf-8", errors="replace") as f:
                if path.endswith(".jsonl"):
                    for row in f:
                        try:
                            rec = orjson.loads(row)
                        except orjson.JSONDecodeError:
                            continue
                        lines.extend(str(v) for v in rec.values() if isinstance(v, str) and len(v) > 20)
                else:
                    lines.extend(ln.rstrip() for ln in f if len(ln.strip()) > 20)
    if not lines:
        rng = random.Random(1)
        vocab = [f"w{i}" for i in range(20000)]
        lines = [" ".join(rng.choice(vocab) for _ in range(rng.randrange(5, 40))) for _ in range(200000)]
    return lines


def build_corpus(root: str, mb: float, files: int, seed: int = 0) -> tuple[int, int]:
    rng = random.Random(seed)
    lines = _lines()
    rng.shuffle(lines)
    boiler = lines[:200]
    docs: list[dict] = []
    size = 0
    cursor = 200
    target = int(mb * 1e6)
    while size < target:
        if docs and rng.random() < 0.1:
            text = rng.choice(docs)["text"]
        else:
            parts = []
            for _ in range(rng.randrange(5, 40)):
                if rng.random() < 0.2:
                    parts.append(rng.choice(boiler))
                else:
                    line = lines[cursor % len(lines)]
                    if cursor >= len(lines):  # source exhausted: reuse a line with its words shuffled
                        toks = line.split(" ")
                        rng.shuffle(toks)
                        line = " ".join(toks)
                    parts.append(line)
                    cursor += 1
            text = "\n".join(parts)
        docs.append({"id": len(docs), "text": text, "url": f"https://example.com/{len(docs)}"})
        size += len(text.encode("utf-8"))
    per = -(-len(docs) // files)
    cctx = zstandard.ZstdCompressor(level=3)
    for f in range(files):
        chunk = docs[f * per:(f + 1) * per]
        with open(os.path.join(root, f"shard_{f:03d}.jsonl.zst"), "wb") as fh:
            fh.write(cctx.compress(b"".join(orjson.dumps(d) + b"\n" for d in chunk)))
    return size, len(docs)


def run_once(inp: str, out: str, threads: int, ngrams: int) -> dict:
    cmd = [sys.executable, "-m", "dclm", "-q", "dedup", "bff", "--inputs", inp, "--output-directory", out,
           "--expected-ngram-count", str(ngrams), "--fp-rate", "0.01", "--min-ngram-size", "13",
           "--max-ngram-size", "13", "--filtering-threshold", "0.8", "--remove-type", "old-both",
           "--threads", str(threads), "--no-progress-bar", "--json"]
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    if proc.returncode != 0:
        raise SystemExit(f"bff failed: {proc.stderr}")
    stats = json.loads(proc.stdout.strip().splitlines()[-1])
    mb = stats["text_bytes_in"] / 1e6
    return {"threads": threads, "wall_s": round(wall, 3), "cpu_s": round(cpu, 3), "inner_s": stats["secs"],
            "setup_s": stats["setup_secs"], "mb_per_s": round(mb / wall, 2), "mb_per_cpu_s": round(mb / cpu, 2),
            "docs_per_s": round(stats["docs_in"] / wall, 1), "docs_in": stats["docs_in"], "docs_out": stats["docs_out"],
            "peak_rss_mb_max_process": round(ru1.ru_maxrss / 1024, 1), "filter_bytes": stats["filter_bytes"],
            "num_hashers": stats["num_hashers"],
            # summed over files: parallel parts, the serial filter part, and time spent waiting for the turn
            **{k: stats[k] for k in ("prepare_s", "decide_s", "finish_s", "wait_s")}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=float, default=100, help="MB of text in the corpus (default 100)")
    ap.add_argument("--files", type=int, default=8, help="number of shards (default 8)")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="thread counts to run (default 1 2)")
    ap.add_argument("--repeat", type=int, default=1, help="runs per thread count; the fastest is reported")
    ap.add_argument("--expected-ngram-count", type=int, default=0,
                    help="filter sizing (default: corpus bytes / 4, about its number of 13-grams)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        inp = os.path.join(tmp, "in")
        os.makedirs(inp)
        size, ndocs = build_corpus(inp, args.mb, args.files)
        ngrams = args.expected_ngram_count or size // 4  # roughly one 13-gram per 4-5 bytes of English text
        # compile/cache warm-up so each timed run measures a normal start, not numba's first compile
        run_once(inp, os.path.join(tmp, "warm"), 1, ngrams)
        results = []
        for t in args.threads:
            best = None
            for r in range(args.repeat):
                load = os.getloadavg()
                res = run_once(inp, os.path.join(tmp, f"out{t}_{r}"), t, ngrams)
                res["loadavg_before"] = [round(x, 2) for x in load]
                res["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
                if best is None or res["wall_s"] < best["wall_s"]:
                    best = res
            results.append(best)
        outs = [sorted(glob.glob(os.path.join(tmp, f"out{t}_0", "*"))) for t in args.threads]
        identical = all([open(a, "rb").read() for a in o] == [open(a, "rb").read() for a in outs[0]] for o in outs)
        base = results[0]["mb_per_s"]
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "dclm", "dedup", "bff", "--help"], capture_output=True)
        cli_start = time.perf_counter() - t0
        # the fixed cost of one run (interpreter, imports, filter, kernel cache loads) on a one-line input
        tiny = os.path.join(tmp, "tiny")
        os.makedirs(tiny)
        with open(os.path.join(tiny, "t.jsonl"), "wb") as fh:
            fh.write(orjson.dumps({"text": "a tiny document"}) + b"\n")
        startup = run_once(tiny, os.path.join(tmp, "tiny_out"), 1, ngrams)
        for r in results:
            r["mb_per_cpu_s_after_startup"] = round(size / 1e6 / max(1e-9, r["cpu_s"] - startup["cpu_s"]), 2)
        print(json.dumps({
            "benchmark": "dclm dedup bff old-both 13-gram, end to end (subprocess incl. start-up)",
            "corpus_mb": round(size / 1e6, 2), "docs": ndocs, "files": args.files, "cpus": os.cpu_count(),
            "expected_ngram_count": ngrams,
            "results": results,
            "speedup_vs_first": [round(r["mb_per_s"] / base, 2) for r in results],
            "outputs_identical_across_threads": identical,
            "cli_start_s": round(cli_start, 3),
            "startup_run": {k: startup[k] for k in ("wall_s", "cpu_s")},
            "note": "wall figures include process start-up; mb_per_cpu_s is throughput per busy core, which "
                    "stays meaningful when other load shares the cores (compare loadavg with cpus)",
        }, indent=1))


if __name__ == "__main__":
    main()
