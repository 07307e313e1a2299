"""The elementwise parts of one open_lm block's decode step on the CPU, each one compiled pass over the rows.

Between its four matrix products a decode step of `dclm.model.openlm.Block` runs two LayerNorms, two residual
adds and SwiGLU's silu-times-up: a dozen torch dispatches (and their module calls) for a few thousand numbers
per row. `dclm.generate.cpu.FastBlock` runs the whole step on numpy arrays instead, with these kernels
between the products:

- `add_layer_norm(x, o, gain, eps, h, y)`: h = x + o, then y = LayerNorm(h) * gain (gain only, no bias);
- `layer_norm(x, gain, eps, y)`: the same without the add (the block's first norm);
- `add(x, o, h)`: the block's last residual add;
- `swiglu(g, out)`: out = silu(gate) * up for g = [gate | up] (w12's packed rows).

Arrays are float32, or bf16 given by their uint16 bits (`cpu_matmul.as_array`), each on its own. Values are
computed in float32 and rounded once where they are stored: h is rounded before the norm reads it, as the
plain block's bf16 add rounds it, and SwiGLU rounds once where torch rounds silu's output and the product
each. The plain twin is `Block.forward`; the tests compare the two.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from dclm.model.cpu_matmul import _stored, _widen

# fastmath without "ninf": silu's exp(-a) overflows to inf for very negative a, and a / (1 + inf) must be 0
_SAFE_FAST = {"nsz", "arcp", "contract", "afn", "reassoc"}


@njit(inline="always", fastmath=True, cache=True)
def _norm_row(v, gain, eps, y, r):
    """y[r] = (v - mean(v)) / sqrt(var(v) + eps) * gain, for v a float32 row."""
    dim = v.shape[0]
    mean = np.float32(0.0)
    for j in range(dim):
        mean += v[j]
    mean /= dim
    var = np.float32(0.0)
    for j in range(dim):
        c = v[j] - mean
        var += c * c
    rstd = np.float32(1.0) / np.sqrt(var / dim + eps)
    for j in range(dim):
        y[r, j] = _stored(y, (v[j] - mean) * rstd * _widen(gain[j]))


@njit(fastmath=True, cache=True, nogil=True)
def layer_norm(x, gain, eps, y):
    """y = LayerNorm(x) * gain over the last dimension of x [rows, dim]."""
    v = np.empty(x.shape[1], dtype=np.float32)
    for r in range(x.shape[0]):
        for j in range(x.shape[1]):
            v[j] = _widen(x[r, j])
        _norm_row(v, gain, eps, y, r)


@njit(fastmath=True, cache=True, nogil=True)
def add_layer_norm(x, o, gain, eps, h, y):
    """h = x + o (stored as h stores it), then y = LayerNorm(h) * gain, over rows of [rows, dim]."""
    v = np.empty(x.shape[1], dtype=np.float32)
    for r in range(x.shape[0]):
        for j in range(x.shape[1]):
            h[r, j] = _stored(h, _widen(x[r, j]) + _widen(o[r, j]))
            v[j] = _widen(h[r, j])
        _norm_row(v, gain, eps, y, r)


@njit(fastmath=True, cache=True, nogil=True)
def add(x, o, h):
    """h = x + o."""
    for r in range(x.shape[0]):
        for j in range(x.shape[1]):
            h[r, j] = _stored(h, _widen(x[r, j]) + _widen(o[r, j]))


@njit(fastmath=_SAFE_FAST, cache=True, nogil=True)
def swiglu(g, out):
    """out[r, j] = silu(g[r, j]) * g[r, hidden + j] for g [rows, 2 hidden] and out [rows, hidden]."""
    hidden = out.shape[1]
    one = np.float32(1.0)
    for r in range(g.shape[0]):
        for j in range(hidden):
            a = _widen(g[r, j])
            out[r, j] = _stored(out, a / (one + np.exp(-a)) * _widen(g[r, hidden + j]))
