"""`dclm convert`: open_lm training checkpoints <-> the DCLM Hugging Face layout."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from dclm.errors import DclmError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "convert",
        help="convert between open_lm .pt checkpoints and the DCLM HF layout",
        description="Convert a model checkpoint. Input: a directory in the apple/DCLM-7B layout (what dclm "
        "writes and trains into) or an open_lm training checkpoint (epoch_N.pt; `module.`/`_orig_mod.` "
        "prefixes are stripped; loaded with weights_only=True). Output: a directory in the DCLM HF layout, "
        "or an open_lm-style epoch_N.pt when OUTPUT ends in .pt.",
    )
    p.add_argument("--input", required=True, help="model directory or open_lm .pt checkpoint")
    p.add_argument("--output", required=True, help="output directory (HF layout) or .pt file (open_lm)")
    p.add_argument("--dtype", choices=["fp32", "bf16", "fp16"], default=None,
                   help="weight dtype of the output (default: keep the input's)")
    p.add_argument("--config", default=None,
                   help="named shape (411m, 1b, 3b, 7b, open_lm_1b_swiglutorch, ...) or an open_lm model JSON, "
                   "for .pt inputs whose head count cannot be read from the tensors")
    p.add_argument("--n-heads", type=int, default=None, help="attention heads, for .pt inputs (alternative to --config)")
    p.add_argument("--max-shard-gb", type=float, default=5.0, help="largest safetensors shard in GB (default 5)")
    p.set_defaults(func=run_convert)


def _args_for_pt(state, args):
    from dclm.model.checkpoint import args_from_config, infer_args
    from dclm.model.configs import get_config

    if args.config:
        path = Path(args.config)
        if path.suffix == ".json":
            if not path.is_file():
                raise DclmError(f"config not found: {path}")
            return args_from_config(json.loads(path.read_text()), str(path))
        return get_config(args.config)
    return infer_args(state, n_heads=args.n_heads, source=str(args.input))


def run_convert(args) -> int:
    from dclm.model.checkpoint import (DTYPES, build_model, load_model, load_openlm_checkpoint, save_model,
                                       save_openlm_checkpoint)

    src = Path(args.input)
    dtype = DTYPES[args.dtype] if args.dtype else None
    if src.is_dir():
        model = load_model(src)
    elif src.is_file():
        state = load_openlm_checkpoint(src)
        model = build_model(_args_for_pt(state, args), state, str(src))
    else:
        raise DclmError(f"input not found: {src}")
    if dtype is not None:
        model = model.to(dtype)
    out = Path(args.output)
    if out.suffix == ".pt":
        save_openlm_checkpoint(model, out)
    else:
        save_model(model, out, max_shard_bytes=int(args.max_shard_gb * 1e9))
    n = sum(p.numel() for p in model.parameters())
    print(json.dumps({"input": str(src), "output": str(out), "params": n,
                      "dtype": str(next(model.parameters()).dtype).removeprefix("torch.")}))
    return 0
