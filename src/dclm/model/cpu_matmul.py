"""Few-row matrix products on the CPU, the shape of every Linear during decoding, for float32, bf16, int8 and
int4 weights, computed straight from the stored weights (never a float copy of a whole matrix per call).

Decoding multiplies one row per sequence by each weight matrix, so a step costs one read of the weights
from memory and its speed follows the bytes read: bf16 halves them, int8 quarters them, int4 (with its
group scales) reads about a seventh. Blocked loops compiled with numba and split over the cores by output
rows stream the weights; each task asks for the row `_AHEAD` rows on, into L2 (`dclm.prefetch`), since on
the 2-core Xeon this project measures on, the hardware prefetchers alone did not keep a core's reads at the
memory's pace (decode tok/s with and without the hint: `benchmarks/bench_quant.py`). Numba compiles
them with fastmath for the machine it runs on (AVX-512 where the CPU has it, plain SIMD elsewhere). torch's
own weight-only kernels are measured beside them in `benchmarks/bench_quant_kernels.py`:
`_weight_int8pack_mm` slower than the int8 loop here, `_weight_int4pack_mm_for_cpu` faster than the int4
loop (with bf16 activations; float32 ones ran 5-10x slower), so on CPUs without AVX-512 VNNI (where
`dclm.model.cpu_vnni`'s int4 x int8 kernel is faster still) int4 weights are repacked into its layout once,
when the kernels are swapped in (`to_int4pack`, a numba pass checked against torch's own converter), and the
numba int4 loop serves where neither applies.

The kernels and their layouts:
- float32 `w[N, K]` (decoding runs `dclm.model.cpu_dot`'s explicit-SIMD version of this loop, which keeps
  four accumulator chains; this one is its twin); bf16 weights read as uint32 pairs (`w[N, K/2]`, element
  2j in the low half), widened to float32 by a shift, which is exact (on CPUs with AVX-512 BF16, a bf16
  model's bf16 activations go through `cpu_dot`'s `vdpbf16ps` kernel instead; this widening loop is its twin);
- int8 `q[N, K]` with one float32 scale per output row: `w = q * s[n]`;
- int4 `p[N, K/2]` in groups of G inputs (G even): byte b of group g holds input g*G + b in its low nibble
  and input g*G + G/2 + b in its high nibble, `w = q * s[n, g] + z[n, g]`. The kernel never splits the
  nibbles: with f = float(byte) and h = floor(f / 16), q_lo * x_lo + q_hi * x_hi = f * x_lo + h * (x_hi -
  16 x_lo), and the zero point's share is z * sum(x over the group), both prepared once per call from x.
Activations are float32 (the bf16 kernel also takes a bf16 model's as they are and rounds its outputs to
bf16 itself) and every output element is one dot product in a fixed order, so results do not depend on
the thread count. Rows of x are taken four (int4: two) at a time, so each weight is widened once
for several products (batched decoding).

Streaming also needs the weights on 2 MiB pages: the hardware prefetchers stop at every 4 KiB page
boundary, and torch allocates tensors on 4 KiB pages. `use_huge_pages(tensors)` moves tensors into one
transparent-huge-page mapping (about 30% faster decoding on that machine).

numba's parallel kernels share torch's OpenMP threads, which `dclm.generate.passive_openmp()` lets spin for
about half a millisecond before they sleep, so that a decode step's back-to-back launches find them awake;
it must run before torch is imported (the CLI and the benchmarks call it first).

Each wrapper returns None where its path does not apply (more than `MAX_ROWS` rows, a gradient needed,
torch.compile tracing, `DCLM_CPU_MATMUL=0`, or a process forked after the path ran: numba terminates a
child that enters its parent's pool), and the caller computes the plain way. The modules that call these
are swapped into a model by `dclm.generate.cpu`; `dclm.model.openlm` stays plain torch.
"""

from __future__ import annotations

import mmap
import os

from dclm.generate import passive_openmp

passive_openmp()  # takes effect only where torch is not loaded yet (the CLI runs it first)
import numba  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from numba import njit, prange, types  # noqa: E402
from numba.extending import overload  # noqa: E402

from dclm.generate.quantize import unpack_int4  # noqa: E402
from dclm.prefetch import prefetch_l2  # noqa: E402

MAX_ROWS = 16
_ROW_BLOCK = 32  # output rows per parallel task
# bf16 x bf16 products of more rows go to torch's F.linear where the CPU has AMX: oneDNN's AMX kernel costs
# the same at 1 row as at 16, and passes dclm's `vdpbf16ps` loop at about 7 rows (411M matrices on the Xeon:
# 1.43 against 1.60 ms a layer at 8 rows, 1.49 against 2.56 at 16; batch-8 bf16 decoding 150 -> 163 tok/s)
_TORCH_BF16_ROWS = 6
_AHEAD = 4  # a task asks for the weights of the row this many rows ahead of the one it computes
_numba_threads = [0]  # the torch thread count numba's pool was last set to
_pool_pid = [0]  # the process whose numba (GNU OpenMP) pool the kernels run in
_dot: list = []  # cpu_dot's kernel and whether it takes bf16 on this CPU, once per process
ENABLED = os.environ.get("DCLM_CPU_MATMUL", "1").lower() not in ("0", "false", "no", "off")


@njit(cache=True, inline="always")
def _prefetch_ahead(w, i, n):
    """Hint the row _AHEAD rows after i of the 2-D array w, one request per 64-byte line."""
    if i + _AHEAD < n:
        step = max(1, 64 // w.itemsize)
        for c in range(0, w.shape[1], step):
            prefetch_l2(w, i + _AHEAD, c)


@njit(parallel=True, fastmath=True, cache=True, nogil=True)
def rows_times_weight(w, x, out):
    """out[r, i] = sum_j w[i, j] * x[r, j] for float32 w."""
    n, k = w.shape
    rows = x.shape[0]
    for blk in prange((n + _ROW_BLOCK - 1) // _ROW_BLOCK):
        for i in range(blk * _ROW_BLOCK, min(n, (blk + 1) * _ROW_BLOCK)):
            _prefetch_ahead(w, i, n)
            r = 0
            while r + 4 <= rows:
                a0 = a1 = a2 = a3 = np.float32(0.0)
                for j in range(k):
                    wv = w[i, j]
                    a0 += wv * x[r, j]
                    a1 += wv * x[r + 1, j]
                    a2 += wv * x[r + 2, j]
                    a3 += wv * x[r + 3, j]
                out[r, i], out[r + 1, i], out[r + 2, i], out[r + 3, i] = a0, a1, a2, a3
                r += 4
            while r < rows:
                acc = np.float32(0.0)
                for j in range(k):
                    acc += w[i, j] * x[r, j]
                out[r, i] = acc
                r += 1


def _widen(v):
    """An activation as float32: itself, or a bf16 value given by its uint16 bits (exact)."""


@overload(_widen, inline="always")
def _widen_impl(v):
    if isinstance(v, types.Integer):
        return lambda v: np.uint32(np.uint32(v) << np.uint32(16)).view(np.float32)
    return lambda v: np.float32(v)


def _stored(ary, v):
    """v as the array ary stores it: float32, or where ary holds bf16 as uint16 bits, the bits of the
    nearest bf16 (ties to even, as torch rounds)."""


@overload(_stored, inline="always")
def _stored_impl(ary, v):
    if isinstance(ary.dtype, types.Integer):
        def narrow(ary, v):
            b = np.float32(v).view(np.uint32)
            return np.uint16((b + np.uint32(0x7FFF) + ((b >> np.uint32(16)) & np.uint32(1))) >> np.uint32(16))
        return narrow
    return lambda ary, v: np.float32(v)


@njit(inline="always")
def _store4(out, r, i, a0, a1, a2, a3):
    """out[r..r+3, i] = a0..a3 as out stores them (`_stored`)."""
    out[r, i] = _stored(out, a0)
    out[r + 1, i] = _stored(out, a1)
    out[r + 2, i] = _stored(out, a2)
    out[r + 3, i] = _stored(out, a3)


@njit(parallel=True, fastmath=True, cache=True, nogil=True)
def rows_times_bf16(w, x, out):
    """out[r, i] = sum_j w[i, j] x[r, j] for bf16 w read as uint32 pairs [N, K/2]; x and out float32, or both
    bf16 as uint16 bits (a bf16 model's activations, converted here instead of by two torch ops per call)."""
    n, kp = w.shape
    rows = x.shape[0]
    xe = np.empty((rows, kp), dtype=np.float32)  # x's even and odd columns, to match the pairs
    xo = np.empty((rows, kp), dtype=np.float32)
    for r in range(rows):
        for j in range(kp):
            xe[r, j] = _widen(x[r, 2 * j])
            xo[r, j] = _widen(x[r, 2 * j + 1])
    lo_shift, hi_mask = np.uint32(16), np.uint32(0xFFFF0000)
    for blk in prange((n + _ROW_BLOCK - 1) // _ROW_BLOCK):
        for i in range(blk * _ROW_BLOCK, min(n, (blk + 1) * _ROW_BLOCK)):
            _prefetch_ahead(w, i, n)
            r = 0
            while r + 4 <= rows:
                a0 = a1 = a2 = a3 = np.float32(0.0)
                for j in range(kp):
                    u = w[i, j]
                    we = np.uint32(u << lo_shift).view(np.float32)
                    wo = np.uint32(u & hi_mask).view(np.float32)
                    a0 += we * xe[r, j] + wo * xo[r, j]
                    a1 += we * xe[r + 1, j] + wo * xo[r + 1, j]
                    a2 += we * xe[r + 2, j] + wo * xo[r + 2, j]
                    a3 += we * xe[r + 3, j] + wo * xo[r + 3, j]
                _store4(out, r, i, a0, a1, a2, a3)
                r += 4
            while r < rows:
                acc = np.float32(0.0)
                for j in range(kp):
                    u = w[i, j]
                    acc += (np.uint32(u << lo_shift).view(np.float32) * xe[r, j]
                            + np.uint32(u & hi_mask).view(np.float32) * xo[r, j])
                out[r, i] = _stored(out, acc)
                r += 1


@njit(parallel=True, fastmath=True, cache=True, nogil=True)
def rows_times_int8(q, s, x, out):
    """out[r, i] = s[i] * sum_j q[i, j] x[r, j] for int8 q; x and out float32, or both bf16 as uint16 bits."""
    n, k = q.shape
    rows = x.shape[0]
    for blk in prange((n + _ROW_BLOCK - 1) // _ROW_BLOCK):
        for i in range(blk * _ROW_BLOCK, min(n, (blk + 1) * _ROW_BLOCK)):
            _prefetch_ahead(q, i, n)
            si = s[i]
            r = 0
            while r + 4 <= rows:
                a0 = a1 = a2 = a3 = np.float32(0.0)
                for j in range(k):
                    wv = np.float32(q[i, j])
                    a0 += wv * _widen(x[r, j])
                    a1 += wv * _widen(x[r + 1, j])
                    a2 += wv * _widen(x[r + 2, j])
                    a3 += wv * _widen(x[r + 3, j])
                _store4(out, r, i, a0 * si, a1 * si, a2 * si, a3 * si)
                r += 4
            while r < rows:
                acc = np.float32(0.0)
                for j in range(k):
                    acc += np.float32(q[i, j]) * _widen(x[r, j])
                out[r, i] = _stored(out, acc * si)
                r += 1


@njit(parallel=True, fastmath=True, cache=True, nogil=True)
def rows_times_int4(p, s, z, x, out):
    """out[r, i] = sum_g s[i, g] sum_b (f xl + h xd) + z[i, g] xsum[r, g] for the packed int4 layout above,
    with p [N, groups, G/2] (three dimensions so every inner index counts from 0: numba's negative-index
    check then folds away and the loop vectorizes)."""
    n, groups, half = p.shape
    p2 = p.reshape(n, groups * half)  # the same bytes, for the prefetch hint
    rows = x.shape[0]
    xl = np.empty((rows, groups, half), dtype=np.float32)  # x at the low nibbles' inputs
    xd = np.empty((rows, groups, half), dtype=np.float32)  # x_hi - 16 x_lo
    xsum = np.zeros((rows, groups), dtype=np.float32)
    for r in range(rows):
        for g in range(groups):
            for b in range(half):
                lo, hi = x[r, g * 2 * half + b], x[r, g * 2 * half + half + b]
                xl[r, g, b] = lo
                xd[r, g, b] = hi - 16 * lo
                xsum[r, g] += lo + hi
    sixteenth = np.float32(0.0625)
    for blk in prange((n + _ROW_BLOCK - 1) // _ROW_BLOCK):
        for i in range(blk * _ROW_BLOCK, min(n, (blk + 1) * _ROW_BLOCK)):
            _prefetch_ahead(p2, i, n)
            r = 0
            while r + 2 <= rows:
                t0 = t1 = np.float32(0.0)
                for g in range(groups):
                    a0 = a1 = np.float32(0.0)
                    for b in range(half):
                        f = np.float32(p[i, g, b])
                        h = np.floor(f * sixteenth)
                        a0 += f * xl[r, g, b] + h * xd[r, g, b]
                        a1 += f * xl[r + 1, g, b] + h * xd[r + 1, g, b]
                    t0 += a0 * s[i, g] + z[i, g] * xsum[r, g]
                    t1 += a1 * s[i, g] + z[i, g] * xsum[r + 1, g]
                out[r, i], out[r + 1, i] = t0, t1
                r += 2
            while r < rows:
                t = np.float32(0.0)
                for g in range(groups):
                    a = np.float32(0.0)
                    for b in range(half):
                        f = np.float32(p[i, g, b])
                        a += f * xl[r, g, b] + np.floor(f * sixteenth) * xd[r, g, b]
                    t += a * s[i, g] + z[i, g] * xsum[r, g]
                out[r, i] = t
                r += 1


# torch's CPU int4 kernel (`torch._weight_int4pack_mm_for_cpu`) on its AVX-512 layout: output rows in blocks
# of 64, stored input by input, byte j of input k in block nb holding row nb*64 + j's code in its low nibble
# and row nb*64 + 32 + j's in its high one (read off `_convert_weight_to_int4pack_for_cpu`; `int4pack_ok`
# checks that this torch build still writes it).
_PACK_BLOCK = 64
_PACK_GROUPS = (32, 64, 128, 256)  # the group sizes that kernel takes
_pack_layout_ok: list[bool] = []  # the check's answer, once per process


@njit(parallel=True, cache=True, nogil=True)
def int4_to_torch_layout(p, out):
    """dclm's nibble layout p [N, groups, G/2] -> torch's out [N/64, K, 32], both uint8, in one pass."""
    n, groups, half = p.shape
    for nb in prange(n // _PACK_BLOCK):
        for j in range(_PACK_BLOCK // 2):
            lo_row, hi_row = nb * _PACK_BLOCK + j, nb * _PACK_BLOCK + _PACK_BLOCK // 2 + j
            for g in range(groups):
                base = g * 2 * half
                for b in range(half):
                    a, c = p[lo_row, g, b], p[hi_row, g, b]
                    out[nb, base + b, j] = (a & 15) | ((c & 15) << 4)
                    out[nb, base + half + b, j] = (a >> 4) | (c & 240)


def int4pack_ok() -> bool:
    """Whether torch's int4 kernel is here and its converter writes the layout `int4_to_torch_layout` does."""
    if not _pack_layout_ok:
        ok = hasattr(torch, "_weight_int4pack_mm_for_cpu") and hasattr(torch, "_convert_weight_to_int4pack_for_cpu")
        if ok:
            g = torch.Generator().manual_seed(0)
            probe = torch.randint(0, 256, (2 * _PACK_BLOCK, 128), dtype=torch.uint8, generator=g)
            mine = torch.empty(2, 256, _PACK_BLOCK // 2, dtype=torch.uint8)
            int4_to_torch_layout(probe.view(2 * _PACK_BLOCK, 2, 64).numpy(), mine.numpy())
            codes = unpack_int4(probe, 2).reshape(probe.shape[0], -1).to(torch.int32)
            theirs = torch._convert_weight_to_int4pack_for_cpu(codes, 1)
            ok = theirs.shape == (2 * _PACK_BLOCK, 128) and torch.equal(theirs.reshape(-1), mine.reshape(-1))
        _pack_layout_ok.append(ok)
    return _pack_layout_ok[0]


def to_int4pack(packed: torch.Tensor, scales: torch.Tensor, zeros: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
    """dclm's int4 weights (uint8 [N, K/2], scales and zeros [N, K/G]) as torch's kernel wants them: the
    packed codes [N, K/2] and bf16 scales-and-zeros [K/G, N, 2] with w = (q - 8) * s + (z + 8 s). None where
    that kernel cannot take them (N not a multiple of 64, a group size it lacks, another layout)."""
    n, half_k = packed.shape
    groups = scales.shape[1]
    group = 2 * half_k // groups
    if (not ENABLED or n % _PACK_BLOCK or group not in _PACK_GROUPS or packed.dtype != torch.uint8
            or not packed.is_contiguous() or not int4pack_ok()):
        return None
    out = torch.empty(n // _PACK_BLOCK, 2 * half_k, _PACK_BLOCK // 2, dtype=torch.uint8)
    int4_to_torch_layout(packed.view(n, groups, group // 2).numpy(), out.numpy())
    s, z = scales.float(), zeros.float()
    sz = torch.stack((s.T, (z + 8 * s).T), dim=-1).to(torch.bfloat16).contiguous()
    return out.view(n, half_k), sz


def int4pack_product(x: np.ndarray, pack: torch.Tensor, sz: torch.Tensor) -> np.ndarray:
    """x [rows, K] @ w.T through torch's int4 kernel on `to_int4pack`'s tensors, x an array as `as_array` gives
    it and the result in its layout (activations rounded to bf16, which that kernel needs to be fast)."""
    xt = from_array(x)
    k = 2 * pack.shape[1]
    y = torch._weight_int4pack_mm_for_cpu(xt.to(torch.bfloat16), pack, k // sz.shape[0], sz)
    return as_array(y.to(xt.dtype))


def linear_int4pack(x: torch.Tensor, pack: torch.Tensor, sz: torch.Tensor) -> torch.Tensor | None:
    """x [..., K] @ w.T through torch's int4 kernel (`int4pack_product`), or None where the fast path does not
    apply."""
    rows = _rows(x, 2 * pack.shape[1])
    if not rows:
        return None
    return from_array(int4pack_product(_bits(x.contiguous(), rows), pack, sz)).view(*x.shape[:-1], pack.shape[0])


def _rows(x: torch.Tensor, k: int) -> int:
    """The number of rows of x when the fast path applies to it, else 0."""
    if not ENABLED or x.device.type != "cpu" or x.dtype not in (torch.float32, torch.bfloat16) or x.shape[-1] != k:
        return 0
    if torch.compiler.is_compiling() or (torch.is_grad_enabled() and x.requires_grad):
        return 0
    rows = x.numel() // k if k else 0
    return rows if 0 < rows <= MAX_ROWS and pool_ready() else 0


def pool_ready() -> bool:
    """Whether numba's parallel kernels may run in this process now (set to torch's thread count); False in
    a process forked after they ran."""
    pid = os.getpid()
    if pid != _pool_pid[0]:
        if _pool_pid[0]:  # a forked child: numba kills a child that enters its parent's OpenMP pool
            return False
        _pool_pid[0] = pid
    threads = torch.get_num_threads()
    if threads != _numba_threads[0]:  # numba's pool follows torch's thread setting
        numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
        _numba_threads[0] = threads
    return True


def _x32(x: torch.Tensor, rows: int) -> torch.Tensor:
    return x.detach().reshape(rows, x.shape[-1]).to(torch.float32).contiguous()


def _finish(out: np.ndarray, x: torch.Tensor) -> torch.Tensor:
    y = torch.from_numpy(out).reshape(*x.shape[:-1], out.shape[1])
    return y if x.dtype == torch.float32 else y.to(x.dtype)


def as_array(t: torch.Tensor) -> np.ndarray:
    """A CPU tensor's memory as numpy, no copy: bf16 as its uint16 bits, other dtypes as they are."""
    t = t.detach()
    return (t.view(torch.uint16) if t.dtype == torch.bfloat16 else t).numpy()


def from_array(a: np.ndarray) -> torch.Tensor:
    """`as_array`'s inverse, no copy: uint16 bits as bf16, other dtypes as they are."""
    t = torch.from_numpy(a)
    return t.view(torch.bfloat16) if a.dtype == np.uint16 else t


def _bits(t: torch.Tensor, rows: int) -> np.ndarray:
    """A contiguous float32 or bf16 tensor as a [rows, -1] array (`as_array`)."""
    return as_array(t.reshape(rows, t.shape[-1]))


def _weight_ok(w: torch.Tensor, dtype: torch.dtype) -> bool:
    return (w.device.type == "cpu" and w.dtype == dtype and w.dim() == 2 and w.is_contiguous()
            and not (torch.is_grad_enabled() and w.requires_grad))


def weight_view(weight: torch.Tensor) -> np.ndarray | None:
    """The array `linear` computes from for this float32 or bf16 weight [N, K] (bf16 as its uint16 bits), or
    None where the path cannot take it. Callers that multiply by the same weight many times keep it (the
    view costs a few microseconds, a tenth of a small decode product) and make it again if the weight's
    storage moves."""
    if weight.dtype not in (torch.float32, torch.bfloat16) or weight.device.type != "cpu" or weight.dim() != 2:
        return None
    if not weight.is_contiguous():
        return None
    return as_array(weight)


def _dot_kernels():
    """`cpu_dot`'s kernel, whether it takes bf16 here (AVX-512 BF16), and whether the CPU has AMX-BF16."""
    if not _dot:
        from dclm.model import cpu_dot

        _dot.extend((cpu_dot.rows_times_dot, cpu_dot.bf16_available(), cpu_dot.host_has("amx-bf16")))
    return _dot


def rows_product(w: np.ndarray, x: np.ndarray) -> np.ndarray | None:
    """x [rows, K] @ w[N, K].T on arrays as `as_array` gives them (float32, or bf16 as uint16 bits), the result
    in x's layout; None where no kernel takes the pair (bf16 activations on float32 weights, float32 ones on bf16
    weights with an odd K) or torch's product is the faster one (`_TORCH_BF16_ROWS`)."""
    dot, dot_bf16, amx = _dot_kernels()
    if amx and w.dtype == x.dtype == np.uint16 and x.shape[0] > _TORCH_BF16_ROWS:
        return None
    if w.dtype == x.dtype and (x.dtype == np.float32 or dot_bf16):
        kernel = dot
    elif w.dtype == np.uint16 and w.shape[1] % 2 == 0:  # the widening kernel reads bf16 weights in pairs
        kernel, w = rows_times_bf16, w.view(np.uint32)
    else:
        return None
    out = np.empty((x.shape[0], w.shape[0]), dtype=x.dtype)
    kernel(w, x, out)
    return out


def linear(x: torch.Tensor, weight: torch.Tensor, view: np.ndarray | None = None) -> torch.Tensor | None:
    """x [..., K] @ weight[N, K].T for float32 or bf16 weights, or None when the path does not apply.
    `view`: `weight_view(weight)`, made once by a caller that keeps it."""
    if view is None:
        view = weight_view(weight)
        if view is None:
            return None
    if torch.is_grad_enabled() and weight.requires_grad:
        return None
    rows = _rows(x, view.shape[1])
    if not rows:
        return None
    out = rows_product(view, _bits(x.contiguous(), rows))
    return None if out is None else from_array(out).view(*x.shape[:-1], view.shape[0])


def int8_product(q: np.ndarray, s: np.ndarray, x: np.ndarray) -> np.ndarray:
    """x [rows, K] @ (q * s[:, None]).T for int8 q [N, K] and float32 s [N], on arrays as `as_array` gives
    them (x float32 or bf16 bits), the result in x's layout."""
    out = np.empty((x.shape[0], q.shape[0]), dtype=x.dtype)
    rows_times_int8(q, s, x, out)
    return out


def linear_int8(x: torch.Tensor, q: torch.Tensor, scales: torch.Tensor) -> torch.Tensor | None:
    """x [..., K] @ (q * scales[:, None]).T for int8 q [N, K] and float32 scales [N], or None."""
    if not _weight_ok(q, torch.int8) or scales.dtype != torch.float32 or scales.shape != (q.shape[0],):
        return None
    rows = _rows(x, q.shape[1])
    if not rows:
        return None
    out = int8_product(q.numpy(), scales.numpy(), _bits(x.contiguous(), rows))
    return from_array(out).view(*x.shape[:-1], q.shape[0])


def linear_int4(x: torch.Tensor, packed: torch.Tensor, scales: torch.Tensor, zeros: torch.Tensor) -> torch.Tensor | None:
    """x [..., K] @ w.T for the packed int4 layout above (packed uint8 [N, K/2], float32 scales and zeros
    [N, K/G]), or None."""
    n, half_k = packed.shape
    if (not _weight_ok(packed, torch.uint8) or scales.dtype != torch.float32 or zeros.dtype != torch.float32
            or scales.dim() != 2 or scales.shape != zeros.shape or scales.shape[0] != n or not scales.shape[1]
            or half_k % scales.shape[1]):
        return None
    groups = scales.shape[1]
    rows = _rows(x, 2 * half_k)
    if not rows:
        return None
    out = np.empty((rows, n), dtype=np.float32)
    rows_times_int4(packed.view(n, groups, half_k // groups).numpy(), scales.numpy(), zeros.numpy(),
                    _x32(x, rows).numpy(), out)
    return _finish(out, x)


def use_huge_pages(tensors: list[torch.Tensor]) -> int:
    """Move the contiguous CPU tensors given (Parameters or buffers, any dtype) into one private mapping
    advised for transparent huge pages (Linux) by replacing their storage; the objects stay the same, with
    the same values. A tensor given twice moves once; one moved already stays. Returns the bytes moved (0
    where the platform has no MADV_HUGEPAGE or nothing qualifies)."""
    if not ENABLED or not hasattr(mmap, "MADV_HUGEPAGE"):
        return 0
    todo: dict[int, torch.Tensor] = {}
    for t in tensors:
        if (t.device.type == "cpu" and t.is_contiguous() and t.numel()
                and getattr(t, "_dclm_huge_page_ptr", None) != t.data_ptr()):
            todo.setdefault(id(t), t)
    if not todo:
        return 0
    align = 64  # bytes: every tensor starts on a cache line
    sizes = [t.numel() * t.element_size() for t in todo.values()]
    total = sum(s + (-s % align) for s in sizes)
    arena_map = mmap.mmap(-1, total, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    try:
        arena_map.madvise(mmap.MADV_HUGEPAGE)
    except OSError:
        pass  # THP disabled: the copy still works, on ordinary pages
    arena = torch.frombuffer(arena_map, dtype=torch.uint8)  # keeps the mapping alive
    populate = True
    offset = 0
    with torch.no_grad():
        for t, size in zip(todo.values(), sizes):
            # fault each tensor's pages in at once (MADV_POPULATE_WRITE, Linux 5.14; Python 3.11 lacks the
            # name), tensor by tensor: the source's storage is freed after its copy, so the peak stays one
            # copy of the weights plus one tensor (DCLM-7B in bf16 is 13.8 GB of a 24 GB machine)
            if populate:
                start = offset - offset % mmap.PAGESIZE
                try:
                    arena_map.madvise(getattr(mmap, "MADV_POPULATE_WRITE", 23), start, offset + size - start)
                except OSError:
                    populate = False  # an older kernel: the copy faults them in
            home = arena[offset:offset + size].view(t.dtype).view(t.shape)
            home.copy_(t)
            t.data = home
            t._dclm_huge_page_ptr = t.data_ptr()
            offset += size + (-size % align)
    return total
