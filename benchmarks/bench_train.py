"""Training-step throughput of dclm's open_lm Transformer vs transformers' LlamaForCausalLM of the same shape.

Same width, depth, heads, SwiGLU hidden size, vocabulary, sequence length, dtype, batch, optimizer (AdamW,
β2 0.95, on every parameter), loss (CE on float logits; ours adds DCLM's z-loss) and gradient clipping, in
the same process, timed steps interleaved so that machine noise hits both alike. MFU uses
dclm.train.optim.flops_per_token (6·N_non-embedding + 12·L·d·T) against --peak-tflops, or the GPU's table
value. Prints one JSON object.

    python benchmarks/bench_train.py --shape 10m --vocab-size 2048 --batch 8 --seq-len 512
    python benchmarks/bench_train.py --shape 411m --batch 16 --compile --dtype bf16   # on a GPU
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

from dclm.generate import passive_openmp

passive_openmp()  # before torch loads, as `dclm train` (the CLI) does

import torch  # noqa: E402


def llama_like(args, attn: str):
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(vocab_size=args.vocab_size, hidden_size=args.dim, intermediate_size=args.ffn_hidden,
                      num_hidden_layers=args.n_layers, num_attention_heads=args.n_heads,
                      num_key_value_heads=args.n_heads, max_position_embeddings=args.seq_len, rms_norm_eps=args.norm_eps,
                      tie_word_embeddings=False, attention_bias=False, mlp_bias=False, attn_implementation=attn)
    return LlamaForCausalLM(cfg)


def make_step(model, kind: str, device, bf16: bool, z_loss: float):
    from dclm.train.optim import lm_loss, make_optimizer

    opt = make_optimizer(model, 1e-4, 0.033, 0.95, device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)

    def step(tokens):
        with autocast:
            logits = model(tokens[:, :-1]) if kind == "dclm" else model(input_ids=tokens[:, :-1]).logits
        loss, _ = lm_loss(logits.float(), tokens[:, 1:], z_loss if kind == "dclm" else 0.0)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss

    return step


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shape", default="10m", help="a dclm.model.configs name (smoke, 10m, 100m, 411m, ...)")
    ap.add_argument("--vocab-size", type=int, default=None, help="embedding rows (default: the shape's)")
    ap.add_argument("--seq-len", type=int, default=None, help="tokens per sequence (default: the shape's)")
    ap.add_argument("--batch", type=int, default=8, help="sequences per step")
    ap.add_argument("--steps", type=int, default=6, help="timed steps per model")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps per model")
    ap.add_argument("--dtype", choices=["fp32", "bf16"], default=None, help="default: bf16 on GPU, fp32 on CPU")
    ap.add_argument("--compile", action="store_true", help="torch.compile both models")
    ap.add_argument("--llama-attn", default="sdpa", help="transformers attn_implementation for Llama")
    ap.add_argument("--peak-tflops", type=float, default=None)
    ap.add_argument("--threads", type=int, default=None)
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)

    from dclm.model.configs import get_config
    from dclm.model.openlm import Transformer
    from dclm.train.optim import flops_per_token, peak_flops

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    bf16 = (a.dtype or ("bf16" if device.type == "cuda" else "fp32")) == "bf16"
    over = {k: v for k, v in (("vocab_size", a.vocab_size), ("seq_len", a.seq_len)) if v}
    args = get_config(a.shape, **over)
    torch.manual_seed(0)
    models = {"dclm": Transformer(args).to(device), "hf_llama": llama_like(args, a.llama_attn).to(device)}
    steps = {}
    for kind, m in models.items():
        m.train()
        fwd = torch.compile(m) if a.compile else m
        steps[kind] = make_step(fwd, kind, device, bf16, 1e-4)
    g = torch.Generator().manual_seed(0)
    batch = torch.randint(0, args.vocab_size, (a.batch, args.seq_len + 1), generator=g).to(device)
    for _ in range(a.warmup):
        for kind in steps:
            steps[kind](batch)
    sync(device)
    times = {k: [] for k in steps}
    for _ in range(a.steps):
        for kind in steps:  # interleaved
            t0 = time.perf_counter()
            steps[kind](batch)
            sync(device)
            times[kind].append(time.perf_counter() - t0)
    tokens = a.batch * args.seq_len
    peak = peak_flops(device, bf16, a.peak_tflops)
    fpt = flops_per_token(args)
    out = {"shape": a.shape, "model_args": args.to_dict(), "batch": a.batch, "tokens_per_step": tokens,
           "dtype": "bf16" if bf16 else "fp32", "compile": a.compile, "device": str(device),
           "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
           "threads": torch.get_num_threads(), "torch": torch.__version__, "flops_per_token": fpt,
           "params": {k: sum(p.numel() for p in m.parameters()) for k, m in models.items()}}
    for kind, ts in times.items():
        med = statistics.median(ts)
        out[kind] = {"step_s_median": med, "step_s_all": ts, "tokens_per_s": tokens / med,
                     "mfu": tokens / med * fpt / peak if peak else None}
    out["speedup_dclm_vs_hf_llama"] = out["dclm"]["tokens_per_s"] / out["hf_llama"]["tokens_per_s"]
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
