"""One decode step of open_lm attention on the CPU, after the q/k/v product, in one compiled pass per head.

A decode step's attention is small arithmetic spread over many torch ops: per layer, the q and k
LayerNorms over the full width, the rotary tables and their application to q and k, the two cache writes
and the attention itself, about 35 dispatches that cost far more than their arithmetic (about 75 µs of a
layer's 150 µs outside the matrix products on the 2-core Xeon this project measures on, against about 15 µs
for this kernel). `attend` does all of it for one new token per sequence, for every (sequence, head)
pair: gain-only LayerNorm of q and k over the model width, GPT-NeoX rotary at the row's position, the new k
and v written into the cache column, then softmax(q K^T / sqrt(D)) V over the visible columns. The plain
twin is `dclm.model.openlm.Attention.forward`; `dclm.generate.cpu.FastBlock` calls it, and the tests compare
that block with the plain one.

Everything is computed in float32 and rounded once where it is stored (the cache, the output), so a bf16
model's results differ from the plain path's, which rounds after every op, by about a bf16 rounding.
Short contexts run on one thread (a parallel launch costs more than the work); past `_PARALLEL_WORK`
multiply-adds the (sequence, head) pairs are spread over the cores.
"""

from __future__ import annotations

import numpy as np
import torch
from numba import njit, prange

from dclm.model import cpu_matmul
from dclm.model.cpu_matmul import _stored, _widen

_PARALLEL_WORK = 1 << 17  # multiply-adds (sequences x heads x columns x head width) past which the pairs go parallel


@njit(inline="always", fastmath=True, cache=True)
def _normed_head(qkv, b, offset, h, hd, dim, gain, eps, out):
    """out = head h of the width-`dim` vector qkv[b, offset:offset + dim], LayerNormed over that whole
    width with `gain` first (no bias; none where gain is empty)."""
    if gain.shape[0]:
        mean = np.float32(0.0)
        for j in range(dim):
            mean += _widen(qkv[b, offset + j])
        mean /= dim
        var = np.float32(0.0)
        for j in range(dim):
            c = _widen(qkv[b, offset + j]) - mean
            var += c * c
        rstd = np.float32(1.0) / np.sqrt(var / dim + eps)
        for d in range(hd):
            out[d] = (_widen(qkv[b, offset + h * hd + d]) - mean) * rstd * _widen(gain[h * hd + d])
    else:
        for d in range(hd):
            out[d] = _widen(qkv[b, offset + h * hd + d])


@njit(inline="always", fastmath=True, cache=True)
def _rotate(x, cos, sin):
    """GPT-NeoX rotate-half in place: the pair (x[i], x[i + D/2]) turns by the angle whose cos and sin are given."""
    half = x.shape[0] // 2
    for i in range(half):
        x1, x2 = x[i], x[i + half]
        x[i], x[i + half] = x1 * cos[i] - x2 * sin[i], x2 * cos[i] + x1 * sin[i]


@njit(inline="always", fastmath=True, cache=True)
def _angles(inv_freq, pos):
    """cos and sin [B, D/2] of each row's position times the frequencies (float32, as the plain tables)."""
    half = inv_freq.shape[0]
    cos = np.empty((pos.shape[0], half), dtype=np.float32)
    sin = np.empty((pos.shape[0], half), dtype=np.float32)
    for b in range(pos.shape[0]):
        for i in range(half):
            a = np.float32(pos[b]) * _widen(inv_freq[i])
            cos[b, i], sin[b, i] = np.cos(a), np.sin(a)
    return cos, sin


@njit(inline="always", fastmath=True, cache=True)
def _attend_head(task, qkv, q_gain, k_gain, eps, cos, sin, k_cache, v_cache, layer, cols, length, mask, out):
    heads, hd = k_cache.shape[2], k_cache.shape[4]
    b, h = task // heads, task % heads
    col = cols[b]
    dim = heads * hd
    keys, values = k_cache[layer, b, h], v_cache[layer, b, h]  # [S, D]
    q = np.empty(hd, dtype=np.float32)
    k = np.empty(hd, dtype=np.float32)
    _normed_head(qkv, b, 0, h, hd, dim, q_gain, eps, q)
    _normed_head(qkv, b, dim, h, hd, dim, k_gain, eps, k)
    _rotate(q, cos[b], sin[b])
    _rotate(k, cos[b], sin[b])
    for d in range(hd):
        keys[col, d] = _stored(keys, k[d])
        values[col, d] = _stored(values, _widen(qkv[b, 2 * dim + h * hd + d]))
    scale = np.float32(1.0 / np.sqrt(np.float32(hd)))
    scores = np.empty(length, dtype=np.float32)
    top = np.float32(-np.inf)
    for s in range(length):
        if mask.shape[1] == 0 or mask[b, s]:
            acc = np.float32(0.0)
            for d in range(hd):
                acc += q[d] * _widen(keys[s, d])
            scores[s] = acc * scale
            top = max(top, scores[s])
    o = np.zeros(hd, dtype=np.float32)
    total = np.float32(0.0)
    for s in range(length):
        if mask.shape[1] == 0 or mask[b, s]:
            p = np.exp(scores[s] - top)
            total += p
            for d in range(hd):
                o[d] += p * _widen(values[s, d])
    for d in range(hd):
        out[b, h * hd + d] = _stored(out, o[d] / total)


@njit(fastmath=True, cache=True, nogil=True)
def attend_serial(qkv, q_gain, k_gain, eps, inv_freq, pos, k_cache, v_cache, layer, cols, length, mask, out):
    """The step for every (sequence, head) pair on this thread. qkv [B, 3 dim] (the in_proj output), gains
    [dim] (empty: no q/k norm), inv_freq [D/2], pos [B] rotary positions, caches [L, >= B, H, S, D] (row b
    is sequence b) written at column cols[b] of layer `layer`, attention over columns [0, length) that mask
    [B, length] shows (True = visible; [1, 0]: all visible), out [B, dim]. Float arrays are float32 or bf16
    bits (uint16), each on its own."""
    cos, sin = _angles(inv_freq, pos)
    for task in range(qkv.shape[0] * k_cache.shape[2]):
        _attend_head(task, qkv, q_gain, k_gain, eps, cos, sin, k_cache, v_cache, layer, cols, length, mask, out)


@njit(parallel=True, fastmath=True, cache=True, nogil=True)
def attend_parallel(qkv, q_gain, k_gain, eps, inv_freq, pos, k_cache, v_cache, layer, cols, length, mask, out):
    """`attend_serial` with the (sequence, head) pairs spread over numba's threads."""
    cos, sin = _angles(inv_freq, pos)
    for task in prange(qkv.shape[0] * k_cache.shape[2]):
        _attend_head(task, qkv, q_gain, k_gain, eps, cos, sin, k_cache, v_cache, layer, cols, length, mask, out)


_NO_MASK = np.zeros((1, 0), dtype=np.bool_)


def applies(x: torch.Tensor, k_cache: torch.Tensor) -> bool:
    """Whether `attend` takes a step with input x [B, 1, dim] and this [L, slots, H, S, D] cache."""
    return (cpu_matmul.ENABLED and x.device.type == "cpu" and x.dim() == 3 and x.shape[1] == 1
            and x.dtype in (torch.float32, torch.bfloat16) and k_cache.dtype == x.dtype
            and k_cache.device.type == "cpu" and x.shape[0] <= k_cache.shape[1] and not torch.compiler.is_compiling()
            and not (torch.is_grad_enabled() and x.requires_grad) and cpu_matmul.pool_ready())


def attend(qkv: np.ndarray, gains: tuple[np.ndarray, np.ndarray], eps: float, inv_freq: np.ndarray,
           positions: np.ndarray, caches: tuple[np.ndarray, np.ndarray], layer: int, cols: np.ndarray,
           length: int, mask: np.ndarray | None) -> np.ndarray:
    """qkv [B, 3 dim] (in_proj's output) -> attention output [B, dim] for one new token per row (see the module
    doc), on arrays as `cpu_matmul.as_array` gives them: gains [dim] (empty: no q/k norm), inv_freq [D/2],
    caches [L, >= B, H, S, D]; positions [B] and cols [B] (the cache column each row writes) int64, attention
    over columns [0, length), mask None or bool [B, length]."""
    b = qkv.shape[0]
    heads, hd = caches[0].shape[2], caches[0].shape[4]
    out = np.empty((b, heads * hd), dtype=qkv.dtype)
    kernel = attend_parallel if b * heads * length * hd > _PARALLEL_WORK else attend_serial
    kernel(qkv, gains[0], gains[1], np.float32(eps), inv_freq, positions, caches[0], caches[1], layer, cols, length,
           _NO_MASK if mask is None else mask, out)
    return out
