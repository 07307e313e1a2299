"""Benchmark `dclm dedup bff` end to end (process start-up included) and print JSON.

A web-like corpus is assembled from real English lines (Vim's help files and ../shared eval data when
present), seeded: documents of 5-40 lines, 10% exact copies of earlier documents, 20% of lines from a
boilerplate pool; once the source lines are used up they are reused with their words shuffled, so the
rest of the text stays novel. It is written as .jsonl.zst shards (by a child process, so that this one
stays small), then `dclm dedup bff` runs as a subprocess with DCLM-Baseline's settings (old-both,
13-grams, threshold 0.8, fp 0.01) for each --threads value, for each corpus size in --mb.
Reported per size: MB/s of input text (UTF-8 bytes of the `text` fields) over wall time and per
CPU-second (user+sys of the whole process tree), documents/s, the speedup of each thread count over the
first, the peak RSS of the largest process of the run (from `wait4`, and as dclm reports it), the wall
and CPU cost of a run on a one-line input (the fixed start-up), and the load average before and after,
since the machine may be shared.

    .venv/bin/python benchmarks/bench_bff.py --mb 100 300 --threads 1 2
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import random
import shutil
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
    with tempfile.TemporaryFile("w+") as out_f, tempfile.TemporaryFile("w+") as err_f:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out_f, stderr=err_f, text=True)
        _, status, ru = os.wait4(proc.pid, 0)  # this run's own rusage, its forked workers included
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out_f.seek(0)
        err_f.seek(0)
        stdout, stderr = out_f.read(), err_f.read()
    if proc.returncode != 0:
        raise SystemExit(f"bff failed: {stderr}")
    stats = json.loads(stdout.strip().splitlines()[-1])
    cpu = ru.ru_utime + ru.ru_stime
    mb = stats["text_bytes_in"] / 1e6
    return {"threads": threads, "wall_s": round(wall, 3), "cpu_s": round(cpu, 3), "inner_s": stats["secs"],
            "setup_s": stats["setup_secs"], "mb_per_s": round(mb / wall, 2), "mb_per_cpu_s": round(mb / cpu, 2),
            "docs_per_s": round(stats["docs_in"] / wall, 1), "docs_in": stats["docs_in"], "docs_out": stats["docs_out"],
            "peak_rss_mb_largest_process": stats["peak_rss_mb_largest_process"],
            "filter_bytes": stats["filter_bytes"], "num_hashers": stats["num_hashers"],
            # summed over files: parallel parts, the serial filter part, and time spent waiting for the turn
            **{k: stats[k] for k in ("prepare_s", "decide_s", "finish_s", "wait_s")}}


def run_size(tmp: str, mb: float, args) -> dict:
    inp = os.path.join(tmp, f"in{mb:g}")
    os.makedirs(inp)
    # built by a child process: a forked child starts with its parent's resident set, so a big corpus held
    # here would show up in every run's peak RSS
    code = f"import sys; sys.path.insert(0, {os.path.dirname(__file__)!r}); import bench_bff, json; " \
           f"print(json.dumps(bench_bff.build_corpus({inp!r}, {mb!r}, {args.files!r})))"
    size, ndocs = json.loads(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                                            text=True).stdout)
    ngrams = args.expected_ngram_count or size // 4  # roughly one 13-gram per 4-5 bytes of English text
    # compile/cache warm-up so each timed run measures a normal start, not numba's first compile
    run_once(inp, os.path.join(tmp, f"warm{mb:g}"), 1, ngrams)
    results = []
    for t in args.threads:
        best = None
        for r in range(args.repeat):
            load = os.getloadavg()
            res = run_once(inp, os.path.join(tmp, f"out{mb:g}_{t}_{r}"), t, ngrams)
            res["loadavg_before"] = [round(x, 2) for x in load]
            res["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
            if best is None or res["wall_s"] < best["wall_s"]:
                best = res
        results.append(best)
    outs = [sorted(glob.glob(os.path.join(tmp, f"out{mb:g}_{t}_0", "*"))) for t in args.threads]
    identical = all([open(a, "rb").read() for a in o] == [open(a, "rb").read() for a in outs[0]] for o in outs)
    shutil.rmtree(inp)
    for t in args.threads:
        for r in range(args.repeat):
            shutil.rmtree(os.path.join(tmp, f"out{mb:g}_{t}_{r}"), ignore_errors=True)
    base = results[0]["mb_per_s"]
    return {"corpus_mb": round(size / 1e6, 2), "docs": ndocs, "files": args.files, "expected_ngram_count": ngrams,
            "results": results, "speedup_vs_first": [round(r["mb_per_s"] / base, 2) for r in results],
            "outputs_identical_across_threads": identical}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=float, nargs="+", default=[100, 300],
                    help="corpus sizes in MB of text, one run set each (default 100 300)")
    ap.add_argument("--files", type=int, default=32, help="number of shards (default 32)")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="thread counts to run (default 1 2)")
    ap.add_argument("--repeat", type=int, default=1, help="runs per thread count; the fastest is reported")
    ap.add_argument("--expected-ngram-count", type=int, default=0,
                    help="filter sizing (default: corpus bytes / 4, about its number of 13-grams)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        sizes = [run_size(tmp, mb, args) for mb in args.mb]
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "dclm", "dedup", "bff", "--help"], capture_output=True)
        cli_start = time.perf_counter() - t0
        # the fixed cost of one run (interpreter, imports, filter, kernel cache loads) on a one-line input
        tiny = os.path.join(tmp, "tiny")
        os.makedirs(tiny)
        with open(os.path.join(tiny, "t.jsonl"), "wb") as fh:
            fh.write(orjson.dumps({"text": "a tiny document"}) + b"\n")
        startup = run_once(tiny, os.path.join(tmp, "tiny_out"), 1, sizes[0]["expected_ngram_count"])
        for sz in sizes:
            for r in sz["results"]:
                r["mb_per_cpu_s_after_startup"] = round(
                    sz["corpus_mb"] / max(1e-9, r["cpu_s"] - startup["cpu_s"]), 2)
        print(json.dumps({
            "benchmark": "dclm dedup bff old-both 13-gram, end to end (subprocess incl. start-up)",
            "cpus": os.cpu_count(), "sizes": sizes, "cli_start_s": round(cli_start, 3),
            "startup_run": {k: startup[k] for k in ("wall_s", "cpu_s")},
            "note": "wall figures include process start-up; mb_per_cpu_s is throughput per busy core, which "
                    "stays meaningful when other load shares the cores (compare loadavg with cpus)",
        }, indent=1))


if __name__ == "__main__":
    main()
