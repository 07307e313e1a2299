"""Benchmark `dclm tokenize-shuffle` end to end: tokens/s from process start to manifest, and peak RSS of
its whole process tree over growing inputs (the curve must stay flat: the two phases on local disk bound
memory by bucket size, not by input size).

Builds an English-prose corpus (long string fields of ../shared/eval_data plus the Vim help files when
present) as several .jsonl.zst shards, and optionally synthetic token datasets to re-shuffle (large inputs
without minutes of tokenizing); runs the CLI as a subprocess per size, interleaved with another dclm
version when `--baseline-src` names one. Prints one JSON object with every run and the curves.

    python benchmarks/bench_tokenize.py --tokens 10e6 --workers 2
    python benchmarks/bench_tokenize.py --tokens 4e6 16e6 48e6 --synthetic-gb 0.5 1 --baseline-src OLD/src
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("DCLM_SHARED_DIR", REPO.parent / "shared"))


def prose_documents(min_chars: int = 400) -> list[str]:
    """Distinct English passages: long string fields of the eval data, and Vim help sections."""
    seen, docs = set(), []

    def add(t: str):
        if len(t) >= min_chars and t not in seen:
            seen.add(t)
            docs.append(t)

    for path in sorted(glob.glob(str(SHARED / "eval_data" / "**" / "*.jsonl"), recursive=True)):
        with open(path, encoding="utf-8") as f:
            for line in f:
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue
                stack = [rec]
                while stack:
                    v = stack.pop()
                    if isinstance(v, dict):
                        stack.extend(v.values())
                    elif isinstance(v, list):
                        stack.extend(v)
                    elif isinstance(v, str):
                        add(v)
    for path in sorted(glob.glob("/usr/share/vim/vim*/doc/*.txt")):
        with open(path, encoding="utf-8", errors="replace") as f:
            for part in f.read().split("\n\n\n"):
                add(part.strip())
    return docs


def write_corpus(directory: str, target_chars: int, n_files: int) -> tuple[int, int]:
    import zstandard

    docs = prose_documents()
    if not docs:
        sys.exit("no prose found (needs ../shared/eval_data or /usr/share/vim)")
    out, size, i = [[] for _ in range(n_files)], 0, 0
    while size < target_chars:  # cycle the corpus if it is smaller than the target
        d = docs[i % len(docs)]
        out[i % n_files].append(json.dumps({"text": d, "id": i}))
        size += len(d)
        i += 1
    for k, lines in enumerate(out):
        with open(os.path.join(directory, f"part_{k:03d}.jsonl.zst"), "wb") as f:
            f.write(zstandard.ZstdCompressor(level=3).compress(("\n".join(lines) + "\n").encode()))
    return i, size


def _tree_rss(pid: int) -> tuple[int, int]:
    """(RSS, PSS) summed over `pid` and its descendants, in bytes; PSS splits pages shared after fork."""
    children: dict[int, list[int]] = {}
    for st in glob.glob("/proc/[0-9]*/stat"):
        try:
            with open(st) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(st.split("/")[2]))
        except (OSError, IndexError, ValueError):
            continue
    rss = pss = 0
    todo = [pid]
    while todo:
        p = todo.pop()
        todo.extend(children.get(p, []))
        try:
            with open(f"/proc/{p}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Rss:"):
                        rss += int(line.split()[1]) * 1024
                    elif line.startswith("Pss:"):
                        pss += int(line.split()[1]) * 1024
        except OSError:
            pass
    return rss, pss


def run_measured(cmd: list[str], env: dict | None = None) -> tuple[float, tuple[int, int], str]:
    t0 = time.time()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    peak = [0, 0]
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            rss, pss = _tree_rss(proc.pid)
            peak[0], peak[1] = max(peak[0], rss), max(peak[1], pss)
            time.sleep(0.05)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    out, _ = proc.communicate()
    wall = time.time() - t0
    stop.set()
    th.join()
    if proc.returncode:
        sys.exit(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{out}")
    return wall, peak, out


def write_synthetic_dataset(directory: str, gigabytes: float, tokenizer: str, seqlen: int = 2049,
                            shard_rows: int = 8192) -> int:
    """A token dataset of Zipf-distributed ids (native view only) to re-shuffle: sizes the shuffle far past
    the memory budget without spending minutes tokenizing. Returns the number of contexts."""
    import numpy as np

    from dclm.tokenize.shards import FORMAT
    from dclm.tokenize.tokenizer import load_encoder

    info = load_encoder(tokenizer).info
    n = int(gigabytes * 2**30 // (seqlen * 2))
    rng = np.random.default_rng(0)
    pool = np.minimum(rng.zipf(1.2, size=1 << 25), 50000).astype("<u2")  # drawing Zipf per token is slow
    rows, k = [], 0
    os.makedirs(directory, exist_ok=True)
    for start in range(0, n, shard_rows):
        m = min(shard_rows, n - start)
        at = int(rng.integers(0, len(pool) - m * seqlen))
        ids = pool[at:at + m * seqlen].reshape(m, seqlen)
        name = f"shard_{k:08d}"
        ids.tofile(os.path.join(directory, name + ".bin"))
        rows.append({"shard": name, "num_sequences": m, "bin_bytes": ids.nbytes, "tar_bytes": 0})
        k += 1
    index = {"format": FORMAT, "dtype": "<u2", "seqlen": seqlen, "eot_id": info.eot_id, "pad_id": info.pad_id,
             "vocab_size": info.vocab_size, "tokenizer": info.to_dict(), "shards": rows, "num_sequences": n,
             "runs": [], "name": "synthetic"}
    Path(directory, "index.json").write_text(json.dumps(index))
    return n


def measure(root: str, label: str, n_tokens: int | None, synthetic_gb: float | None, args, src: str | None) -> dict:
    """One CLI run over a corpus of `n_tokens` prose tokens or a synthetic dataset of `synthetic_gb` GiB."""
    inp, outp = os.path.join(root, "input"), os.path.join(root, "output")
    shutil.rmtree(outp, ignore_errors=True)
    shutil.rmtree(inp, ignore_errors=True)
    if synthetic_gb:
        n_docs, n_chars = write_synthetic_dataset(inp, synthetic_gb, args.tokenizer), 0
    else:
        os.makedirs(inp, exist_ok=True)
        n_docs, n_chars = write_corpus(inp, int(n_tokens * 3.55), args.files)
    cmd = [sys.executable, "-m", "dclm", "-q", "tokenize-shuffle", "--input", inp, "--output", outp, "--overwrite",
           "--tokenizer", args.tokenizer, "--workers", str(args.workers), "--chunk-size", str(args.chunk_size),
           "--no-progress"] + (["--memory-budget", args.memory_budget] if args.memory_budget else []) \
        + (["--no-shuffle"] if args.no_shuffle else [])
    env = dict(os.environ, PYTHONPATH=src) if src else None
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall, peak, _ = run_measured(cmd, env)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    index = json.loads(Path(outp, "index.json").read_text())
    run = index["runs"][-1]
    doc_tokens = run["doc_tokens"] or index["num_sequences"] * index["seqlen"]
    out = {
        "code": label, ("input_contexts" if synthetic_gb else "documents"): n_docs, "chars": n_chars,
        "doc_tokens": doc_tokens, "output_tokens": index["num_sequences"] * index["seqlen"],
        "fallback_documents": run["fallback_documents"], "wall_s": round(wall, 3),
        "tokens_per_s": round(doc_tokens / wall), "internal_s": run["seconds"],
        "cpu_s": round(cpu, 2), "tokens_per_cpu_s": round(doc_tokens / cpu) if cpu else None,
        "input_bytes": sum(f.stat().st_size for f in Path(inp).iterdir()),
        "stage_seconds": run["stage_seconds"], "buckets": run["buckets"],
        "peak_rss_mb": round(peak[0] / 2**20, 1), "peak_pss_mb": round(peak[1] / 2**20, 1),
        "memory_budget": args.memory_budget or "default", "load_avg": os.getloadavg(),
    }
    shutil.rmtree(inp, ignore_errors=True)
    shutil.rmtree(outp, ignore_errors=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokens", type=float, nargs="+", default=[10e6],
                    help="approximate tokens of prose per run; several values give the RSS-vs-input curve (default 10M)")
    ap.add_argument("--synthetic-gb", type=float, nargs="+", default=[],
                    help="also re-shuffle synthetic token datasets of these many GiB (no tokenizing: large inputs fast)")
    ap.add_argument("--files", type=int, default=8, help="input shards (default 8)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--tokenizer", default="EleutherAI/gpt-neox-20b")
    ap.add_argument("--memory-budget", help="passed to the CLI (default: the CLI's own default)")
    ap.add_argument("--no-shuffle", action="store_true")
    ap.add_argument("--chunk-size", type=int, default=8192)
    ap.add_argument("--baseline-src", help="a src/ folder of another dclm version, run interleaved with this one")
    ap.add_argument("--workdir", help="folder for the corpora and outputs (default: a temporary folder)")
    args = ap.parse_args()

    root = args.workdir or tempfile.mkdtemp(prefix="bench_tok_")
    codes = [("this", None)] + ([("baseline", args.baseline_src)] if args.baseline_src else [])
    runs = []
    for n in args.tokens:
        for label, src in codes:
            runs.append(measure(root, label, int(n), None, args, src))
    for gb in args.synthetic_gb:
        for label, src in codes:
            runs.append(measure(root, label, None, gb, args, src))
    curves = {}
    for label, _ in codes:
        mine = [r for r in runs if r["code"] == label]
        lo, hi = min(mine, key=lambda r: r["output_tokens"]), max(mine, key=lambda r: r["output_tokens"])
        span = (hi["output_tokens"] - lo["output_tokens"]) / 1e6
        curves[label] = {"peak_rss_mb": [r["peak_rss_mb"] for r in mine], "output_mtokens": [round(r["output_tokens"] / 1e6, 2) for r in mine],
                         "rss_growth_bytes_per_token": round((hi["peak_rss_mb"] - lo["peak_rss_mb"]) * 2**20 / (span * 1e6), 3) if span else None}
    if not args.workdir:
        shutil.rmtree(root, ignore_errors=True)
    print(json.dumps({
        "benchmark": "tokenize-shuffle end to end (process start to manifest), peak RSS of the process tree vs input size",
        "files": args.files, "workers": args.workers, "shuffle": not args.no_shuffle, "chunk_size": args.chunk_size,
        "cpus": os.cpu_count(), "curves": curves, "runs": runs,
    }, indent=1))


if __name__ == "__main__":
    main()
