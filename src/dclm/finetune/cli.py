"""`dclm finetune`."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    from dclm.finetune.config import FinetuneConfig
    from dclm.runtime.config import add_config_arguments

    p = sub.add_parser(
        "finetune",
        help="LoRA fine-tuning (PEFT) of a DCLM/open_lm checkpoint",
        description="Train a LoRA adapter on plain-text pages or prompt/response JSONL (loss on the "
        "responses only); bf16 on GPU, fp32 on CPU; resumable with --resume latest. The adapter is saved "
        "in PEFT's format (PeftModel.from_pretrained and `dclm serve --adapter` load it); --merge also "
        "writes the merged model in the DCLM HF layout. Needs pip install 'dclm[finetune]'.",
    )
    add_config_arguments(p, FinetuneConfig)
    p.set_defaults(func=_run)


def _run(ns) -> int:
    from dclm.finetune.config import FinetuneConfig
    from dclm.finetune.train import run_finetune
    from dclm.runtime.config import config_from_args

    r = run_finetune(config_from_args(FinetuneConfig, ns))
    curve = r.losses if len(r.losses) <= 20 else r.losses[:: max(1, len(r.losses) // 20)] + r.losses[-1:]
    print(f"trainable parameters: {r.trainable_params:,} / {r.total_params:,} ({100 * r.trainable_share:.3f}%)")
    print("training loss: " + " ".join(f"{x:.3f}" for x in curve))
    if r.eval_loss_before is not None:
        print(f"held-out loss: {r.eval_loss_before:.4f} -> {r.eval_loss_after:.4f} ({r.eval_examples} examples)")
    print(f"adapter: {r.output}" + (f"; merged model: {r.merged}" if r.merged else ""))
    return 0
