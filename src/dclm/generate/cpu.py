"""Swap the CPU decode kernels of `dclm.model.cpu_matmul`, `cpu_attention` and `cpu_block` into a loaded model.

`dclm.model.openlm` is plain torch and `dclm.generate.quantize.QuantLinear` multiplies by its dequantized
matrix; both stay the references. For CPU inference, `install_cpu_kernels(model)` replaces every open_lm
Block with a `FastBlock` (a decode step on numpy arrays, through compiled kernels from input to output),
every float32 or bf16 Linear with a `FastLinear` and every `QuantLinear` with a `FastQuantLinear`: the same
tensors (state dict keys and tied weights unchanged), computing decoding's few rows straight from the
stored weights and handing every other shape (prefill, gradients) to the plain computation. It then moves
the decode weights onto huge pages (`cpu_matmul.use_huge_pages`), the one copy a memory-mapped load makes."""

from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dclm.generate.quantize import QuantLinear
from dclm.model import cpu_attention, cpu_block, cpu_matmul, cpu_vnni
from dclm.model.openlm import Block


class FastLinear(nn.Module):
    """A bias-free Linear over the given weight Parameter, few CPU rows through `cpu_matmul.linear`."""

    def __init__(self, weight: nn.Parameter):
        super().__init__()
        self.weight = weight
        self.out_features, self.in_features = weight.shape
        self._view = (None, None)  # (storage address, cpu_matmul.weight_view), made again when the storage moves

    def _weight_view(self) -> np.ndarray | None:
        """`cpu_matmul.weight_view` of the weight, kept and made again when its storage moves."""
        if self._view[0] != self.weight.data_ptr():
            self._view = (self.weight.data_ptr(), cpu_matmul.weight_view(self.weight))
        return self._view[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.compiler.is_compiling():  # a traced step gets the plain product
            view = self._weight_view()
            y = cpu_matmul.linear(x, self.weight, view) if view is not None else None
            if y is not None:
                return y
        return F.linear(x, self.weight.to(x.dtype))

    def decode(self, x: np.ndarray) -> np.ndarray:
        """`forward` on a decode step's activations [rows, K] as `cpu_matmul.as_array` gives them, in that layout."""
        view = self._weight_view()
        out = cpu_matmul.rows_product(view, x) if view is not None and len(x) <= cpu_matmul.MAX_ROWS else None
        return out if out is not None else _through(self, x)


class FastQuantLinear(QuantLinear):
    """QuantLinear whose few CPU rows go through the int8 / int4 kernels. int4 in groups of 128 on a CPU with
    AVX-512 VNNI goes through `cpu_vnni` (int8-quantized activations, as llama.cpp's Q4_0 x Q8_0); other int4
    weights are repacked once, at the swap, into the layout of torch's own int4 kernel where it takes them
    (`cpu_matmul.to_int4pack`, about a millisecond per matrix), which decodes faster than the numba loop that
    serves the rest (`benchmarks/bench_quant_kernels.py`). float32 copies of the (small) scales and zeros and
    the repacked weights live in non-persistent buffers, so the state dict is QuantLinear's."""

    @classmethod
    def wrap(cls, q: QuantLinear) -> "FastQuantLinear":
        m = cls.__new__(cls)
        nn.Module.__init__(m)
        m.in_features, m.out_features, m.bits, m.group = q.in_features, q.out_features, q.bits, q.group
        for name, buf in q.named_buffers(recurse=False):
            m.register_buffer(name, buf)
        m.register_buffer("scales32", q.scales.float().contiguous(), persistent=False)
        m.register_buffer("int4pack", None, persistent=False)
        m.vnni = q.bits == 4 and cpu_matmul.ENABLED and cpu_vnni.applies(tuple(q.qweight.shape), q.scales.shape[1])
        if q.bits == 4:
            m.register_buffer("zeros32", q.zeros.float().contiguous(), persistent=False)
            pack = None if m.vnni else cpu_matmul.to_int4pack(q.qweight, q.scales, q.zeros)
            if pack is not None:
                m.register_buffer("int4pack", pack[0], persistent=False)
                m.register_buffer("int4pack_sz", pack[1], persistent=False)
        return m

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.bits == 8:
            y = cpu_matmul.linear_int8(x, self.qweight, self.scales32)
        elif self.vnni:
            y = cpu_vnni.linear(x, self.qweight, self.scales32, self.zeros32)
        elif self.int4pack is not None:
            y = cpu_matmul.linear_int4pack(x, self.int4pack, self.int4pack_sz)
        else:
            y = cpu_matmul.linear_int4(x, self.qweight, self.scales32, self.zeros32)
        return y if y is not None else super().forward(x)

    def decode(self, x: np.ndarray) -> np.ndarray:
        """`forward` on a decode step's activations [rows, K] as `cpu_matmul.as_array` gives them, in that layout."""
        q = self.qweight
        if len(x) <= cpu_matmul.MAX_ROWS and q.is_contiguous():
            if self.bits == 8 and q.dtype == torch.int8:
                return cpu_matmul.int8_product(q.numpy(), self.scales32.numpy(), x)
            if self.vnni and q.dtype == torch.uint8:
                return cpu_vnni.int4_product(q.numpy(), self.scales32.numpy(), self.zeros32.numpy(), x)
            if self.int4pack is not None:
                return cpu_matmul.int4pack_product(x, self.int4pack, self.int4pack_sz)
        return _through(self, x)

    def decode_weights(self) -> torch.Tensor:
        """The tensor decoding streams: torch's int4 layout where this module uses it, else the stored one."""
        return self.int4pack if self.int4pack is not None else self.qweight


def _through(module: nn.Module, x: np.ndarray) -> np.ndarray:
    """module(x) for an array x as `cpu_matmul.as_array` gives it, the result as one too."""
    return cpu_matmul.as_array(module(cpu_matmul.from_array(x)).contiguous())


class FastBlock(Block):
    """open_lm Block whose decode steps on the CPU (one new token per row, against a cache that says where each
    row writes: `decode_columns`, which generate's and serve's caches have) run on numpy arrays from input to
    output: the four products through the fast linears' `decode`, the attention after in_proj through
    `cpu_attention.attend`, the norms, residual adds and SwiGLU through `cpu_block`'s kernels. That takes the
    dozens of torch dispatches and module calls of the plain step down to nine compiled calls (3.5 ms off an
    fp32 411M token and 2.5 off a bf16 one on the 2-core Xeon this project measures on, a same-process A/B).
    Every other call is Block's own."""

    @classmethod
    def wrap(cls, b: Block) -> "FastBlock":
        m = cls.__new__(cls)
        nn.Module.__init__(m)
        m.train(b.training)
        for name, child in b.named_children():
            m.add_module(name, child)
        m._plan = None  # what every decode step reuses (`_decode_plan`)
        return m

    def _decode_plan(self) -> tuple:
        """The arrays of the gains and rotary frequencies, the four products as functions of arrays (a fast
        linear's `decode`, any other module through `_through`) and the eps values; made again when one of
        those tensors or modules is replaced or its storage moves. (The KV cache's views are made per call:
        kept, they would keep a freed cache's memory alive.)"""
        plan = self._plan
        if plan is not None and all(owner.get(name) is obj and (ptr is None or obj.data_ptr() == ptr)
                                    for owner, name, obj, ptr in plan[0]):
            return plan[1]
        a, f = self.attention, self.feed_forward
        deps = [(parent._modules, name, getattr(parent, name), None)
                for parent, name in ((a, "in_proj"), (a, "out_proj"), (f, "w12"), (f, "w3"))]
        tensors = [(self.attention_norm, "weight"), (self.ffn_norm, "weight"), (a.pos_embed, "inv_freq")]
        if a.apply_qk_norm:
            tensors += [(a.q_norm, "weight"), (a.k_norm, "weight")]
        for owner, name in tensors:
            t = getattr(owner, name)
            deps.append((owner._parameters if name in owner._parameters else owner._buffers, name, t, t.data_ptr()))
        products = tuple(getattr(m, "decode", None) or functools.partial(_through, m) for _, _, m, _ in deps[:4])
        arrays = [cpu_matmul.as_array(t) for _, _, t, _ in deps[4:]]
        qk = (arrays[3], arrays[4]) if a.apply_qk_norm else (_NO_GAIN, _NO_GAIN)
        steps = (*products, arrays[0], np.float32(self.attention_norm.eps), arrays[1], np.float32(self.ffn_norm.eps),
                 qk, np.float32(a.q_norm.eps if a.apply_qk_norm else 0.0), arrays[2], a.layer_id)
        self._plan = (deps, steps)
        return steps

    def forward(self, x, positions, mask, cache):
        step = cache.decode_columns(x.shape[0]) if hasattr(cache, "decode_columns") else None
        if step is None or not cpu_attention.applies(x, cache.k) or (
                mask is not None and mask.shape != (x.shape[0], 1, 1, step[1])):
            return super().forward(x, positions, mask, cache)
        qkv_proj, out_proj, w12, w3, norm1, eps1, norm2, eps2, qk_gains, qk_eps, inv_freq, layer = self._decode_plan()
        rows, dim = x.shape[0], x.shape[2]
        cols, length = step
        xs = cpu_matmul.as_array(x.reshape(rows, dim).contiguous())
        y, h, out = np.empty_like(xs), np.empty_like(xs), np.empty_like(xs)
        cpu_block.layer_norm(xs, norm1, eps1, y)
        attended = cpu_attention.attend(
            qkv_proj(y), qk_gains, qk_eps, inv_freq, positions.reshape(rows).to(torch.int64).numpy(),
            (cpu_matmul.as_array(cache.k), cpu_matmul.as_array(cache.v)), layer, cols.to(torch.int64).numpy(),
            length, None if mask is None else mask.reshape(rows, length).numpy())
        cpu_block.add_layer_norm(xs, out_proj(attended), norm2, eps2, h, y)
        gate_up = w12(y)
        gated = np.empty((rows, gate_up.shape[1] // 2), dtype=gate_up.dtype)
        cpu_block.swiglu(gate_up, gated)
        cpu_block.add(h, w3(gated), out)
        return cpu_matmul.from_array(out).view(x.shape)


_NO_GAIN = np.zeros(0, np.float32)


def install_cpu_kernels(model: nn.Module) -> int:
    """In place, for a model on the CPU: swap in the fast modules (once; again is a no-op) and move their
    weights onto huge pages. Returns the number of modules swapped."""
    swaps = []
    for parent in model.modules():  # blocks first: the linears inside are swapped in the new module
        for name, child in parent.named_children():
            if type(child) is Block:
                swaps.append((parent, name, FastBlock.wrap(child)))
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
