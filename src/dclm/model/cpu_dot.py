"""Row-by-vector dot products with explicit SIMD for the decode kernels, one 64-byte line per instruction
and four independent accumulator chains, written as LLVM intrinsics because numba has no vector types.

- float32: `llvm.fma` on <16 x float> (any CPU: LLVM splits the vector where the CPU's are narrower), so
  that no multiply-add waits for the one before it. numba's own loop (`cpu_matmul.rows_times_weight`) is the
  twin; on the 2-core Xeon this project measures on, the 411M shape's 97 decode products took about 40.5 ms
  per token this way against 43 with it (35.5 GB/s of the 36.6 a plain sum reads), about what torch's
  F.linear does at one row there.
- bf16: AVX-512 BF16's `vdpbf16ps` multiplies 32 bf16 weights by 32 bf16 activations and adds the pair sums
  into 16 float32 lanes in one instruction, where the twin (`cpu_matmul.rows_times_bf16`) widens both
  operands by shifts and masks first: a 1 GB bf16 matrix streamed at about 32 GB/s with it and about 30
  with the widening loop.

The rest of each kernel (blocks of output rows over the cores, the prefetch hint, the tail of a row past its
last whole line, rounding to bf16) is numba code shared with `cpu_matmul`. Products and sums are float32
as in the twins, in another order; `vdpbf16ps` also flushes denormal inputs and outputs to zero, which
decoding never meets in practice (values of 1e-38 and below).
"""

from __future__ import annotations

from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

from dclm.model.cpu_matmul import _ROW_BLOCK, _prefetch_ahead, _store4, _stored, _widen

_features: dict[str, bool] = {}


def host_has(feature: str) -> bool:
    """Whether this CPU has an instruction set extension, by LLVM's name for it (avx512bf16, amx-bf16, ...)."""
    if not _features:
        import llvmlite.binding as llvm

        _features.update((k, bool(v)) for k, v in llvm.get_host_cpu_features().items())
    return _features.get(feature, False)


def bf16_available() -> bool:
    """Whether this CPU has `vdpbf16ps` (AVX-512 BF16)."""
    return host_has("avx512bf16")


class _BFloat(ir.types._BaseFloatType):
    """LLVM's `bfloat`, which llvmlite's IR builder does not name (the intrinsic's operands are <32 x bfloat>)."""

    intrinsic_name = "bf16"

    def __str__(self):
        return "bfloat"


_BFloat._create_instance()


_LANES = ir.VectorType(ir.FloatType(), 16)  # the float32 accumulators: one 64-byte register


def unrolled(context, builder, count, unroll: int, step) -> None:
    """IR for step(c, c % unroll) over c in [0, count): `unroll` steps a round, then the rest on slot 0 (each
    slot its own accumulators, so that consecutive steps do not wait on each other's result)."""
    def const(v):
        return context.get_constant(types.intp, v)

    rounds = builder.sdiv(count, const(unroll))
    with cgutils.for_range(builder, rounds) as loop:
        base = builder.mul(loop.index, const(unroll))
        for u in range(unroll):
            step(builder.add(base, const(u)), u)
    done = builder.mul(rounds, const(unroll))
    with cgutils.for_range(builder, builder.sub(count, done)) as loop:
        step(builder.add(done, loop.index), 0)


def lane_total(builder, accs):
    """The float32 sum of all lanes of the <16 x float> accumulators `accs` (pointers): added together, then
    halved as a tree (4 adds, not 15 in a row)."""
    v = builder.load(accs[0])
    for acc in accs[1:]:
        v = builder.fadd(v, builder.load(acc))
    width = 16
    while width > 1:
        width //= 2
        upper = ir.Constant(ir.VectorType(ir.IntType(32), 16), [j + width if j < width else j for j in range(16)])
        v = builder.fadd(v, builder.shuffle_vector(v, ir.Constant(_LANES, ir.Undefined), upper))
    return builder.extract_element(v, ir.IntType(32)(0))


def _dot_codegen(kind: str, nrows: int, unroll: int):
    """IR for the sums over whole lines c of w[i, line c] . x[r + t, line c], t < nrows, for `kind` "f32"
    (16 floats a line) or "bf16" (32 bf16 values): `unroll` accumulators per row, so that consecutive
    instructions do not wait on each other's result (one row: 4 chains over the lines; four rows: one
    chain each, every weight line loaded once for the four)."""
    lanes = _LANES
    if kind == "bf16":
        vec = ir.VectorType(_BFloat(), 32)
        sig, name = ir.FunctionType(lanes, [lanes, vec, vec]), "llvm.x86.avx512bf16.dpbf16ps.512"
    else:
        vec = lanes
        sig, name = ir.FunctionType(lanes, [lanes, lanes, lanes]), "llvm.fma.v16f32"

    def codegen(context, builder, signature, args):
        w_ty, _, x_ty, _, _ = signature.args
        w_arr, x_arr = context.make_array(w_ty)(context, builder, args[0]), context.make_array(x_ty)(context, builder, args[2])
        row, first_x, lines = args[1], args[3], args[4]

        def const(v):
            return context.get_constant(types.intp, v)

        op = cgutils.get_or_insert_function(builder.module, sig, name)

        def mac(acc, wl, xl):
            return builder.call(op, [acc, wl, xl] if kind == "bf16" else [wl, xl, acc])

        def lines_of(ary_ty, ary, r):
            start = cgutils.get_item_pointer(context, builder, ary_ty, ary, [r, const(0)])
            return builder.bitcast(start, vec.as_pointer())

        w_vec = lines_of(w_ty, w_arr, row)
        x_vecs = [lines_of(x_ty, x_arr, builder.add(first_x, const(t))) for t in range(nrows)]
        accs = [[cgutils.alloca_once_value(builder, ir.Constant(lanes, None)) for _ in range(unroll)]
                for _ in range(nrows)]
        align = 2 if kind == "bf16" else 4

        def step(c, u):
            wl = builder.load(builder.gep(w_vec, [c]), align=align)
            for t in range(nrows):
                xl = builder.load(builder.gep(x_vecs[t], [c]), align=align)
                builder.store(mac(builder.load(accs[t][u]), wl, xl), accs[t][u])

        unrolled(context, builder, lines, unroll, step)
        sums = [lane_total(builder, accs[t]) for t in range(nrows)]
        return sums[0] if nrows == 1 else context.make_tuple(builder, signature.return_type, sums)

    return codegen


def _signature(nrows, w, x):
    ret = types.float32 if nrows == 1 else types.UniTuple(types.float32, nrows)
    return ret(w, types.intp, x, types.intp, types.intp)


def _kind(w) -> str:
    return "bf16" if isinstance(w.dtype, types.Integer) else "f32"


@intrinsic
def _dot1(typingctx, w, i, x, r, lines):
    """float32 sum of w[i, :lines] * x[r, :lines] in whole 64-byte lines, for 2-D float32 arrays or bf16-bit
    (uint16) ones, unit column stride."""
    return _signature(1, w, x), _dot_codegen(_kind(w), 1, 4)


@intrinsic
def _dot4(typingctx, w, i, x, r, lines):
    """The same for rows r..r+3 of x, as a 4-tuple."""
    return _signature(4, w, x), _dot_codegen(_kind(w), 4, 1)


@njit(inline="always")
def _per_line(w):
    return 64 // w.itemsize


@njit(parallel=True, fastmath=True, cache=True, nogil=True)
def rows_times_dot(w, x, out):
    """out[r, i] = sum_j w[i, j] x[r, j] for w [N, K], x [rows, K] and out [rows, N] (rows contiguous), all
    float32, or all bf16 bits as uint16 (then rounded to bf16, and only where `bf16_available()`)."""
    n, k = w.shape
    rows = x.shape[0]
    lines = k // _per_line(w)
    tail = lines * _per_line(w)
    for blk in prange((n + _ROW_BLOCK - 1) // _ROW_BLOCK):
        for i in range(blk * _ROW_BLOCK, min(n, (blk + 1) * _ROW_BLOCK)):
            _prefetch_ahead(w, i, n)
            r = 0
            while r + 4 <= rows:
                a0, a1, a2, a3 = _dot4(w, i, x, r, lines)
                for j in range(tail, k):
                    wv = _widen(w[i, j])
                    a0 += wv * _widen(x[r, j])
                    a1 += wv * _widen(x[r + 1, j])
                    a2 += wv * _widen(x[r + 2, j])
                    a3 += wv * _widen(x[r + 3, j])
                _store4(out, r, i, a0, a1, a2, a3)
                r += 4
            while r < rows:
                a = _dot1(w, i, x, r, lines)
                for j in range(tail, k):
                    a += _widen(w[i, j]) * _widen(x[r, j])
                out[r, i] = _stored(out, a)
                r += 1
