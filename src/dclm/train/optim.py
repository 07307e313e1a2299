"""open_lm's optimisation: AdamW on every parameter, warmup + cosine to the cooldown lr, CE + z-loss, and the
FLOP count behind MFU.

Sources: open_lm/main.py (AdamW with β2 from --beta2, eps 1e-8, one parameter group: the no-decay group is
empty), open_lm/scheduler.py (`cosine_lr`), open_lm/losses.py (`CrossEntropyLossWithZLoss`).
"""

from __future__ import annotations

import math

import torch

from dclm.model.openlm import ModelArgs


def lr_at(step: int, base: float, warmup: int, total: int, end: float) -> float:
    """The lr of 0-based optimizer step `step` (open_lm sets it before the step's forward pass)."""
    if step < warmup:
        return base * (step + 1) / warmup
    span = max(1, total - warmup)
    progress = min(1.0, (step - warmup) / span)
    return end + 0.5 * (1 + math.cos(math.pi * progress)) * (base - end)


def lm_loss(logits: torch.Tensor, targets: torch.Tensor, z_loss: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(token-mean CE + z · mean(logsumexp²), the CE alone) over float logits [B, T, V]; nothing is masked, as
    open_lm trains on EOT and PAD targets too. The logsumexp is computed once and serves both terms."""
    lse = torch.logsumexp(logits, dim=-1)
    ce = (lse - logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1)).mean()
    return ce + z_loss * lse.square().mean(), ce


def make_optimizer(model: torch.nn.Module, lr: float, wd: float, beta2: float, device: torch.device):
    # the fused kernel exists for CUDA and, since torch 2.4, for CPU: one pass over each tensor instead of
    # foreach's five
    return torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, beta2), eps=1e-8, weight_decay=wd, fused=True)


def flops_per_token(args: ModelArgs) -> float:
    """6 · (parameters without the input embedding) + 12 · layers · dim · seq_len: the PaLM/torchtitan count
    (forward + backward, attention scores included, no causal discount)."""
    n = args.num_params() - args.vocab_size * args.dim
    return 6.0 * n + 12.0 * args.n_layers * args.dim * args.seq_len


# dense bf16 peaks of one device (NVIDIA datasheets; the sparse figures are twice these)
_PEAK_TFLOPS = (("H200", 989.0), ("H100 PCIe", 756.0), ("H100 NVL", 835.0), ("H100", 989.0), ("GH200", 989.0),
                ("B200", 2250.0), ("A100", 312.0), ("L40S", 362.0), ("A10G", 125.0), ("L4", 121.0))


def peak_flops(device: torch.device, bf16: bool, override_tflops: float | None) -> float | None:
    """FLOP/s one device can do at most, for MFU; None where unknown (CPUs, unlisted GPUs) unless given."""
    if override_tflops:
        return override_tflops * 1e12
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key, tflops in _PEAK_TFLOPS:
        if key in name:
            return tflops * 1e12 * (1.0 if bf16 else 0.5)  # tf32 tensor cores: half the bf16 rate
    return None
