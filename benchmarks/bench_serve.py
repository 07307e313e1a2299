"""Throughput of `dclm serve` (continuous batching) at 1, 4 and 16 concurrent clients, on one server.

A random-weight model of a named shape (default 20m: width 256, 4 layers, GPT-NeoX vocabulary) is saved
with a small trained tokenizer and served by `dclm serve` in a subprocess. The same requests (token-id
prompts of --prompt-len tokens, --max-tokens sampled tokens each, seeded) are sent by 1, 4 and 16 client
threads; concurrency 1 is serving them one at a time. Optionally a soak: 16 clients for --soak seconds,
counting errors.

    flock /tmp/dclm-bench.lock python benchmarks/bench_serve.py --rounds 3
    flock /tmp/dclm-bench.lock python benchmarks/bench_serve.py --soak 120
    python benchmarks/bench_serve.py --config 1b --device cuda    # on a GPU

Prints one JSON object. On a shared machine wall-clock rates follow the CPU share the server happens to
get, so each level also reports the server process's CPU time per generated token (Linux), which does not,
and --rounds repeats the levels in turn (1, 4, 16, 1, 4, 16, ...) so that every level sees the same drift
of the load; the speedups are of the per-level medians.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def make_model(d: Path, config: str) -> int:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    from dclm.model import Transformer, get_config, save_model

    torch.manual_seed(0)
    model = Transformer(get_config(config)).eval()
    save_model(model, d)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=1000, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([Path(__file__).read_text()] * 4, trainer)
    tok.save(str(d / "tokenizer.json"))
    return model.args.vocab_size


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(model_dir: Path, args) -> tuple[subprocess.Popen, str]:
    import httpx2

    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    cmd = [sys.executable, "-m", "dclm", "-q", "serve", "--model", str(model_dir), "--port", str(port),
           "--served-model-name", "bench", "--max-batch-size", str(max(args.concurrency)), "--device", args.device,
           "--context-length", str(args.prompt_len + args.max_tokens + 1)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        if proc.poll() is not None:
            raise SystemExit(f"server exited: {proc.stderr.read()}")
        try:
            if httpx2.get(url + "/health", timeout=1).status_code == 200:
                return proc, url
        except httpx2.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit("server did not start")


def server_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of process `pid` so far (Linux /proc), or None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def one_request(client, url: str, prompt: list[int], args, seed: int) -> tuple[int, float]:
    t0 = time.perf_counter()
    r = client.post(url + "/v1/completions", timeout=600, json={
        "model": "bench", "prompt": prompt, "max_tokens": args.max_tokens, "temperature": 0.8, "top_p": 0.95,
        "seed": seed})
    r.raise_for_status()
    return r.json()["usage"]["completion_tokens"], time.perf_counter() - t0


def run_level(url: str, prompts: list[list[int]], args, concurrency: int, pid: int | None = None) -> dict:
    import httpx2

    local = threading.local()
    errors = []

    def job(i: int):
        if not hasattr(local, "client"):
            local.client = httpx2.Client()
        try:
            return one_request(local.client, url, prompts[i], args, i)
        except Exception as e:  # counted, not fatal: the report says how many failed
            errors.append(repr(e))
            return 0, 0.0

    cpu0 = server_cpu_seconds(pid) if pid else None
    t0 = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        done = list(pool.map(job, range(len(prompts))))
    wall = time.perf_counter() - t0
    cpu1 = server_cpu_seconds(pid) if pid else None
    tokens = sum(n for n, _ in done)
    out = {"concurrency": concurrency, "requests": len(prompts), "errors": len(errors), "seconds": round(wall, 3),
           "requests_per_s": round(len(prompts) / wall, 3), "generated_tokens_per_s": round(tokens / wall, 2),
           "median_latency_s": round(statistics.median(s for _, s in done), 3), "loadavg": loadavg()}
    if cpu0 is not None and cpu1 is not None and tokens:
        out["server_cpu_ms_per_token"] = round(1000 * (cpu1 - cpu0) / tokens, 3)
    return out


def soak(url: str, args, vocab: int, clients: int) -> dict:
    import random

    import httpx2

    stop_at = time.monotonic() + args.soak
    counts = {"requests": 0, "errors": 0, "tokens": 0}
    lock = threading.Lock()
    first_errors: list[str] = []

    def client_loop(k: int):
        rng = random.Random(k)
        with httpx2.Client() as c:
            i = 0
            while time.monotonic() < stop_at:
                prompt = [rng.randrange(1, vocab) for _ in range(rng.randint(4, args.prompt_len))]
                try:
                    n, _ = one_request(c, url, prompt, args, k * 100000 + i)
                    with lock:
                        counts["requests"] += 1
                        counts["tokens"] += n
                except Exception as e:
                    with lock:
                        counts["errors"] += 1
                        first_errors.append(repr(e))
                i += 1

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client_loop, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    return {"clients": clients, "seconds": round(wall, 1), **counts,
            "generated_tokens_per_s": round(counts["tokens"] / wall, 2), "first_errors": first_errors[:3],
            "loadavg": loadavg()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="20m", help="named shape from dclm.model.configs (default 20m)")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    ap.add_argument("--requests", type=int, default=32, help="requests per concurrency level")
    ap.add_argument("--prompt-len", type=int, default=32)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=1, help="times to run the levels, in turn (medians are compared)")
    ap.add_argument("--soak", type=float, default=0, help="seconds of 16-client load after the levels (0 = none)")
    args = ap.parse_args()
    if args.rounds < 1:
        ap.error("--rounds must be at least 1")

    import random

    with tempfile.TemporaryDirectory() as tmp:
        vocab = make_model(Path(tmp) / "model", args.config)
        rng = random.Random(0)
        prompts = [[rng.randrange(1, vocab) for _ in range(args.prompt_len)] for _ in range(args.requests)]
        proc, url = start_server(Path(tmp) / "model", args)
        try:
            run_level(url, prompts[:4], args, 4)  # warm-up (first-call compilation, allocator)
            levels = [{"round": r, **run_level(url, prompts, args, c, proc.pid)}
                      for r in range(args.rounds) for c in args.concurrency]
            result = {"bench": "serve", "config": args.config, "device": args.device, "cpu_count": os.cpu_count(),
                      "prompt_len": args.prompt_len, "max_tokens": args.max_tokens, "levels": levels}

            def median_of(key: str, c: int):
                values = [lv[key] for lv in levels if lv["concurrency"] == c and key in lv]
                return statistics.median(values) if values else None

            rate = {c: median_of("generated_tokens_per_s", c) for c in args.concurrency}
            cpu = {c: median_of("server_cpu_ms_per_token", c) for c in args.concurrency}
            result["median_generated_tokens_per_s"] = {str(c): v for c, v in rate.items()}
            if 1 in rate:
                result["speedup_tokens_per_s_vs_one_at_a_time"] = {
                    str(c): round(v / rate[1], 2) for c, v in rate.items()}
                if cpu[1] is not None:
                    result["server_cpu_per_token_gain_vs_one_at_a_time"] = {
                        str(c): round(cpu[1] / v, 2) for c, v in cpu.items() if v}
            if args.soak:
                result["soak"] = soak(url, args, vocab, max(args.concurrency))
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
        result["server_exit_code"] = proc.returncode
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
