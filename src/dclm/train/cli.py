"""`dclm train`."""

from __future__ import annotations

import argparse

EPILOG = """examples:
  dclm train --list-scales
  dclm train --scale smoke --data tokens/ --output runs/smoke
  dclm train --scale 411m_1x --data tokens/ --output runs/411m --resume latest
  torchrun --nproc-per-node 8 -m dclm train --scale 1b_1x --data mix.yaml --output runs/1b --fsdp --resume latest
"""


def register(sub: argparse._SubParsersAction) -> None:
    from dclm.runtime.config import add_config_arguments
    from dclm.train.config import TrainConfig

    p = sub.add_parser(
        "train",
        help="train an open_lm model with DCLM's recipe at a named scale",
        description="Train DCLM's open_lm Transformer on token data from `dclm tokenize-shuffle`: AdamW (beta2 "
        "0.95) with warmup + cosine to the cooldown lr, z-loss, grad-clip, accumulation to the global batch, "
        "bf16 + torch.compile + fused AdamW on GPU. Checkpoints are atomic and `--resume latest` continues "
        "exactly. Under torchrun the same command runs DDP (or FSDP2 with --fsdp). At the end OUTPUT/model holds "
        "the weights in the apple/DCLM-7B layout with the tokenizer, and OUTPUT/model_reference.json DCLM's "
        "model reference. Needs pip install 'dclm[model]'.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_config_arguments(p, TrainConfig)
    p.set_defaults(func=_run)


def _run(ns) -> int:
    from dclm.runtime.config import config_from_args
    from dclm.train.config import TrainConfig

    cfg = config_from_args(TrainConfig, ns)
    if cfg.list_scales:
        from dclm.train.scales import list_scales

        print(list_scales())
        return 0
    from dclm.train.run import run_train

    r = run_train(cfg)
    import os

    if int(os.environ.get("RANK", "0")):
        return 0
    curve = r.losses if len(r.losses) <= 12 else r.losses[:: max(1, len(r.losses) // 12)] + r.losses[-1:]
    print("loss: " + "  ".join(f"{s}:{v:.3f}" for s, v in curve))
    mfu = f", MFU {100 * r.mfu:.1f}%" if r.mfu is not None else ""
    print(f"steps {r.steps}/{r.total_steps}, {r.tokens:,} tokens in {r.seconds:.1f} s ({r.tokens_per_s:,.0f} tok/s{mfu})")
    if r.model_dir:
        print(f"model: {r.model_dir}")
    else:
        print(f"stopped before the end of the schedule; continue with --resume latest (checkpoints in {r.output}/checkpoints)")
    return 0
