"""Decode and prefill speed of dclm's generation loop against transformers' LlamaForCausalLM.generate.

Both models get the same shape (width, depth, heads, SwiGLU hidden size, vocabulary, untied head) and dtype,
random weights, greedy decoding with no stop token, in the same process. Decode tok/s is measured as
(tokens generated after the first) / (time of an N-token run minus a 1-token run), so prefill is excluded.

    python benchmarks/bench_generate.py --config 100m --device cpu --dtype fp32
    DCLM_CPU_MATMUL=0 python benchmarks/bench_generate.py   # our loop on torch's CPU matmul, for comparison
    python benchmarks/bench_generate.py --config 7b --device cuda --dtype bf16 --compile --new-tokens 256

Prints one JSON object (with the machine's load average, since timings on shared machines vary).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time

from dclm.generate import passive_openmp

passive_openmp()  # before torch loads, as the CLI does


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def timed(fn, device: str, repeats: int) -> float:
    import torch

    best = float("inf")
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return best


def peak_memory_mb(device: str) -> float:
    import torch

    if device == "cuda":
        return round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # process peak RSS


def reset_peak(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="100m", help="named shape from dclm.model.configs (default 100m)")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--dtype", default="fp32", choices=["fp32", "bf16", "fp16"])
    ap.add_argument("--prompt-len", type=int, default=32, help="prompt tokens for the decode runs")
    ap.add_argument("--prefill-len", type=int, default=512, help="prompt tokens for the prefill measurement")
    ap.add_argument("--new-tokens", type=int, default=32, help="tokens generated per decode run")
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--repeats", type=int, default=3, help="best of this many runs")
    ap.add_argument("--compile", action="store_true", help="torch.compile our decode step")
    ap.add_argument("--skip-hf", action="store_true", help="measure only dclm")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = ap.parse_args()

    import torch

    from dclm.generate.engine import Decoder
    from dclm.generate.sampling import SamplingParams
    from dclm.model.checkpoint import DTYPES
    from dclm.model.configs import get_config
    from dclm.model.openlm import Transformer

    if args.threads:
        torch.set_num_threads(args.threads)
    dtype, dev = DTYPES[args.dtype], args.device
    cfg = get_config(args.config)
    load_before = loadavg()
    torch.manual_seed(0)
    with torch.device(dev):
        ours = Transformer(cfg).to(dtype).eval()
    result = {
        "config": args.config, "params": cfg.num_params(), "device": dev, "dtype": args.dtype,
        "device_name": torch.cuda.get_device_name() if dev == "cuda" else f"cpu x{torch.get_num_threads()} threads",
        "torch": torch.__version__, "prompt_len": args.prompt_len, "new_tokens": args.new_tokens,
        "compile": args.compile, "loadavg_before": load_before,
        # few-row float32 CPU products in dclm.model.cpu_matmul (DCLM_CPU_MATMUL=0 measures torch's instead)
        "cpu_matmul": dev == "cpu" and dtype == torch.float32 and os.environ.get("DCLM_CPU_MATMUL", "1") != "0",
    }
    gen = torch.Generator().manual_seed(1)
    prompts = {b: torch.randint(1, cfg.vocab_size, (b, args.prompt_len), generator=gen) for b in args.batch_sizes}
    long_prompt = torch.randint(1, cfg.vocab_size, (1, args.prefill_len), generator=gen).to(dev)

    decoder = Decoder(ours, compile=args.compile)
    greedy = lambda n: SamplingParams.greedy_decoding(n, eos_id=None)  # noqa: E731
    engines = {"dclm": {
        "decode": lambda p, n: decoder.generate(p.tolist(), greedy(n)),
        "prefill": lambda: ours(long_prompt, last_only=True),
    }}
    rows: dict = {"dclm": {}}
    reset_peak(dev)
    with torch.inference_mode():
        for p in prompts.values():
            engines["dclm"]["decode"](p, args.new_tokens)  # warm-up (and compilation)
        engines["dclm"]["prefill"]()
    rows["dclm"]["peak_memory_mb"] = peak_memory_mb(dev)

    if not args.skip_hf:
        from transformers import LlamaConfig, LlamaForCausalLM

        llama_cfg = LlamaConfig(
            vocab_size=cfg.vocab_size, hidden_size=cfg.dim, intermediate_size=cfg.ffn_hidden,
            num_hidden_layers=cfg.n_layers, num_attention_heads=cfg.n_heads, num_key_value_heads=cfg.n_heads,
            max_position_embeddings=cfg.seq_len, tie_word_embeddings=False, bos_token_id=0, eos_token_id=None,
            pad_token_id=0,
        )
        torch.manual_seed(0)
        with torch.device(dev):
            llama = LlamaForCausalLM(llama_cfg).to(dtype).eval()

        def hf_decode(p, n):
            p = p.to(dev)
            llama.generate(p, attention_mask=torch.ones_like(p), max_new_tokens=n, min_new_tokens=n,
                           do_sample=False, eos_token_id=None, pad_token_id=0)

        engines["transformers_llama"] = {"decode": hf_decode, "prefill": lambda: llama(long_prompt, logits_to_keep=1)}
        rows["transformers_llama"] = {}
        reset_peak(dev)
        with torch.inference_mode():
            for p in prompts.values():
                hf_decode(p, args.new_tokens)
            engines["transformers_llama"]["prefill"]()
        rows["transformers_llama"]["peak_memory_mb"] = peak_memory_mb(dev)

    # interleave the engines inside every repeat so a change in machine load hits both alike
    best: dict = {}
    with torch.inference_mode():
        for _ in range(args.repeats):
            for name, e in engines.items():
                for b, p in prompts.items():
                    for n in (args.new_tokens, 1):
                        t = timed(lambda: e["decode"](p, n), dev, 1)
                        best[name, b, n] = min(best.get((name, b, n), float("inf")), t)
                t = timed(e["prefill"], dev, 1)
                best[name, "prefill"] = min(best.get((name, "prefill"), float("inf")), t)
    for name in engines:
        for b in prompts:
            decode_s = best[name, b, args.new_tokens] - best[name, b, 1]
            rows[name][f"decode_tok_s_bs{b}"] = round(b * (args.new_tokens - 1) / decode_s, 2)
        rows[name]["prefill_tok_s"] = round(args.prefill_len / best[name, "prefill"], 1)
    if "transformers_llama" in rows:
        for key in [f"decode_tok_s_bs{b}" for b in prompts] + ["prefill_tok_s"]:
            rows[f"speedup_{key}"] = round(rows["dclm"][key] / rows["transformers_llama"][key], 2)
    result.update(rows)
    result["loadavg_after"] = loadavg()
    if dev == "cpu":
        result["note"] = "on CPU peak_memory_mb is the process peak RSS after each engine's warm-up (dclm first)"
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
