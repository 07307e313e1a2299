"""Weight-only quantization: int8 per output channel, or int4 in groups along the input dimension.

Every Linear (the LM head included) and the token embedding are quantized; norms and rotary buffers keep
their dtype. Weights are dequantized on the fly into the activation dtype, so the same files run on CPU
and GPU. A quantized model is saved beside its config as the DCLM HF layout plus a `quantization` entry
in config.json and tensors `<name>.qweight`, `.scales` (and `.zeros` for int4) in model.safetensors.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from dclm.errors import DclmError
from dclm.model.checkpoint import PREFIX, SAFETENSORS, hf_config_dict, read_config, read_safetensors
from dclm.model.openlm import RotaryEmbedding, Transformer

METHOD = "dclm-weight-only"


def quantize_int8(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric per-row int8: w ~ q * scale, q in [-127, 127]."""
    w = w.float()
    scale = (w.abs().amax(dim=1, keepdim=True) / 127).clamp(min=1e-12)
    q = torch.round(w / scale).clamp(-127, 127).to(torch.int8)
    return q, scale.squeeze(1).to(torch.float16)


def quantize_int4(w: torch.Tensor, group: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Asymmetric int4 per group of `group` inputs: w ~ q * scale + zero, q in [0, 15], two per byte."""
    rows, cols = w.shape
    g = w.float().reshape(rows, cols // group, group)
    lo, hi = g.amin(-1, keepdim=True), g.amax(-1, keepdim=True)
    scale = ((hi - lo) / 15).clamp(min=1e-12)
    q = torch.round((g - lo) / scale).clamp(0, 15).to(torch.uint8).reshape(rows, cols)
    packed = q[:, 0::2] | (q[:, 1::2] << 4)
    return packed, scale.squeeze(-1).to(torch.float16), lo.squeeze(-1).to(torch.float16)


def dequantize_int4(packed: torch.Tensor, scales: torch.Tensor, zeros: torch.Tensor, dtype) -> torch.Tensor:
    rows = packed.shape[0]
    q = torch.stack((packed & 0xF, packed >> 4), dim=-1).reshape(rows, scales.shape[1], -1)
    w = q.to(dtype) * scales[..., None].to(dtype) + zeros[..., None].to(dtype)
    return w.reshape(rows, -1)


class QuantLinear(nn.Module):
    def __init__(self, in_features: int, out_features: int, bits: int, group: int):
        super().__init__()
        self.in_features, self.out_features, self.bits, self.group = in_features, out_features, bits, group
        if bits == 8:
            self.register_buffer("qweight", torch.zeros(out_features, in_features, dtype=torch.int8))
            self.register_buffer("scales", torch.zeros(out_features, dtype=torch.float16))
        else:
            self.register_buffer("qweight", torch.zeros(out_features, in_features // 2, dtype=torch.uint8))
            self.register_buffer("scales", torch.zeros(out_features, in_features // group, dtype=torch.float16))
            self.register_buffer("zeros", torch.zeros(out_features, in_features // group, dtype=torch.float16))

    @classmethod
    def from_weight(cls, w: torch.Tensor, bits: int, group: int) -> "QuantLinear":
        m = cls(w.shape[1], w.shape[0], bits, group)
        if bits == 8:
            m.qweight, m.scales = quantize_int8(w)
        else:
            m.qweight, m.scales, m.zeros = quantize_int4(w, group)
        return m

    def weight_as(self, dtype) -> torch.Tensor:
        if self.bits == 8:
            return self.qweight.to(dtype) * self.scales[:, None].to(dtype)
        return dequantize_int4(self.qweight, self.scales, self.zeros, dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.bits == 8:  # scale after the matmul: one multiply per output instead of per weight
            return F.linear(x, self.qweight.to(x.dtype)) * self.scales.to(x.dtype)
        return F.linear(x, self.weight_as(x.dtype))


class QuantEmbedding(nn.Module):
    """Token embedding with rows stored like QuantLinear's weight; only looked-up rows are dequantized."""

    def __init__(self, num: int, dim: int, bits: int, group: int, dtype: torch.dtype):
        super().__init__()
        self.inner = QuantLinear(dim, num, bits, group)
        self.dtype = dtype

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        q = self.inner
        flat = ids.reshape(-1)
        if q.bits == 8:
            rows = q.qweight[flat].to(self.dtype) * q.scales[flat, None].to(self.dtype)
        else:
            rows = dequantize_int4(q.qweight[flat], q.scales[flat], q.zeros[flat], self.dtype)
        return rows.reshape(*ids.shape, -1)


def group_size_for(in_features: int, group: int) -> int:
    """The requested group if it divides the width, else the largest even divisor below it."""
    if in_features % group == 0:
        return group
    for g in range(min(group, in_features), 1, -1):
        if in_features % g == 0 and g % 2 == 0:
            return g
    raise DclmError(f"cannot group {in_features} inputs for int4")


def _targets(model: Transformer):
    for name, module in model.named_modules():
        for child_name, child in module.named_children():
            if isinstance(child, (nn.Linear, nn.Embedding)):
                yield module, child_name, f"{name}.{child_name}" if name else child_name, child


def quantize_model(model: Transformer, bits: int, group: int = 128) -> Transformer:
    """In place: every Linear and the embedding become QuantLinear / QuantEmbedding."""
    if bits not in (8, 4):
        raise DclmError(f"--bits must be 8 or 4, not {bits}")
    if model.args.weight_tying:
        raise DclmError("quantizing a model with tied embeddings is not supported")
    dtype = next(model.parameters()).dtype
    for parent, attr, _, child in list(_targets(model)):
        w = child.weight.detach()
        in_features = w.shape[1]
        g = group_size_for(in_features, group) if bits == 4 else in_features
        if isinstance(child, nn.Embedding):
            q = QuantEmbedding(w.shape[0], in_features, bits, g, dtype)
            q.inner = QuantLinear.from_weight(w, bits, g)
        else:
            q = QuantLinear.from_weight(w, bits, g)
        setattr(parent, attr, q.to(w.device))
    model.quantization = {"method": METHOD, "bits": bits, "group_size": group}
    return model


def _empty_quantized(args, quant: dict, dtype: torch.dtype) -> Transformer:
    model = Transformer(args, init=False).to(dtype)
    for m in model.modules():
        if isinstance(m, RotaryEmbedding):  # frequencies stay fp32, as in unquantized loads
            m.inv_freq = m.inv_freq.float()
    bits, group = quant["bits"], quant["group_size"]
    for parent, attr, _, child in list(_targets(model)):
        out_f, in_f = child.weight.shape
        g = group_size_for(in_f, group) if bits == 4 else in_f
        q = QuantEmbedding(out_f, in_f, bits, g, dtype) if isinstance(child, nn.Embedding) else QuantLinear(in_f, out_f, bits, g)
        setattr(parent, attr, q)
    model.quantization = dict(quant)
    return model


def save_quantized(model: Transformer, out_dir: str | Path, dtype: torch.dtype) -> Path:
    from safetensors.torch import save_file

    from dclm.io import atomic_open

    d = Path(out_dir)
    d.mkdir(parents=True, exist_ok=True)
    state = {}
    for k, v in model.state_dict().items():
        k = k.replace(".inner.", ".")  # embedding rows stored under the embedding's own name
        state[PREFIX + k] = v.detach().cpu().contiguous()
    tmp = d / (SAFETENSORS + ".tmp")
    save_file(state, str(tmp), metadata={"format": "pt"})
    tmp.replace(d / SAFETENSORS)
    cfg = hf_config_dict(model.args, dtype)
    cfg["quantization"] = model.quantization
    with atomic_open(str(d / "config.json"), "w") as f:
        f.write(json.dumps(cfg, indent=2) + "\n")
    return d


def load_quantized(model_dir: str | Path, cfg: dict, device="cpu", dtype: torch.dtype | None = None) -> Transformer:
    quant = cfg["quantization"]
    if quant.get("method") != METHOD or quant.get("bits") not in (8, 4):
        raise DclmError(f"{model_dir}: unknown quantization {quant!r}")
    args, _ = read_config(model_dir)
    from dclm.model.checkpoint import DTYPES

    dtype = dtype or DTYPES.get(cfg.get("torch_dtype"), torch.bfloat16)
    model = _empty_quantized(args, quant, dtype)
    raw = read_safetensors(Path(model_dir))
    state = {}
    emb = "tok_embeddings."
    for k, v in raw.items():
        k = k[len(PREFIX):] if k.startswith(PREFIX) else k
        state[k.replace(emb, emb + "inner.") if k.startswith(emb) else k] = v
    expected = model.state_dict()
    for name, t in state.items():
        if name not in expected:
            raise DclmError(f"{model_dir}: unexpected tensor {name!r}")
        if t.shape != expected[name].shape:
            raise DclmError(f"{model_dir}: tensor {name!r} has shape {list(t.shape)}, expected {list(expected[name].shape)}")
    missing = sorted(set(expected) - set(state))
    if missing:
        raise DclmError(f"{model_dir}: missing tensor {missing[0]!r}")
    model.load_state_dict(state)
    return model.to(device).eval()


def model_bytes(model: nn.Module) -> int:
    """Bytes of parameters and persistent buffers (what the checkpoint holds)."""
    return sum(t.numel() * t.element_size() for t in model.state_dict().values())


@torch.inference_mode()
def perplexity(model: Transformer, ids: list[int], window: int = 1024, device=None) -> float:
    """Token-level perplexity over non-overlapping windows (each scored from its own start)."""
    device = device or next(model.buffers()).device
    total, count = 0.0, 0
    for start in range(0, len(ids) - 1, window):
        chunk = torch.tensor(ids[start : start + window + 1], device=device)[None]
        if chunk.shape[1] < 2:
            break
        logits = model(chunk[:, :-1])
        total += F.cross_entropy(logits[0], chunk[0, 1:], reduction="sum").item()
        count += chunk.shape[1] - 1
    if count == 0:
        raise DclmError("held-out text is too short to measure perplexity")
    return math.exp(total / count)
