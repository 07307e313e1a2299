"""`dclm generate` and `dclm quantize`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from dclm.errors import DclmError

CARD = {"max_new_tokens": 50, "temperature": 0.8, "top_p": 0.8, "repetition_penalty": 1.1}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "generate",
        help="generate text with an open_lm/DCLM checkpoint",
        description="Generate with a checkpoint in the apple/DCLM-7B layout (or one made by `dclm quantize`). "
        "Defaults follow the DCLM-7B model card. One prompt streams to the terminal; several are batched "
        "(left-padded) and printed as JSON lines.",
    )
    p.add_argument("--model", required=True, help="model directory (config.json + safetensors)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--prompt", help="one prompt")
    src.add_argument("--prompts-file", help="prompts, one per line (.txt) or JSON lines with a 'prompt' or 'text' field")
    p.add_argument("--max-new-tokens", type=int, default=CARD["max_new_tokens"], help="tokens to generate per prompt (default 50)")
    p.add_argument("--temperature", type=float, default=CARD["temperature"], help="sampling temperature (default 0.8)")
    p.add_argument("--top-p", type=float, default=CARD["top_p"], help="nucleus sampling mass (default 0.8; 1 = off)")
    p.add_argument("--top-k", type=int, default=0, help="keep only the k most likely tokens (default 0 = off)")
    p.add_argument("--repetition-penalty", type=float, default=None,
                   help="CTRL repetition penalty (default 1.1; with --greedy default 1.0 = off)")
    p.add_argument("--seed", type=int, default=None, help="seed for sampling (default: nondeterministic)")
    p.add_argument("--greedy", action="store_true", help="argmax decoding (no sampling)")
    p.add_argument("--stop", action="append", default=[], help="stop string (repeatable); the output ends before it")
    p.add_argument("--batch-size", type=int, default=8, help="prompts decoded together (default 8)")
    p.add_argument("--dtype", choices=["fp32", "bf16", "fp16"], default=None,
                   help="compute dtype (default bf16 on cuda, fp32 on cpu)")
    p.add_argument("--device", choices=["cpu", "cuda"], default=None, help="device (default cuda when available)")
    p.add_argument("--tokenizer", default=None,
                   help="tokenizer.json (or directory/hub name); default MODEL/tokenizer.json, else EleutherAI/gpt-neox-20b")
    p.add_argument("--compile", action="store_true", help="torch.compile the decode step (CUDA graphs on GPU)")
    p.add_argument("--eos-id", type=int, default=0, help="stop token id (default 0 = <|endoftext|>; -1 = none)")
    p.add_argument("--backend", choices=["torch", "onnx", "llama.cpp"], default="torch",
                   help="torch (default): dclm's decoder; onnx: --model is a `dclm export onnx` directory; "
                   "llama.cpp: --model is a .gguf from `dclm export gguf` (needs llama-cpp-python)")
    p.set_defaults(func=run_generate)

    from dclm.generate.config import QuantizeConfig
    from dclm.runtime.config import add_config_arguments

    q = sub.add_parser(
        "quantize",
        help="weight-only int8 / int4 quantization of a checkpoint",
        description="Quantize every matrix of a checkpoint (the Linears, the LM head and the embedding) to int8 "
        "per output row or int4 per group of inputs, streaming one tensor at a time, so a checkpoint larger "
        "than memory quantizes. `dclm generate` runs the result, on the CPU straight from the packed weights. "
        "Prints one JSON line: sizes, time, peak memory, and with --eval-text the perplexity table.",
    )
    add_config_arguments(q, QuantizeConfig)
    q.set_defaults(func=run_quantize)


def _device_dtype(device, dtype):
    import torch

    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise DclmError("--device cuda but no CUDA device is available")
    from dclm.model.checkpoint import DTYPES

    dtype = dtype or ("bf16" if device == "cuda" else "fp32")
    return device, DTYPES[dtype]


def _read_prompts(path: str) -> list[str]:
    p = Path(path)
    if not p.is_file():
        raise DclmError(f"prompts file not found: {p}")
    prompts = []
    for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        if p.suffix == ".jsonl":
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                raise DclmError(f"{p}:{n}: not JSON") from None
            text = rec.get("prompt", rec.get("text")) if isinstance(rec, dict) else None
            if not isinstance(text, str):
                raise DclmError(f"{p}:{n}: no 'prompt' or 'text' string")
            prompts.append(text)
        else:
            prompts.append(line)
    if not prompts:
        raise DclmError(f"{p}: no prompts")
    return prompts


def run_generate(args) -> int:
    from dclm.generate import passive_openmp

    passive_openmp()
    from dclm.generate import load_for_inference
    from dclm.generate.engine import generate_text
    from dclm.generate.sampling import SamplingParams
    from dclm.generate.tokenizer import load_tokenizer

    prompts = [args.prompt] if args.prompt is not None else _read_prompts(args.prompts_file)
    if args.batch_size < 1:
        raise DclmError("--batch-size must be at least 1")
    penalty = args.repetition_penalty
    if penalty is None:
        penalty = 1.0 if args.greedy else CARD["repetition_penalty"]
    params = SamplingParams(
        max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_p=args.top_p, top_k=args.top_k,
        repetition_penalty=penalty, greedy=args.greedy, seed=args.seed, stop=args.stop,
        eos_id=None if args.eos_id < 0 else args.eos_id,
    )
    if args.backend != "torch":
        from dclm.export.backends import run_backend

        return run_backend(args, prompts, params)
    device, dtype = _device_dtype(args.device, args.dtype)
    model = load_for_inference(args.model, device=device, dtype=dtype)
    tokenizer = load_tokenizer(args.model, args.tokenizer)
    tokenizer.check_fits(model.args.vocab_size, args.model)
    stream = len(prompts) == 1
    if stream:
        sys.stdout.write(prompts[0])
        sys.stdout.flush()
    results = generate_text(model, tokenizer, prompts, params, batch_size=args.batch_size, stream=stream,
                            compile=args.compile)
    if not stream:
        for prompt, r in zip(prompts, results):
            print(json.dumps({"prompt": prompt, "completion": r.text, "finish_reason": r.finish_reason,
                              "new_tokens": len(r.ids)}, ensure_ascii=False))
    return 0


def run_quantize(ns) -> int:
    import dataclasses

    from dclm.generate import passive_openmp

    passive_openmp()

    from dclm.generate.config import QuantizeConfig
    from dclm.generate.quantize import run_quantize as run
    from dclm.runtime.config import config_from_args

    print(json.dumps(dataclasses.asdict(run(config_from_args(QuantizeConfig, ns)))))
    return 0
