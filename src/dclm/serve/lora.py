"""Several PEFT LoRA adapters over one base model, chosen per batch row (per request) at every forward.

Each targeted projection is wrapped: y = base(x) + scale_a * (x A_a^T) B_a^T for the rows routed to adapter
a, nothing extra for rows on the base model (index 0). This is PEFT's LoRA forward (peft/tuners/lora/
layer.py, Linear.forward) restricted to rows, so requests for different adapters share one decode step
instead of one merged model copy each.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from torch import nn

from dclm.errors import DclmError

_PREFIXES = ("base_model.model.", "model.")  # PeftModel's wrapper, then OpenLMForCausalLM's `model`


class AdapterRouter:
    """Holds the adapter index of every row of the next forward (0 = the base model)."""

    def __init__(self):
        self.rows: list[int] = []

    def select(self, rows: list[int]) -> None:
        self.rows = list(rows)


class RoutedLoRA(nn.Module):
    def __init__(self, base: nn.Module, router: AdapterRouter):
        super().__init__()
        self.base, self.router = base, router
        self.adapters: dict[int, tuple[torch.Tensor, torch.Tensor, float]] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.base(x)
        rows = self.router.rows
        for a in sorted(set(rows) & self.adapters.keys()):
            A, B, scale = self.adapters[a]
            idx = torch.tensor([i for i, r in enumerate(rows) if r == a], device=x.device)
            xa = x[idx].to(A.dtype)
            y[idx] += ((xa @ A.T) @ B.T * scale).to(y.dtype)
        return y


def read_adapter(path: str | Path) -> tuple[dict, dict[str, torch.Tensor]]:
    """(adapter_config.json, {module path in our Transformer: (A, B)}) of a PEFT LoRA directory."""
    from safetensors.torch import load_file

    d = Path(path)
    cfg_path, weights = d / "adapter_config.json", d / "adapter_model.safetensors"
    if not cfg_path.is_file() or not weights.is_file():
        raise DclmError(f"{d}: not a PEFT adapter directory (needs adapter_config.json and adapter_model.safetensors)")
    cfg = json.loads(cfg_path.read_text())
    if cfg.get("peft_type", "LORA") != "LORA":
        raise DclmError(f"{d}: peft_type {cfg.get('peft_type')!r} is not LoRA")
    for key, ok in (("use_dora", False), ("bias", "none"), ("fan_in_fan_out", False)):
        if cfg.get(key, ok) != ok:
            raise DclmError(f"{d}: {key}={cfg[key]!r} is not supported by dclm serve")
    if cfg.get("modules_to_save"):
        raise DclmError(f"{d}: modules_to_save is not supported by dclm serve")
    pairs: dict[str, dict[str, torch.Tensor]] = {}
    for name, t in load_file(str(weights)).items():
        for p in _PREFIXES:
            name = name.removeprefix(p)
        module, _, kind = name.rpartition(".lora_")
        if kind not in ("A.weight", "B.weight"):
            raise DclmError(f"{d}: unexpected tensor {name!r}")
        pairs.setdefault(module, {})[kind[0]] = t
    return cfg, pairs


def attach_adapters(model: nn.Module, paths: list[str]) -> AdapterRouter:
    """Wrap the targeted modules of `model` (a dclm Transformer) and load adapters 1..len(paths)."""
    router = AdapterRouter()
    p = next(model.parameters())
    wrapped: dict[str, RoutedLoRA] = {}
    for index, path in enumerate(paths, 1):
        cfg, pairs = read_adapter(path)
        r, alpha = cfg["r"], cfg["lora_alpha"]
        for module, ab in sorted(pairs.items()):
            if set(ab) != {"A", "B"}:
                raise DclmError(f"{path}: {module} lacks lora_A or lora_B")
            A, B = ab["A"], ab["B"]
            rank = A.shape[0]
            rank_alpha = cfg.get("alpha_pattern", {}).get(module.rsplit(".", 1)[-1], alpha)
            rank_r = cfg.get("rank_pattern", {}).get(module.rsplit(".", 1)[-1], r)
            scale = rank_alpha / (math.sqrt(rank_r) if cfg.get("use_rslora") else rank_r)
            if module not in wrapped:
                try:
                    base = model.get_submodule(module)
                except AttributeError:
                    raise DclmError(f"{path}: the model has no module {module!r} (adapter for another model?)") from None
                parent_name, _, child = module.rpartition(".")
                wrapped[module] = RoutedLoRA(base, router)
                setattr(model.get_submodule(parent_name) if parent_name else model, child, wrapped[module])
            base = wrapped[module].base
            out_f, in_f = base.weight.shape if hasattr(base, "weight") else (B.shape[0], A.shape[1])
            if A.shape != (rank, in_f) or B.shape != (out_f, rank):
                raise DclmError(f"{path}: {module} has LoRA shapes {list(A.shape)}, {list(B.shape)} that do not fit "
                                f"a [{out_f}, {in_f}] projection")
            dtype = torch.float32 if p.device.type == "cpu" else p.dtype
            wrapped[module].adapters[index] = (A.to(p.device, dtype), B.to(p.device, dtype), float(scale))
    return router
