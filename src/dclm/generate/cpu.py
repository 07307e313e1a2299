"""Swap the CPU decode kernels of `dclm.model.cpu_matmul` and `dclm.model.cpu_attention` into a loaded model.

`dclm.model.openlm` is plain torch and `dclm.generate.quantize.QuantLinear` multiplies by its dequantized
matrix; both stay the references. For CPU inference, `install_cpu_kernels(model)` replaces every open_lm
Attention with a `FastAttention` (a decode step's norms, rotary, cache write and attention in one kernel),
every float32 or bf16 Linear with a `FastLinear` and every `QuantLinear` with a `FastQuantLinear`: the same
tensors (state dict keys and tied weights unchanged), computing decoding's few rows straight from the
stored weights and handing every other shape (prefill, gradients) to the plain computation. It then moves
the decode weights onto huge pages (`cpu_matmul.use_huge_pages`), the one copy a memory-mapped load makes."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dclm.generate.quantize import QuantLinear
from dclm.model import cpu_attention, cpu_matmul
from dclm.model.openlm import Attention


class FastLinear(nn.Module):
    """A bias-free Linear over the given weight Parameter, few CPU rows through `cpu_matmul.linear`."""

    def __init__(self, weight: nn.Parameter):
        super().__init__()
        self.weight = weight
        self.out_features, self.in_features = weight.shape
        self._view = (None, None)  # (storage address, cpu_matmul.weight_view), made again when the storage moves

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.compiler.is_compiling():  # a traced step gets the plain product
            if self._view[0] != self.weight.data_ptr():
                self._view = (self.weight.data_ptr(), cpu_matmul.weight_view(self.weight))
            y = cpu_matmul.linear(x, self.weight, self._view[1]) if self._view[1] is not None else None
            if y is not None:
                return y
        return F.linear(x, self.weight.to(x.dtype))


class FastQuantLinear(QuantLinear):
    """QuantLinear whose few CPU rows go through the int8 / int4 kernels. int4 weights are repacked once, at
    the swap, into the layout of torch's own int4 kernel where it takes them (`cpu_matmul.to_int4pack`, about a
    millisecond per matrix), since that kernel decodes faster than the numba one
    (`benchmarks/bench_quant_kernels.py`); float32 copies of the (small) scales and zeros and the repacked
    weights live in non-persistent buffers, so the state dict is QuantLinear's."""

    @classmethod
    def wrap(cls, q: QuantLinear) -> "FastQuantLinear":
        m = cls.__new__(cls)
        nn.Module.__init__(m)
        m.in_features, m.out_features, m.bits, m.group = q.in_features, q.out_features, q.bits, q.group
        for name, buf in q.named_buffers(recurse=False):
            m.register_buffer(name, buf)
        m.register_buffer("scales32", q.scales.float().contiguous(), persistent=False)
        m.register_buffer("int4pack", None, persistent=False)
        if q.bits == 4:
            m.register_buffer("zeros32", q.zeros.float().contiguous(), persistent=False)
            pack = cpu_matmul.to_int4pack(q.qweight, q.scales, q.zeros)
            if pack is not None:
                m.register_buffer("int4pack", pack[0], persistent=False)
                m.register_buffer("int4pack_sz", pack[1], persistent=False)
        return m

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.bits == 8:
            y = cpu_matmul.linear_int8(x, self.qweight, self.scales32)
        elif self.int4pack is not None:
            y = cpu_matmul.linear_int4pack(x, self.int4pack, self.int4pack_sz)
        else:
            y = cpu_matmul.linear_int4(x, self.qweight, self.scales32, self.zeros32)
        return y if y is not None else super().forward(x)

    def decode_weights(self) -> torch.Tensor:
        """The tensor decoding streams: torch's int4 layout where this module uses it, else the stored one."""
        return self.int4pack if self.int4pack is not None else self.qweight


class FastAttention(Attention):
    """open_lm Attention whose decode steps on the CPU (one new token per row, against a cache that says
    where each row writes: `decode_columns`, which generate's and serve's caches have) go through
    `cpu_attention.attend_step` after the q/k/v product; every other call is Attention's own."""

    @classmethod
    def wrap(cls, a: Attention) -> "FastAttention":
        m = cls.__new__(cls)
        nn.Module.__init__(m)
        m.train(a.training)
        m.layer_id, m.n_heads, m.head_dim, m.apply_qk_norm = a.layer_id, a.n_heads, a.head_dim, a.apply_qk_norm
        for name, child in a.named_children():
            m.add_module(name, child)
        m._arrays = {}  # kept numpy views of the norm gains and rotary frequencies, by storage
        return m

    def _array(self, t: torch.Tensor) -> np.ndarray:
        """A parameter or buffer of this module as `cpu_attention` takes it, made again if its storage moves.
        (The KV cache's views are made per call: kept, they would keep a freed cache's memory alive.)"""
        key = (t.data_ptr(), t.dtype, t.shape)
        view = self._arrays.get(key)
        if view is None:
            self._arrays = {k: v for k, v in self._arrays.items() if k[0] != t.data_ptr()}
            view = self._arrays[key] = cpu_matmul.as_array(t)
        return view

    def forward(self, x, positions, mask, cache):
        step = cache.decode_columns(x.shape[0]) if hasattr(cache, "decode_columns") else None
        if step is None or not cpu_attention.applies(x, cache.k) or (
                mask is not None and mask.shape != (x.shape[0], 1, 1, step[1])):
            return super().forward(x, positions, mask, cache)
        if self.apply_qk_norm:
            gains = (self._array(self.q_norm.weight), self._array(self.k_norm.weight))
            eps = self.q_norm.eps
        else:
            gains, eps = (np.zeros(0, np.float32),) * 2, 0.0
        out = cpu_attention.attend_step(self.in_proj(x), gains, eps, self._array(self.pos_embed.inv_freq), positions,
                                        (cpu_matmul.as_array(cache.k), cpu_matmul.as_array(cache.v)), self.layer_id, *step, mask)
        return self.out_proj(out)


def install_cpu_kernels(model: nn.Module) -> int:
    """In place, for a model on the CPU: swap in the fast modules (once; again is a no-op) and move their
    weights onto huge pages. Returns the number of modules swapped."""
    swaps = []
    for parent in model.modules():  # attention first: the linears inside are swapped in the new module
        for name, child in parent.named_children():
            if type(child) is Attention:
                swaps.append((parent, name, FastAttention.wrap(child)))
    for parent, name, fast in swaps:
        setattr(parent, name, fast)
    linears = []
    for parent in model.modules():
        for name, child in parent.named_children():
            if type(child) in (FastLinear, FastQuantLinear):
                continue
            if isinstance(child, nn.Linear) and child.bias is None and child.weight.device.type == "cpu":
                if child.weight.dtype in (torch.float32, torch.bfloat16):
                    linears.append((parent, name, FastLinear(child.weight)))
            elif isinstance(child, QuantLinear) and child.qweight.device.type == "cpu" and type(parent).__name__ != "QuantEmbedding":
                linears.append((parent, name, FastQuantLinear.wrap(child)))
    for parent, name, fast in linears:
        setattr(parent, name, fast)
    heavy = [m.weight for m in model.modules() if isinstance(m, FastLinear)]
    heavy += [m.decode_weights() for m in model.modules() if isinstance(m, FastQuantLinear)]
    cpu_matmul.use_huge_pages(heavy)
    return len(swaps) + len(linears)
