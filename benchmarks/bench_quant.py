"""Quantized CPU decoding: dclm fp32 / bf16 / int8 / int4 against llama.cpp F32 / F16 / Q8_0 / Q4_0, one run.

All from the same random weights of one shape (default DCLM's 411M): dclm's checkpoint (fp32, a bf16 copy,
and `dclm quantize --bits 8` / `--bits 4` of it), and `dclm export gguf` of the same checkpoint for
llama.cpp (llama-cpp-python, the optional benchmark extra; its default F16 KV cache). Same prompt, same
thread count (default 2), greedy. For each:
- decode tok/s: the time of one new token per step after a 5-token prompt, best of --repeats rounds (the
  engines take turns inside each round, so a change in machine load hits all of them alike); batch 8 for
  dclm (llama-cpp-python's API decodes one sequence);
- whole-command load time: `dclm generate --max-new-tokens 1` as a subprocess, wall clock (llama.cpp: the
  model constructor in this process, once the file is in the page cache);
- file size, and bytes of weights read per token against the memory read bandwidth measured in the same
  run (a 2 GiB float32 sum on the same threads): how close decoding comes to the physical limit.
Options add the streaming `dclm quantize` peak RSS on a larger shape (--quantize-rss 1b: DCLM's 1.4B)
and a directly built DCLM-7B-shape int4 checkpoint's decode speed (--int4-7b).

    python benchmarks/bench_quant.py --work /tmp/bench-quant
    python benchmarks/bench_quant.py --work /tmp/bench-quant --quantize-rss 1b --int4-7b

Prints one JSON object (with the machine's load average, since timings on shared machines vary).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from dclm.generate import passive_openmp

passive_openmp()  # before torch loads, as the CLI does

PROMPT = "The capital of France is"


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def dclm(*args: str) -> list[str]:
    return [sys.executable, "-m", "dclm", *args]


def run_measured(cmd: list[str]) -> dict:
    """Wall time and output of a child command (peak RSS comes from `dclm quantize`'s own report: a child's
    ru_maxrss includes what this process held when it forked)."""
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{p.stderr}")
    return {"wall_s": round(time.perf_counter() - t0, 2), "stdout": p.stdout}


def write_random_checkpoint(d: Path, args, seed: int, dtype=None) -> None:
    """A random open_lm checkpoint in the DCLM HF layout, one tensor at a time (the model is never whole in
    memory), matrices ~ N(0, 0.02), norm gains 1, the standard rotary frequencies."""
    import torch

    from dclm.generate.load import skeleton
    from dclm.generate.weights import Writer
    from dclm.io import atomic_open
    from dclm.model.checkpoint import PREFIX, hf_config_dict

    dtype = dtype or torch.float32
    d.mkdir(parents=True, exist_ok=True)
    shapes = {k: (tuple(v.shape), v.dtype) for k, v in skeleton(args).state_dict().items()}
    entries = [(PREFIX + k, torch.float32 if k.endswith("inv_freq") else dtype, s) for k, (s, _) in shapes.items()]
    w = Writer(d / "model.safetensors", entries)
    g = torch.Generator().manual_seed(seed)
    inv_freq = 1.0 / (args.rope_base ** (torch.arange(0, args.head_dim, 2, dtype=torch.float32) / args.head_dim))
    for name, dt, shape in entries:
        if name.endswith("inv_freq"):
            t = inv_freq
        elif len(shape) == 2:
            t = torch.empty(shape, dtype=torch.float32)
            for r in range(0, shape[0], 4096):
                t[r:r + 4096].normal_(0, 0.02, generator=g)
        else:
            t = torch.ones(shape)
        w.write(name, t.to(dt))
    w.close()
    with atomic_open(str(d / "config.json"), "w") as f:
        f.write(json.dumps(hf_config_dict(args, dtype), indent=2) + "\n")


def matrix_bytes(model_dir: Path) -> int:
    """Bytes a decode step reads: every matrix but the embedding (one row of it is looked up)."""
    from dclm.generate.weights import map_checkpoint

    return sum(t.numel() * t.element_size() for k, t in map_checkpoint(model_dir).items()
               if "tok_embeddings" not in k and t.dim() >= 1 and not k.endswith(("norm.weight", "inv_freq")))


def read_bandwidth_gbs(threads: int) -> float:
    import torch

    x = torch.ones(2**29)  # 2 GiB of float32
    x.sum()
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        x.sum()
        best = min(best, time.perf_counter() - t0)
    return round(x.numel() * 4 / best / 1e9, 2)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="411m", help="named shape (dclm.model.configs); default 411m")
    ap.add_argument("--work", default="/tmp/bench-quant", help="folder for the checkpoints (reused when present)")
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-llama", action="store_true", help="no llama.cpp side")
    ap.add_argument("--quantize-rss", default=None, help="also stream-quantize a random checkpoint of this shape "
                    "(e.g. 1b) with `dclm quantize --bits 4` and report its peak RSS")
    ap.add_argument("--int4-7b", action="store_true", help="also build a DCLM-7B-shape int4 checkpoint directly "
                    "(about 4 GB) and measure its decode speed")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from dclm.export.backends import LlamaCppBackend
    from dclm.generate import load_for_inference
    from dclm.generate.engine import Decoder
    from dclm.generate.sampling import SamplingParams
    from dclm.model.configs import get_config
    from dclm.tokenize.tokenizer import NEOX_NAME, resolve_tokenizer_json

    shape = get_config(args.config)
    work = Path(args.work) / args.config
    src = work / "fp32"
    out: dict = {"config": args.config, "params": shape.num_params(), "threads": args.threads,
                 "torch": torch.__version__, "new_tokens": args.new_tokens, "loadavg_before": loadavg()}
    if not (src / "config.json").is_file():
        write_random_checkpoint(src, shape, args.seed)
        (src / "tokenizer.json").write_text(resolve_tokenizer_json(NEOX_NAME), encoding="utf-8")
    dirs = {"fp32": src, "bf16": work / "bf16", "int8": work / "int8", "int4": work / "int4"}
    if not (dirs["bf16"] / "config.json").is_file():
        write_random_checkpoint(dirs["bf16"], shape, args.seed, torch.bfloat16)
        (dirs["bf16"] / "tokenizer.json").write_text(resolve_tokenizer_json(NEOX_NAME), encoding="utf-8")
    quantize = {}
    for bits in (8, 4):
        d = dirs[f"int{bits}"]
        if not (d / "config.json").is_file():
            r = run_measured(dclm("quantize", "--model", str(src), "--bits", str(bits), "--output", str(d)))
            quantize[f"int{bits}"] = {"wall_s": r["wall_s"], "peak_rss_mb": json.loads(r["stdout"])["peak_rss_mb"]}
    out["quantize_411m"] = quantize
    ggufs = {}
    if not args.skip_llama:
        for t in ("f32", "f16", "q8_0", "q4_0"):
            path = work / f"model-{t}.gguf"
            if not path.is_file():
                run_measured(dclm("-q", "export", "gguf", "--model", str(src), "--output", str(path), "--outtype", t,
                                  "--no-progress"))
            ggufs[{"f32": "F32", "f16": "F16", "q8_0": "Q8_0", "q4_0": "Q4_0"}[t]] = path

    sizes = {k: sum(f.stat().st_size for f in d.glob("*.safetensors")) for k, d in dirs.items()}
    sizes.update({f"llama.cpp {k}": p.stat().st_size for k, p in ggufs.items()})
    out["file_bytes"] = sizes
    read_per_token = {k: matrix_bytes(d) for k, d in dirs.items()}
    out["weight_bytes_read_per_token"] = read_per_token

    # whole-command load + 1 token, before anything big is resident in this process
    load = {}
    for k, d in dirs.items():
        dtype = ["--dtype", "bf16"] if k == "bf16" else []
        cmd = dclm("generate", "--model", str(d), "--prompt", PROMPT, "--max-new-tokens", "1", "--greedy", "--device",
                   "cpu", *dtype)
        run_measured(cmd)  # the files into the page cache
        load[k] = min(run_measured(cmd)["wall_s"] for _ in range(2))
    out["generate_1_token_whole_command_s"] = load
    out["read_bandwidth_gbs"] = read_bandwidth_gbs(args.threads)

    prompt = [int(t) for t in torch.randint(1, shape.vocab_size, (5,), generator=torch.Generator().manual_seed(1))]
    engines = {}
    for k, d in dirs.items():
        model = load_for_inference(d, dtype=torch.bfloat16 if k == "bf16" else torch.float32)
        engines[f"dclm {k}"] = Decoder(model)
    llamas = {}
    for k, p in ggufs.items():
        t0 = time.perf_counter()
        llamas[f"llama.cpp {k}"] = LlamaCppBackend(p, n_ctx=256, threads=args.threads, f32_cache=False)
        out.setdefault("llama_cpp_load_s", {})[k] = round(time.perf_counter() - t0, 3)

    def dclm_decode(dec, batch):
        greedy = lambda n: SamplingParams.greedy_decoding(n, eos_id=None)  # noqa: E731
        t0 = time.perf_counter()
        dec.generate([prompt] * batch, greedy(1))
        t1 = time.perf_counter()
        dec.generate([prompt] * batch, greedy(args.new_tokens))
        t2 = time.perf_counter()
        return (t2 - t1) - (t1 - t0)  # the N-token run less the 1-token run: N-1 decode steps

    def llama_decode(backend):
        import numpy as np

        backend.reset()
        logits = backend.feed(prompt)
        t0 = time.perf_counter()
        for _ in range(args.new_tokens - 1):
            logits = backend.feed([int(np.argmax(logits))])
        return time.perf_counter() - t0

    for dec in engines.values():
        dclm_decode(dec, 1)  # warm-up
    for b in llamas.values():
        llama_decode(b)
    best: dict = {}
    for _ in range(args.repeats):
        for name, dec in engines.items():
            for batch in args.batch_sizes:
                best[name, batch] = min(best.get((name, batch), float("inf")), dclm_decode(dec, batch))
                time.sleep(0.2)
        for name, b in llamas.items():
            best[name, 1] = min(best.get((name, 1), float("inf")), llama_decode(b))
            time.sleep(0.2)
    steps = args.new_tokens - 1
    decode = {}
    for (name, batch), s in best.items():
        decode.setdefault(name, {})[f"bs{batch}_tok_s"] = round(batch * steps / s, 2)
    fp32 = decode["dclm fp32"]["bs1_tok_s"]
    bw = out["read_bandwidth_gbs"]
    for k in dirs:
        row = decode[f"dclm {k}"]
        row["vs_fp32_bs1"] = round(row["bs1_tok_s"] / fp32, 2)
        row["bandwidth_used_bs1_pct"] = round(100 * read_per_token[k] * row["bs1_tok_s"] / 1e9 / bw, 1)
    for k in ggufs:
        row = decode[f"llama.cpp {k}"]
        row["vs_dclm_fp32_bs1"] = round(row["bs1_tok_s"] / fp32, 2)
    for ours, theirs in (("int8", "Q8_0"), ("int4", "Q4_0"), ("bf16", "F16"), ("fp32", "F32")):
        if f"llama.cpp {theirs}" in decode:
            decode[f"dclm {ours}"][f"vs_llama.cpp_{theirs}"] = round(
                decode[f"dclm {ours}"]["bs1_tok_s"] / decode[f"llama.cpp {theirs}"]["bs1_tok_s"], 2)
    out["decode"] = decode
    del engines, llamas

    if args.quantize_rss:
        big = get_config(args.quantize_rss)
        bsrc = Path(args.work) / args.quantize_rss / "fp32"
        if not (bsrc / "config.json").is_file():
            write_random_checkpoint(bsrc, big, args.seed)
        from dclm.generate.weights import map_checkpoint

        largest = max(t.numel() * t.element_size() for t in map_checkpoint(bsrc).values())
        r = run_measured(dclm("quantize", "--model", str(bsrc), "--bits", "4", "--output", str(bsrc.parent / "int4")))
        out["streaming_quantize"] = {"config": args.quantize_rss, "params": big.num_params(),
                                     "source_bytes": sum(f.stat().st_size for f in bsrc.glob("*.safetensors")),
                                     "largest_tensor_bytes": largest, "wall_s": r["wall_s"],
                                     "peak_rss_mb": json.loads(r["stdout"])["peak_rss_mb"]}
    if args.int4_7b:
        out["int4_7b"] = int4_7b(Path(args.work) / "7b-int4", args, prompt)
    out["loadavg_after"] = loadavg()
    out["note"] = ("decode = one new token per step after a 5-token prompt, best of the rounds; llama.cpp with its "
                   "default F16 KV cache; bandwidth_used = weight bytes per token x tok/s / the measured read bandwidth")
    print(json.dumps(out))
    return 0


def int4_7b(d: Path, args, prompt) -> dict:
    """A random DCLM-7B-shape int4 checkpoint written directly in the quantized format, and its decoding."""
    import torch

    from dclm.generate import load_for_inference
    from dclm.generate.engine import Decoder
    from dclm.generate.quantize import _empty_quantized, quantization_entry
    from dclm.generate.sampling import SamplingParams
    from dclm.generate.weights import Writer
    from dclm.io import atomic_open
    from dclm.model.checkpoint import PREFIX, hf_config_dict
    from dclm.model.configs import get_config

    shape = get_config("7b")
    if not (d / "config.json").is_file():
        d.mkdir(parents=True, exist_ok=True)
        state = _empty_quantized(shape, 4, 128, torch.float32).state_dict()
        entries = [(PREFIX + k.replace(".inner.", "."), v.dtype, tuple(v.shape)) for k, v in state.items()]
        w = Writer(d / "model.safetensors", entries)
        g = torch.Generator().manual_seed(args.seed)
        for name, dt, s in entries:
            if dt == torch.uint8:
                t = torch.randint(0, 256, s, dtype=torch.uint8, generator=g)
            elif name.endswith(".scales"):
                t = torch.full(s, 0.02 / 7.5, dtype=torch.float16)
            elif name.endswith(".zeros"):
                t = torch.full(s, -0.02, dtype=torch.float16)
            elif name.endswith("inv_freq"):
                t = 1.0 / (shape.rope_base ** (torch.arange(0, shape.head_dim, 2, dtype=torch.float32) / shape.head_dim))
            else:
                t = torch.ones(s, dtype=dt)
            w.write(name, t)
        w.close()
        cfg = hf_config_dict(shape, torch.float32)
        cfg["quantization"] = quantization_entry(4, 128)
        with atomic_open(str(d / "config.json"), "w") as f:
            f.write(json.dumps(cfg, indent=2) + "\n")
    t0 = time.perf_counter()
    dec = Decoder(load_for_inference(d, dtype=torch.float32))
    load_s = time.perf_counter() - t0
    greedy = lambda n: SamplingParams.greedy_decoding(n, eos_id=None)  # noqa: E731
    dec.generate([prompt], greedy(2))
    n = 17
    t1 = time.perf_counter()
    dec.generate([prompt], greedy(1))
    t2 = time.perf_counter()
    dec.generate([prompt], greedy(n))
    t3 = time.perf_counter()
    return {"file_bytes": (d / "model.safetensors").stat().st_size, "load_s": round(load_s, 2),
            "decode_bs1_tok_s": round((n - 1) / ((t3 - t2) - (t2 - t1)), 2),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


if __name__ == "__main__":
    raise SystemExit(main())
