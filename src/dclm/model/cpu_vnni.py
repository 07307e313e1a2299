"""int4 decode products on AVX-512 VNNI: int4 weights times int8-quantized activations, as llama.cpp's Q4_0
times Q8_0 dot, for dclm's int4 layout in groups of 128 inputs.

One group of 128 inputs is one 64-byte line of packed codes (byte b: input b in its low nibble, input 64 + b
in its high one, `dclm.model.cpu_matmul`'s layout), so a line is split into two 64-byte vectors of codes
0..15 by a mask and a shift, and `vpdpbusd` multiplies each by 64 int8 activations and sums in fours into 16
int32 lanes. With the activations of row r quantized per group (x ~ dx[r, g] * xq, |xq| <= 127) and the
weights w = q * s[i, g] + z[i, g]:

    out[r, i] = sum_g s[i, g] * dx[r, g] * (q . xq)[g] + z[i, g] * xsum[r, g]

where the integer dot is exact and xsum is the float sum of x over the group. Against torch's own int4
kernel (`torch._weight_int4pack_mm_for_cpu`, which dclm otherwise decodes int4 through) this streamed a
5632 x 1024 matrix in about 95 µs against 142 on the 2-core Xeon this project measures on, about the
machine's read bandwidth, and took a 411M int4 token from 13.0 to 7.9 ms (same-process checks; the kernels
side by side: `benchmarks/bench_quant_kernels.py`), with no repacking at load.
The cost is the activations' rounding to 8 bits per group (about 0.4% of a group's largest value), the
trade llama.cpp makes; `benchmarks/bench_quant.py` reports the perplexity and greedy agreement it gives.

The plain twin is in the tests: the same sums in float64 from the same quantized activations, and the
quantizer against torch's rounding. Rows stream with an L2 prefetch hint a few KB ahead (rows of packed int4
are short: the float kernels' four rows ahead would be 2 KB here, too close to hide the memory's latency).
"""

from __future__ import annotations

import numpy as np
import torch
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

from dclm.model import cpu_matmul
from dclm.model.cpu_dot import host_has, lane_total, unrolled
from dclm.model.cpu_matmul import _ROW_BLOCK, _store4, _stored, _widen
from dclm.prefetch import prefetch_l2

GROUP = 128  # inputs per group: one 64-byte line of packed codes
_AHEAD_BYTES = 8192  # how far ahead of the row being computed its task asks for weights

_I8 = ir.VectorType(ir.IntType(8), 64)
_I16 = ir.VectorType(ir.IntType(16), 32)
_I32 = ir.VectorType(ir.IntType(32), 16)
_F32 = ir.VectorType(ir.FloatType(), 16)
_UNROLL = 4  # groups in flight per row: independent accumulators, so one group's sums do not wait on the last's


def vnni_available() -> bool:
    """Whether this CPU has AVX-512 VNNI and BW."""
    return host_has("avx512vnni") and host_has("avx512bw")


def _q4_codegen(nrows: int):
    """IR for sum_g s[i, g] * dx[r + t, g] * (codes of p[i, group g] . xq[r + t, group g]), t < nrows, as
    float32: the codes split once per group for the nrows rows."""

    def codegen(context, builder, signature, args):
        p_ty, _, s_ty, xq_ty, dx_ty, _ = signature.args
        p, s, xq, dx = (context.make_array(ty)(context, builder, a) for ty, a in
                        zip((p_ty, s_ty, xq_ty, dx_ty), (args[0], args[2], args[3], args[4])))
        i, r = args[1], args[5]
        groups = builder.extract_value(s.shape, 1)

        def const(v):
            return context.get_constant(types.intp, v)

        def item(ty, ary, idx):
            return cgutils.get_item_pointer(context, builder, ty, ary, idx)

        dot = cgutils.get_or_insert_function(builder.module, ir.FunctionType(_I32, [_I32] * 3), "llvm.x86.avx512.vpdpbusd.512")
        fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(_F32, [_F32] * 3), "llvm.fma.v16f32")
        lines = builder.bitcast(item(p_ty, p, [i, const(0)]), _I8.as_pointer())
        rows = [builder.add(r, const(t)) for t in range(nrows)]
        x_lines = [builder.bitcast(item(xq_ty, xq, [row, const(0)]), _I8.as_pointer()) for row in rows]
        accs = [[cgutils.alloca_once_value(builder, ir.Constant(_F32, None)) for _ in range(_UNROLL)] for _ in rows]
        nibble, four = ir.Constant(_I8, [15] * 64), ir.Constant(_I16, [4] * 32)
        zeros, lane0 = ir.Constant(_I32, None), ir.Constant(_I32, [0] * 16)

        def step(g, u):
            line = builder.load(builder.gep(lines, [g]), align=1)
            lo = builder.bitcast(builder.and_(line, nibble), _I32)
            hi = builder.bitcast(builder.and_(builder.bitcast(builder.lshr(builder.bitcast(line, _I16), four), _I8), nibble), _I32)
            scale = builder.load(item(s_ty, s, [i, g]))
            for t, row in enumerate(rows):
                first = builder.mul(g, const(2))
                x_lo = builder.bitcast(builder.load(builder.gep(x_lines[t], [first]), align=1), _I32)
                x_hi = builder.bitcast(builder.load(builder.gep(x_lines[t], [builder.add(first, const(1))]), align=1), _I32)
                sums = builder.call(dot, [builder.call(dot, [zeros, lo, x_lo]), hi, x_hi])
                factor = builder.fmul(scale, builder.load(item(dx_ty, dx, [row, g])))
                spread = builder.shuffle_vector(builder.insert_element(ir.Constant(_F32, ir.Undefined), factor, ir.IntType(32)(0)),
                                                ir.Constant(_F32, ir.Undefined), lane0)
                builder.store(builder.call(fma, [builder.sitofp(sums, _F32), spread, builder.load(accs[t][u])]), accs[t][u])

        unrolled(context, builder, groups, _UNROLL, step)
        totals = [lane_total(builder, accs[t]) for t in range(nrows)]
        return totals[0] if nrows == 1 else context.make_tuple(builder, signature.return_type, totals)

    return codegen


def _q4_signature(nrows, p, s, xq, dx):
    ret = types.float32 if nrows == 1 else types.UniTuple(types.float32, nrows)
    return ret(p, types.intp, s, xq, dx, types.intp)


@intrinsic
def _q4dot1(typingctx, p, i, s, xq, dx, r):
    """Row r of the quantized activations against weight row i, without the zero points (see the module doc)."""
    return _q4_signature(1, p, s, xq, dx), _q4_codegen(1)


@intrinsic
def _q4dot4(typingctx, p, i, s, xq, dx, r):
    """The same for rows r..r+3, as a 4-tuple."""
    return _q4_signature(4, p, s, xq, dx), _q4_codegen(4)


@njit(inline="always")
def _zero_share(z, i, xsum, r):
    a = np.float32(0.0)
    for g in range(z.shape[1]):
        a += z[i, g] * xsum[r, g]
    return a


@njit(parallel=True, fastmath=True, cache=True, nogil=True)
def rows_times_int4_q8(p, s, z, xq, dx, xsum, out):
    """out[r, i] = x[r] . w[i] for int4 p [N, K/2] in groups of 128 (float32 s, z [N, K/128]) and activations
    quantized by `quantize_rows` (xq [rows, K] int8, dx and xsum [rows, K/128] float32); out float32, or
    bf16 bits as uint16. Only where `vnni_available()`."""
    n = p.shape[0]
    rows = xq.shape[0]
    ahead = max(4, _AHEAD_BYTES // p.shape[1])
    for blk in prange((n + _ROW_BLOCK - 1) // _ROW_BLOCK):
        for i in range(blk * _ROW_BLOCK, min(n, (blk + 1) * _ROW_BLOCK)):
            if i + ahead < n:
                for c in range(0, p.shape[1], 64):
                    prefetch_l2(p, i + ahead, c)
            r = 0
            while r + 4 <= rows:
                a0, a1, a2, a3 = _q4dot4(p, i, s, xq, dx, r)
                _store4(out, r, i, a0 + _zero_share(z, i, xsum, r), a1 + _zero_share(z, i, xsum, r + 1),
                        a2 + _zero_share(z, i, xsum, r + 2), a3 + _zero_share(z, i, xsum, r + 3))
                r += 4
            while r < rows:
                out[r, i] = _stored(out, _q4dot1(p, i, s, xq, dx, r) + _zero_share(z, i, xsum, r))
                r += 1


@njit(fastmath=True, cache=True, nogil=True)
def quantize_rows(x, xq, dx, xsum):
    """Per row and group of 128 inputs of x [rows, K] (float32 or bf16 bits): dx = max |x| / 127 (1 for an
    all-zero group), xq = x / dx rounded to the nearest integer (ties to even), xsum = the sum of x."""
    for r in range(x.shape[0]):
        for g in range(x.shape[1] // GROUP):
            top = np.float32(0.0)
            total = np.float32(0.0)
            for j in range(g * GROUP, (g + 1) * GROUP):
                v = _widen(x[r, j])
                top = max(top, abs(v))
                total += v
            step = top / np.float32(127.0) if top > 0 else np.float32(1.0)
            dx[r, g], xsum[r, g] = step, total
            for j in range(g * GROUP, (g + 1) * GROUP):
                xq[r, j] = np.int8(np.round(_widen(x[r, j]) / step))


def applies(packed_shape: tuple[int, int], groups: int) -> bool:
    """Whether `int4_product` takes int4 weights of this packed shape [N, K/2] and group count."""
    return groups * GROUP == 2 * packed_shape[1] and vnni_available()


def int4_product(p: np.ndarray, s: np.ndarray, z: np.ndarray, x: np.ndarray) -> np.ndarray:
    """x [rows, K] @ w.T for int4 weights in groups of 128 (`applies`), x an array as `cpu_matmul.as_array`
    gives it (float32 or bf16 bits) and the result in its layout."""
    rows, k = x.shape
    xq = np.empty((rows, k), dtype=np.int8)
    dx = np.empty((rows, k // GROUP), dtype=np.float32)
    xsum = np.empty((rows, k // GROUP), dtype=np.float32)
    quantize_rows(x, xq, dx, xsum)
    out = np.empty((rows, p.shape[0]), dtype=x.dtype)
    rows_times_int4_q8(p, s, z, xq, dx, xsum, out)
    return out


def linear(x: torch.Tensor, packed: torch.Tensor, scales: torch.Tensor, zeros: torch.Tensor) -> torch.Tensor | None:
    """x [..., K] @ w.T through `int4_product` for int4 weights (packed uint8 [N, K/2], float32 scales and
    zeros [N, K/128]), or None where the path does not apply (see `cpu_matmul.linear`)."""
    rows = cpu_matmul._rows(x, 2 * packed.shape[1])
    if not rows or not applies(tuple(packed.shape), scales.shape[1]):
        return None
    out = int4_product(packed.numpy(), scales.numpy(), zeros.numpy(), cpu_matmul._bits(x.contiguous(), rows))
    return cpu_matmul.from_array(out).view(*x.shape[:-1], packed.shape[0])
