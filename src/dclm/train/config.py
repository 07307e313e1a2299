"""TrainConfig (the `dclm train` flags), the run plan resolved from it, and TrainResult."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from dclm.runtime.config import ConfigError, arg, as_tuples


@dataclass(frozen=True)
class TrainConfig:
    scale: str | None = arg(None, help="training scale (dclm train --list-scales); its fields can be overridden below")
    data: tuple[str, ...] = arg((), help="token data: tokenize-shuffle output folders (.bin + index.json), open_lm "
                                "webdataset folders or their manifest.jsonl, or a mix file (YAML/JSON "
                                "'sources: [{path, weight}]'); several paths are pooled")
    output: str | None = arg(None, help="run folder: checkpoints/, metrics.jsonl, model/ (final weights + tokenizer)")
    list_scales: bool = arg(False, help="print the scales, smallest first, and exit")
    chinchilla_multiplier: float | None = arg(None, help="token budget multiplier (default: the scale's)")
    tokens: int | None = arg(None, help="token budget at multiplier 1 (default: the scale's)")
    seed: int = arg(124, help="seed of the initialisation and the data order (DCLM's default)")
    max_steps: int | None = arg(None, help="stop after this step; the lr schedule still follows the full budget")
    resume: str | None = arg(None, help="'latest' (newest checkpoint in OUTPUT, or start fresh) or a checkpoint folder")
    precision: Literal["auto", "bf16", "fp32"] = arg("auto", help="bf16 autocast or fp32 (auto: bf16 on GPU, fp32 on CPU)")
    compile: bool | None = arg(None, help="torch.compile the model (default: on GPU yes, on CPU no)")
    device: Literal["auto", "cpu", "cuda"] = arg("auto", help="device (auto: cuda when available)")
    global_batch_size: int | None = arg(None, help="sequences per optimizer step (default: the scale's)")
    micro_batch_size: int | None = arg(None, help="sequences per forward pass per process (default: the scale's)")
    lr: float | None = arg(None, help="peak learning rate (default: the scale's)")
    warmup: int | None = arg(None, help="linear warmup steps (default: the scale's)")
    wd: float | None = arg(None, help="AdamW weight decay, on every parameter as open_lm (default: the scale's)")
    cd: float | None = arg(None, help="learning rate at the end of the cosine (default: the scale's)")
    z_loss: float | None = arg(None, help="z-loss coefficient (default: the scale's)")
    beta2: float = arg(0.95, help="AdamW beta2")
    grad_clip: float = arg(1.0, help="clip the global gradient L2 norm to this (0: off)")
    seq_len: int | None = arg(None, help="model context length; data contexts hold seq_len + 1 tokens (default: the scale's)")
    vocab_size: int | None = arg(None, help="embedding rows (default: the scale's, or sized to the data for small scales)")
    multiple_data_passes: bool = arg(False, help="allow a second pass over the data, reshuffled with seed + pass")
    fsdp: bool = arg(False, help="under torchrun: shard parameters, gradients and optimizer state (FSDP2) instead of DDP")
    checkpoint_every: int | None = arg(None, help="steps between checkpoints (default: total steps / the scale's "
                                       "num_checkpoints, as DCLM)")
    keep_checkpoints: int = arg(2, help="checkpoints kept on disk (older ones are deleted once a newer one is written)")
    log_every: int = arg(10, help="steps between metrics.jsonl records")
    prefetch: int = arg(4, help="micro-batches the loader thread prepares ahead")
    tokenizer: str | None = arg(None, help="tokenizer.json to put beside the final model (default: the data's)")
    peak_tflops: float | None = arg(None, help="peak TFLOP/s of one device for MFU (default: known GPUs; none on CPU)")
    name: str | None = arg(None, help="run name in the model reference JSON (default: DCLM's pattern)")
    tensorboard: bool = arg(True, help="also write TensorBoard scalars when tensorboard is installed")
    progress: bool = arg(True, help="show a progress bar")

    def __post_init__(self):
        as_tuples(self, "data")
        if self.list_scales:
            return
        for name in ("scale", "output"):
            if not getattr(self, name):
                raise ConfigError(name, "is required (or --list-scales)")
        if not self.data:
            raise ConfigError("data", "give at least one token data path")
        for name in ("max_steps", "global_batch_size", "micro_batch_size", "seq_len", "vocab_size", "tokens",
                     "checkpoint_every"):
            v = getattr(self, name)
            if v is not None and v < 1:
                raise ConfigError(name, "must be at least 1")
        for name in ("keep_checkpoints", "log_every", "prefetch"):
            if getattr(self, name) < 1:
                raise ConfigError(name, "must be at least 1")
        if self.warmup is not None and self.warmup < 0:
            raise ConfigError("warmup", "must be >= 0")
        for name in ("lr", "chinchilla_multiplier"):
            v = getattr(self, name)
            if v is not None and v <= 0:
                raise ConfigError(name, "must be > 0")
        if self.grad_clip < 0:
            raise ConfigError("grad_clip", "must be >= 0")


@dataclass
class TrainResult:
    output: str
    model_dir: str | None  # the final model (HF layout); None when the run stopped before the budget's end
    steps: int  # last step done
    total_steps: int
    tokens: int  # tokens trained on in this run (resumed steps excluded)
    seconds: float
    tokens_per_s: float
    mfu: float | None
    resumed_from: int | None
    losses: list[tuple[int, float]] = field(default_factory=list)  # (step, loss) of every logged step
