"""run_finetune: LoRA with PEFT on OpenLMForCausalLM, resumable, adapter in PEFT's own format.

OUTPUT/
  adapter_config.json, adapter_model.safetensors   the final adapter (PeftModel.from_pretrained loads it)
  checkpoints/step-NNNNNN/                         adapter + trainer_state.pt every --save-every steps
  finetune.json                                    the FinetuneResult (loss curve, eval losses, share)
  merged/                                          with --merge: the base with the adapter folded in
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import uuid
from pathlib import Path

from dclm.errors import DclmError
from dclm.finetune.config import FinetuneConfig, FinetuneResult
from dclm.finetune.data import IGNORE, build_examples, collate, read_records

log = logging.getLogger(__name__)
STATE = "trainer_state.pt"


def _imports():
    try:
        import peft
        import torch
        import transformers  # noqa: F401
    except ImportError as e:
        raise DclmError(f"dclm finetune needs {e.name}: pip install 'dclm[finetune]'") from None
    return torch, peft


def split(examples: list, fraction: float, seed: int) -> tuple[list, list]:
    import random

    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    n_eval = math.ceil(fraction * len(order)) if fraction and len(order) > 1 else 0
    return [examples[i] for i in order[n_eval:]], [examples[i] for i in order[:n_eval]]


def micro_batches(n: int, batch_size: int, epochs: int, seed: int) -> list[list[int]]:
    """Every epoch's shuffled batches, in order: a resumed run skips the ones already consumed."""
    import torch

    out = []
    for e in range(epochs):
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed + e)).tolist()
        out += [perm[i : i + batch_size] for i in range(0, n, batch_size)]
    return out


def eval_loss(model, examples, batch_size: int, device) -> float | None:
    """Token-weighted mean loss over the held-out examples."""
    import torch

    if not examples:
        return None
    total, count = 0.0, 0
    model.eval()
    with torch.no_grad():
        for i in range(0, len(examples), batch_size):
            ids, labels = collate(examples[i : i + batch_size])
            n = int((labels[:, 1:] != IGNORE).sum())
            out = model(input_ids=ids.to(device), labels=labels.to(device), use_cache=False)
            total, count = total + float(out.loss) * n, count + n
    model.train()
    return total / max(count, 1)


def _save_dir(save, target: Path) -> None:
    """Write a directory next to `target` and rename it into place, so a crash leaves no half checkpoint."""
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}")
    save(tmp)
    if target.exists():
        shutil.rmtree(target)
    os.replace(tmp, target)


def latest_checkpoint(output: Path) -> Path | None:
    found = sorted((output / "checkpoints").glob("step-*"))
    return found[-1] if found else None


def run_finetune(config: FinetuneConfig) -> FinetuneResult:
    torch, peft = _imports()
    import dclm.hf  # noqa: F401  (registers model_type "openlm")
    from dclm.generate.tokenizer import load_tokenizer
    from dclm.hf import OpenLMForCausalLM
    from dclm.model.checkpoint import read_config
    from dclm.runtime.config import ConfigError
    from dclm.runtime.progress import progress_bar, progress_write

    read_config(config.model)  # one-line errors for a missing or foreign model directory
    device = config.device if config.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device", "cuda asked for but no CUDA device is available")
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    output = Path(config.output)
    resume_from = latest_checkpoint(output) if config.resume == "latest" else None
    if config.resume == "latest" and resume_from is None:
        log.info("no checkpoint in %s: starting from scratch", output)

    tokenizer = load_tokenizer(config.model, config.tokenizer)
    examples = build_examples(read_records(config.data), tokenizer, config.max_seq_len)
    train, held_out = split(examples, config.eval_fraction, config.seed)
    if not train:
        raise DclmError("no training examples left after the held-out split")

    torch.manual_seed(config.seed)
    base = OpenLMForCausalLM.from_pretrained(config.model, dtype=dtype).to(device)
    total_params = sum(p.numel() for p in base.parameters())
    if resume_from is not None:
        model = peft.PeftModel.from_pretrained(base, resume_from, is_trainable=True)
    else:
        lora = peft.LoraConfig(r=config.lora_rank, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                               target_modules=config.target_modules(), bias="none", task_type="CAUSAL_LM")
        model = peft.get_peft_model(base, lora)
    model.train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    n_trainable = sum(p.numel() for p in trainable)
    progress_write(f"trainable parameters: {n_trainable:,} of {total_params:,} "
                   f"({100 * n_trainable / total_params:.3f}%)")

    batches = micro_batches(len(train), config.batch_size, config.epochs, config.seed)
    total_steps = math.ceil(len(batches) / config.grad_accum)
    if config.max_steps is not None:
        total_steps = min(total_steps, config.max_steps)
    warmup = max(1, min(100, total_steps // 20))

    def lr_factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        t = (step - warmup) / max(1, total_steps - warmup)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))

    opt_kw = {"fused": True} if device == "cuda" else {}
    optimizer = torch.optim.AdamW(trainable, lr=config.lr, weight_decay=config.weight_decay, **opt_kw)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)
    step, losses, loss_before = 0, [], None
    if resume_from is not None:
        state = torch.load(resume_from / STATE, weights_only=False)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        step, losses, loss_before = state["step"], state["losses"], state["eval_loss_before"]
        torch.set_rng_state(state["rng"])
        progress_write(f"resumed from {resume_from} at step {step}")
    else:
        loss_before = eval_loss(model, held_out, config.batch_size, device)

    def checkpoint() -> None:
        def save(d: Path) -> None:
            model.save_pretrained(d)
            torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "step": step,
                        "losses": losses, "eval_loss_before": loss_before, "rng": torch.get_rng_state()}, d / STATE)
        (output / "checkpoints").mkdir(parents=True, exist_ok=True)
        _save_dir(save, output / "checkpoints" / f"step-{step:06d}")
        for old in sorted((output / "checkpoints").glob("step-*"))[:-2]:  # keep the newest two
            shutil.rmtree(old)

    bar = progress_bar(total_steps, desc="finetune", unit="step", enabled=config.progress, initial=step)
    while step < total_steps:
        optimizer.zero_grad(set_to_none=True)
        step_loss = 0.0
        group = batches[step * config.grad_accum : (step + 1) * config.grad_accum]
        for idx in group:
            ids, labels = collate([train[i] for i in idx])
            out = model(input_ids=ids.to(device), labels=labels.to(device), use_cache=False)
            (out.loss / len(group)).backward()
            step_loss += float(out.loss.detach()) / len(group)
        optimizer.step()
        scheduler.step()
        step += 1
        losses.append(round(step_loss, 5))
        bar.update(1)
        bar.set_postfix(loss=f"{step_loss:.4f}")
        if step % config.save_every == 0 and step < total_steps:
            checkpoint()
    bar.close()

    loss_after = eval_loss(model, held_out, config.batch_size, device)
    output.mkdir(parents=True, exist_ok=True)
    _save_dir(model.save_pretrained, output / "adapter.tmp")
    for f in (output / "adapter.tmp").iterdir():
        os.replace(f, output / f.name)
    (output / "adapter.tmp").rmdir()
    merged = None
    if config.merge:
        merged = str(_merge(model, config, output / "merged"))
    result = FinetuneResult(output=str(output), trainable_params=n_trainable, total_params=total_params,
                            steps=step, train_examples=len(train), eval_examples=len(held_out),
                            eval_loss_before=loss_before, eval_loss_after=loss_after, losses=losses, merged=merged)
    from dclm.io import atomic_open
    from dclm.runtime.config import to_dict

    with atomic_open(str(output / "finetune.json"), "wb") as f:
        f.write((json.dumps({**to_dict(result), "trainable_share": result.trainable_share}, indent=1) + "\n").encode())
    return result


def _merge(model, config: FinetuneConfig, target: Path) -> Path:
    """Fold the adapter into the base weights and save it in the DCLM HF layout (+ the tokenizer)."""
    from dclm.model.checkpoint import save_model

    merged = model.merge_and_unload()

    def save(d: Path) -> None:
        save_model(merged.model, d)
        tok = Path(config.tokenizer or Path(config.model) / "tokenizer.json")
        if tok.is_dir():
            tok = tok / "tokenizer.json"
        if tok.is_file():
            shutil.copy(tok, d / "tokenizer.json")

    _save_dir(save, target)
    return target
