"""Benchmark `dclm export` and the runtimes it targets; print JSON.

`--suite decode` (default): a random-weight model of DCLM's 411M shape (dim 1024, 24 layers, 8 heads,
vocab 50432; GPT-NeoX-20B tokenizer) is saved in the DCLM layout and exported to f16 / q8_0 / q4_0 GGUF and
to ONNX (fp32, int8). Each export runs as its own `dclm export` process (wall time, peak RSS from
`wait4`, file size). Then, on the same weights and with the same thread count (torch's, 2 here), one run
each: `dclm generate`'s decoder (torch fp32), llama.cpp for each GGUF (F32 KV cache, as `dclm generate
--backend llama.cpp` uses) and ONNX Runtime for each ONNX export, all greedy through dclm's sampler, one
prompt, --new tokens with EOS off. Reported: prefill seconds and decode tokens/s (time from the first to
the last new token), whether each run's tokens equal the torch ones, the load average before and after.

`--suite rss7b`: a random-weight checkpoint of DCLM-7B's shape (fp32, 27.6 GB, sharded safetensors as
apple/DCLM-7B ships it) is written shard by shard, then exported with `dclm export gguf` (default f16) as
a child process whose peak RSS is reported; both files are deleted afterwards.

    flock /tmp/dclm-bench.lock python benchmarks/bench_export.py --workdir /tmp/bench-export
    flock /tmp/dclm-bench.lock python benchmarks/bench_export.py --suite rss7b --workdir /work/tmp-7b
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PROMPT = ("The river town woke slowly. Fishermen pulled their boats onto the gravel while the bakery on the corner "
          "opened its shutters, and the smell of bread drifted across the square.")


def loadavg() -> str:
    return Path("/proc/loadavg").read_text().strip()


def run_measured(cmd: list[str]) -> dict:
    """Run a command: wall seconds, the child's peak RSS (from wait4) and its last stdout line as JSON."""
    env = dict(os.environ, PYTHONPATH=str(REPO / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""))
    t0 = time.perf_counter()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.dup2(w, 1)
        os.close(r)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.execvpe(cmd[0], cmd, env)
    os.close(w)
    with os.fdopen(r) as f:
        out = f.read()
    _, status, usage = os.wait4(pid, 0)
    if os.waitstatus_to_exitcode(status):
        raise SystemExit(f"{' '.join(cmd)} failed (exit {os.waitstatus_to_exitcode(status)})")
    return {"wall_s": round(time.perf_counter() - t0, 2), "peak_rss_mb": round(usage.ru_maxrss / 1024),
            "result": json.loads(out.strip().splitlines()[-1])}


def dclm(*args: str) -> list[str]:
    return [sys.executable, "-m", "dclm", *args]


def build_411m(d: Path, seed: int) -> None:
    import torch

    from dclm.model import Transformer, get_config, save_model
    from dclm.tokenize.tokenizer import NEOX_NAME, resolve_tokenizer_json

    torch.manual_seed(seed)
    save_model(Transformer(get_config("411m")).eval(), d)
    (d / "tokenizer.json").write_text(resolve_tokenizer_json(NEOX_NAME), encoding="utf-8")


def timed_decode(step_fn, n_new: int) -> dict:
    """step_fn(on_token) -> ids; decode tok/s from the first to the last new token."""
    stamps: list[float] = []
    t0 = time.perf_counter()
    ids = step_fn(lambda row, ids: stamps.append(time.perf_counter()))
    prefill = stamps[0] - t0
    decode = (stamps[-1] - stamps[0]) / (len(stamps) - 1)
    return {"prefill_s": round(prefill, 3), "decode_tok_s": round(1 / decode, 2), "new_tokens": len(ids), "ids": ids}


def decode_suite(work: Path, n_new: int, seed: int) -> dict:
    import torch

    from dclm.export.backends import LlamaCppBackend, OnnxBackend, generate_ids
    from dclm.generate.engine import Decoder
    from dclm.generate.sampling import SamplingParams
    from dclm.generate.tokenizer import load_tokenizer
    from dclm.model.checkpoint import load_model

    ckpt = work / "dclm-411m"
    if not (ckpt / "config.json").is_file():
        build_411m(ckpt, seed)
    out: dict = {"shape": "411m (dim 1024, 24 layers, 8 heads, vocab 50432), random weights, seed %d" % seed,
                 "threads": torch.get_num_threads(), "loadavg_before": loadavg(), "exports": {}, "decode": {}}
    files = {}
    for t in ("f16", "q8_0", "q4_0"):
        path = work / f"dclm-411m-{t}.gguf"
        r = run_measured(dclm("-q", "export", "gguf", "--model", str(ckpt), "--output", str(path), "--outtype", t,
                              "--no-progress"))
        out["exports"][f"gguf-{t}"] = {"bytes": path.stat().st_size, "wall_s": r["wall_s"], "peak_rss_mb": r["peak_rss_mb"]}
        files[f"llama.cpp {t}"] = path
    for name, extra in (("fp32", []), ("int8", ["--int8"])):
        path = work / f"dclm-411m-onnx-{name}"
        r = run_measured(dclm("-q", "export", "onnx", "--model", str(ckpt), "--output", str(path), *extra))
        out["exports"][f"onnx-{name}"] = {"bytes": r["result"]["bytes"], "wall_s": r["wall_s"],
                                          "peak_rss_mb": r["peak_rss_mb"]}
        files[f"onnxruntime {name}"] = path
    out["exports"]["checkpoint-fp32"] = {"bytes": sum(f.stat().st_size for f in ckpt.glob("*.safetensors"))}

    params = SamplingParams.greedy_decoding(n_new, eos_id=None)
    prompt = load_tokenizer(ckpt).encode(PROMPT)
    out["prompt_tokens"] = len(prompt)
    model = load_model(ckpt)
    dec = Decoder(model)
    dec.generate([prompt], SamplingParams.greedy_decoding(2, eos_id=None))  # warm-up (kernels, huge pages)
    ref = timed_decode(lambda cb: dec.generate([prompt], params, on_token=cb)[0].ids, n_new)
    out["decode"]["dclm generate (torch fp32)"] = {k: v for k, v in ref.items() if k != "ids"}
    del dec, model
    for name, path in files.items():
        backend = LlamaCppBackend(path) if name.startswith("llama") else OnnxBackend(path)
        generate_ids(backend, prompt, SamplingParams.greedy_decoding(2, eos_id=None))  # warm-up
        r = timed_decode(lambda cb: generate_ids(backend, prompt, params, on_token=cb).ids, n_new)
        r["same_tokens_as_torch"] = r.pop("ids") == ref["ids"]
        out["decode"][name] = r
        del backend
    out["loadavg_after"] = loadavg()
    return out


def build_7b(d: Path, seed: int, shard_bytes: int = 2 << 30) -> int:
    """A random DCLM-7B-shape fp32 checkpoint in the apple/DCLM-7B layout, written one shard at a time."""
    import torch
    from safetensors.torch import save_file

    from dclm.model.checkpoint import INDEX, PREFIX, hf_config_dict
    from dclm.model.configs import get_config
    from dclm.model.openlm import Transformer

    args = get_config("7b")
    d.mkdir(parents=True, exist_ok=True)
    with torch.device("meta"):
        shapes = {k: tuple(v.shape) for k, v in Transformer(args, init=False).state_dict().items()}
    gen = torch.Generator().manual_seed(seed)
    groups, cur, size = [], [], 0
    for name, shape in shapes.items():
        n = 4 * torch.Size(shape).numel()
        if cur and size + n > shard_bytes:
            groups.append(cur)
            cur, size = [], 0
        cur.append(name)
        size += n
    groups.append(cur)
    weight_map, total = {}, 0
    for i, names in enumerate(groups, 1):
        fname = f"model-{i:05d}-of-{len(groups):05d}.safetensors"
        tensors = {}
        for name in names:
            shape = shapes[name]
            if name.endswith("inv_freq"):
                t = 1.0 / (args.rope_base ** (torch.arange(0, args.head_dim, 2, dtype=torch.float32) / args.head_dim))
            elif len(shape) == 1:
                t = torch.ones(shape)
            else:
                t = torch.randn(shape, generator=gen).mul_(args.dim ** -0.5)
            tensors[PREFIX + name] = t
            total += t.numel() * 4
        save_file(tensors, str(d / fname), metadata={"format": "pt"})
        weight_map.update({k: fname for k in tensors})
        del tensors
    (d / INDEX).write_text(json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2))
    (d / "config.json").write_text(json.dumps(hf_config_dict(args), indent=2) + "\n")
    return total


def rss7b_suite(work: Path, outtype: str, seed: int, keep: bool) -> dict:
    from dclm.tokenize.tokenizer import NEOX_NAME, resolve_tokenizer_json

    ckpt = work / "dclm-7b-random"
    out: dict = {"loadavg_before": loadavg(), "df_before": shutil.disk_usage(work.parent).free}
    t0 = time.perf_counter()
    if not (ckpt / "config.json").is_file():
        total = build_7b(ckpt, seed)
    else:
        total = sum(f.stat().st_size for f in ckpt.glob("*.safetensors"))
    (ckpt / "tokenizer.json").write_text(resolve_tokenizer_json(NEOX_NAME), encoding="utf-8")
    out["checkpoint"] = {"shape": "7b (dim 4096, 32 layers, 32 heads, vocab 50432), fp32, random",
                         "bytes": total, "build_s": round(time.perf_counter() - t0, 1)}
    gguf = work / f"dclm-7b-{outtype}.gguf"
    r = run_measured(dclm("-q", "export", "gguf", "--model", str(ckpt), "--output", str(gguf), "--outtype", outtype,
                          "--no-progress"))
    out["export"] = {"outtype": outtype, "bytes": gguf.stat().st_size, "wall_s": r["wall_s"],
                     "peak_rss_mb": r["peak_rss_mb"], "largest_tensor_mb": round(50432 * 4096 * 4 / 2**20)}
    out["loadavg_after"] = loadavg()
    if not keep:
        gguf.unlink()
        shutil.rmtree(ckpt)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--suite", choices=["decode", "rss7b"], default="decode")
    ap.add_argument("--workdir", default="/tmp/bench-export", help="where checkpoints and exports are written")
    ap.add_argument("--new", type=int, default=64, help="new tokens per decode run (default 64)")
    ap.add_argument("--outtype", default="f16", help="GGUF type of the 7B export (default f16)")
    ap.add_argument("--keep", action="store_true", help="keep the 7B files")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    sys.path.insert(0, str(REPO / "src"))
    work = Path(a.workdir)
    work.mkdir(parents=True, exist_ok=True)
    res = decode_suite(work, a.new, a.seed) if a.suite == "decode" else rss7b_suite(work, a.outtype, a.seed, a.keep)
    res["machine"] = f"{os.cpu_count()} cores, shared with other developers"
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
