"""The bf16 decode product on CPUs with AVX-512 BF16: `vdpbf16ps` multiplies 32 bf16 weights by 32 bf16
activations and adds the pair sums into 16 float32 lanes in one instruction, where the plain kernel
(`cpu_matmul.rows_times_bf16`, the twin the tests compare against) widens both operands to float32 by shifts
and masks first. Decoding a bf16 model reads its weights at the memory's pace only if a core's arithmetic
keeps up; on the 2-core Xeon this project measures on, a 1 GB bf16 matrix streamed at about 32 GB/s with this
instruction and about 30 with the widening loop (`benchmarks/bench_quant.py` has the whole-model figures).

numba has no vector types, so the inner loop over a row is an LLVM intrinsic written here; the rest (blocks
of output rows over the cores, the prefetch hint, the tail of a row past its last whole 32-element chunk,
rounding to bf16) is the plain kernel's numba code. Products are exact in float32 and the sums round in
float32 as in the twin, only in another order; the instruction flushes denormal inputs and outputs to zero,
which bf16 decoding never meets in practice (weights and activations of 1e-38 and below).
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

from dclm.model.cpu_matmul import _ROW_BLOCK, _prefetch_ahead, _stored, _widen

CHUNK = 32  # bf16 elements per instruction (one 64-byte line)
_supported: list[bool] = []


def available() -> bool:
    """Whether this CPU has the instruction (LLVM's name for the feature: avx512bf16)."""
    if not _supported:
        import llvmlite.binding as llvm

        _supported.append(bool(llvm.get_host_cpu_features().get("avx512bf16", False)))
    return _supported[0]


class _BFloat(ir.types._BaseFloatType):
    """LLVM's `bfloat`, which llvmlite's IR builder does not name (the intrinsic's operands are <32 x bfloat>)."""

    intrinsic_name = "bf16"

    def __str__(self):
        return "bfloat"


_BFloat._create_instance()


def _dot_codegen(nrows: int, unroll: int):
    """IR for sum over whole chunks c of w[i, chunk c] . x[r + t, chunk c], t < nrows: `unroll` accumulators
    per row, so that consecutive instructions do not wait on each other's result (one row: 4 chains over the
    chunks; four rows: one chain each, every weight chunk loaded once for the four)."""

    def codegen(context, builder, sig, args):
        w_ty, _, x_ty, _, _ = sig.args
        w_arr, x_arr = context.make_array(w_ty)(context, builder, args[0]), context.make_array(x_ty)(context, builder, args[2])
        row, first_x, chunks = args[1], args[3], args[4]

        def const(v):
            return context.get_constant(types.intp, v)

        vec, acc_ty = ir.VectorType(_BFloat(), CHUNK), ir.VectorType(ir.FloatType(), CHUNK // 2)
        dot = cgutils.get_or_insert_function(builder.module, ir.FunctionType(acc_ty, [acc_ty, vec, vec]),
                                             "llvm.x86.avx512bf16.dpbf16ps.512")

        def chunks_of(ary_ty, ary, r):
            start = cgutils.get_item_pointer(context, builder, ary_ty, ary, [r, const(0)])
            return builder.bitcast(start, vec.as_pointer())

        w_vec = chunks_of(w_ty, w_arr, row)
        x_vecs = [chunks_of(x_ty, x_arr, builder.add(first_x, const(t))) for t in range(nrows)]
        accs = [[cgutils.alloca_once_value(builder, ir.Constant(acc_ty, None)) for _ in range(unroll)]
                for _ in range(nrows)]

        def step(c, u):
            wc = builder.load(builder.gep(w_vec, [c]), align=2)
            for t in range(nrows):
                xc = builder.load(builder.gep(x_vecs[t], [c]), align=2)
                builder.store(builder.call(dot, [builder.load(accs[t][u]), wc, xc]), accs[t][u])

        rounds = builder.sdiv(chunks, const(unroll))
        with cgutils.for_range(builder, rounds) as loop:
            base = builder.mul(loop.index, const(unroll))
            for u in range(unroll):
                step(builder.add(base, const(u)), u)
        done = builder.mul(rounds, const(unroll))
        with cgutils.for_range(builder, builder.sub(chunks, done)) as loop:
            step(builder.add(done, loop.index), 0)
        sums = []
        for t in range(nrows):
            lanes = builder.load(accs[t][0])
            for u in range(1, unroll):
                lanes = builder.fadd(lanes, builder.load(accs[t][u]))
            total = builder.extract_element(lanes, ir.IntType(32)(0))
            for lane in range(1, CHUNK // 2):
                total = builder.fadd(total, builder.extract_element(lanes, ir.IntType(32)(lane)))
            sums.append(total)
        return sums[0] if nrows == 1 else context.make_tuple(builder, sig.return_type, sums)

    return codegen


@intrinsic
def _dot1(typingctx, w, i, x, r, chunks):
    """float32 sum of w[i, :32 chunks] * x[r, :32 chunks] for uint16 (bf16-bit) 2-D arrays with unit column stride."""
    return types.float32(w, types.intp, x, types.intp, types.intp), _dot_codegen(1, 4)


@intrinsic
def _dot4(typingctx, w, i, x, r, chunks):
    """The same for rows r..r+3 of x, as a 4-tuple."""
    return types.UniTuple(types.float32, 4)(w, types.intp, x, types.intp, types.intp), _dot_codegen(4, 1)


@njit(parallel=True, fastmath=True, cache=True, nogil=True)
def rows_times_bf16_dot(w, x, out):
    """out[r, i] = sum_j w[i, j] x[r, j], rounded to bf16, for w [N, K], x [rows, K] and out [rows, N], all
    bf16 bits as uint16, rows contiguous."""
    n, k = w.shape
    rows = x.shape[0]
    chunks = k // CHUNK
    tail = chunks * CHUNK
    for blk in prange((n + _ROW_BLOCK - 1) // _ROW_BLOCK):
        for i in range(blk * _ROW_BLOCK, min(n, (blk + 1) * _ROW_BLOCK)):
            _prefetch_ahead(w, i, n)
            r = 0
            while r + 4 <= rows:
                a0, a1, a2, a3 = _dot4(w, i, x, r, chunks)
                for j in range(tail, k):
                    wv = _widen(w[i, j])
                    a0 += wv * _widen(x[r, j])
                    a1 += wv * _widen(x[r + 1, j])
                    a2 += wv * _widen(x[r + 2, j])
                    a3 += wv * _widen(x[r + 3, j])
                out[r, i] = _stored(out, a0)
                out[r + 1, i] = _stored(out, a1)
                out[r + 2, i] = _stored(out, a2)
                out[r + 3, i] = _stored(out, a3)
                r += 4
            while r < rows:
                a = _dot1(w, i, x, r, chunks)
                for j in range(tail, k):
                    a += _widen(w[i, j]) * _widen(x[r, j])
                out[r, i] = _stored(out, a)
                r += 1
