"""FinetuneConfig (the `dclm finetune` flags) and FinetuneResult."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from dclm.runtime.config import ConfigError, arg

# PEFT target module names in OpenLMForCausalLM (open_lm's own names; see dclm/model/openlm.py)
TARGETS = {"attention": ("in_proj", "out_proj"), "ffn": ("w12", "w3")}


@dataclass(frozen=True)
class FinetuneConfig:
    model: str = arg(help="base model directory in the DCLM HF layout")
    data: tuple[str, ...] = arg(help="training files: .txt pages, or .jsonl with 'text' (pages) or "
                                "'prompt'/'response' records (loss on the response only)")
    output: str = arg(help="output directory (PEFT adapter, checkpoints, finetune.json)")
    lora_rank: int = arg(16, help="LoRA rank r")
    lora_alpha: float = arg(32.0, help="LoRA alpha (the update is scaled by alpha / r)")
    lora_dropout: float = arg(0.0, help="dropout on the LoRA input")
    target: str = arg("attention,ffn", help="comma list of attention (in_proj, out_proj) and ffn (w12, w3)")
    epochs: int = arg(1, help="passes over the training data")
    max_steps: int | None = arg(None, help="stop after this many optimizer steps (default: all epochs)")
    lr: float = arg(2e-4, help="peak learning rate (linear warm-up, cosine decay to 10%)")
    weight_decay: float = arg(0.0, help="AdamW weight decay on the LoRA weights")
    max_seq_len: int = arg(1024, help="tokens per training sequence (pages are packed, records truncated)")
    batch_size: int = arg(8, help="sequences per micro-batch")
    grad_accum: int = arg(1, help="micro-batches per optimizer step")
    eval_fraction: float = arg(0.1, help="share of the examples held out for the eval loss")
    save_every: int = arg(100, help="optimizer steps between resumable checkpoints")
    seed: int = arg(0, help="seed for the split, the data order and the LoRA init")
    resume: str | None = arg(None, help="'latest' continues from the newest checkpoint in OUTPUT")
    merge: bool = arg(False, help="also write OUTPUT/merged: the base with the adapter folded in (HF layout)")
    device: Literal["auto", "cpu", "cuda"] = arg("auto", help="device (auto = cuda when available)")
    tokenizer: str | None = arg(None, help="tokenizer.json (default MODEL/tokenizer.json, else GPT-NeoX-20B)")
    progress: bool = arg(True, help="show a progress bar")

    def __post_init__(self):
        for name in ("lora_rank", "epochs", "max_seq_len", "batch_size", "grad_accum", "save_every"):
            if getattr(self, name) < 1:
                raise ConfigError(name, "must be at least 1")
        if self.max_steps is not None and self.max_steps < 1:
            raise ConfigError("max_steps", "must be at least 1")
        if self.lr <= 0:
            raise ConfigError("lr", "must be > 0")
        if not 0 <= self.eval_fraction < 1:
            raise ConfigError("eval_fraction", "must be in [0, 1)")
        if not 0 <= self.lora_dropout < 1:
            raise ConfigError("lora_dropout", "must be in [0, 1)")
        if self.resume not in (None, "latest"):
            raise ConfigError("resume", "the only value is 'latest'")
        self.target_modules()

    def target_modules(self) -> list[str]:
        names = [t.strip() for t in self.target.split(",") if t.strip()]
        bad = [t for t in names if t not in TARGETS]
        if bad or not names:
            raise ConfigError("target", f"{','.join(bad) or 'nothing'}: choose from {', '.join(TARGETS)}")
        return [m for t in names for m in TARGETS[t]]


@dataclass
class FinetuneResult:
    output: str
    trainable_params: int
    total_params: int
    steps: int
    train_examples: int
    eval_examples: int
    eval_loss_before: float | None
    eval_loss_after: float | None
    losses: list[float] = field(default_factory=list)  # mean training loss of each optimizer step
    merged: str | None = None

    @property
    def trainable_share(self) -> float:
        return self.trainable_params / self.total_params
