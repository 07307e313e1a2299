"""Few-row matrix products on the CPU, the shape of every Linear during decoding.

Decoding multiplies one row per sequence by each weight matrix, so a step costs one read of the weights
from memory. torch's CPU path for that shape (MKL sgemv/sgemm) streams about 10 GB/s on the 2-core AMD
EPYC this project measures on, a quarter of what the memory delivers; a blocked loop compiled with numba
and split over the cores by output rows reaches about 35 GB/s there (`benchmarks/bench_generate.py`).

Streaming also needs the weights on 2 MiB pages: the hardware prefetchers stop at every 4 KiB page
boundary, and torch allocates tensors on 4 KiB pages. `use_huge_pages(model)` moves the float32 CPU
Linear weights into one transparent-huge-page mapping (about 30% faster decoding on that machine).

`linear(x, weight)` takes that path for float32 CPU tensors of at most `MAX_ROWS` rows when no gradient
is needed and torch.compile is not tracing, and returns None otherwise so the caller uses F.linear
(also in a process forked after the path ran: numba terminates a child that enters its parent's pool).
Each output element is one sequential dot product, so results do not depend on the thread count; they
differ from F.linear only by float32 summation order. `DCLM_CPU_MATMUL=0` turns the path off.
"""

from __future__ import annotations

import mmap
import os

import numba
import numpy as np
import torch
from numba import njit, prange

MAX_ROWS = 16
_ROW_BLOCK = 32  # output rows per parallel task
_numba_threads = [0]  # the torch thread count numba's pool was last set to
_pool_pid = [0]  # the process whose numba (GNU OpenMP) pool the kernel runs in
ENABLED = os.environ.get("DCLM_CPU_MATMUL", "1").lower() not in ("0", "false", "no", "off")


@njit(parallel=True, fastmath=True, cache=True, nogil=True)
def rows_times_weight(w, x, out):
    """out[r, i] = sum_j w[i, j] * x[r, j], parallel over blocks of output rows; rows of x four at a time, so
    each weight is loaded once for four products (batched decoding)."""
    n, k = w.shape
    rows = x.shape[0]
    for blk in prange((n + _ROW_BLOCK - 1) // _ROW_BLOCK):
        for i in range(blk * _ROW_BLOCK, min(n, (blk + 1) * _ROW_BLOCK)):
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


def linear(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor | None:
    """x [..., K] @ weight[N, K].T on the fast path, or None when the path does not apply."""
    if (not ENABLED or x.device.type != "cpu" or x.dtype != torch.float32 or weight.dtype != torch.float32
            or weight.device.type != "cpu"):
        return None
    if torch.compiler.is_compiling() or (torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad)):
        return None
    k = x.shape[-1]
    rows = x.numel() // k if k else 0
    if not 0 < rows <= MAX_ROWS or weight.dim() != 2 or weight.shape[1] != k or not weight.is_contiguous():
        return None
    pid = os.getpid()
    if pid != _pool_pid[0]:
        if _pool_pid[0]:  # a forked child: numba kills a child that enters its parent's OpenMP pool
            return None
        _pool_pid[0] = pid
    threads = torch.get_num_threads()
    if threads != _numba_threads[0]:  # numba's pool follows torch's thread setting
        numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
        _numba_threads[0] = threads
    out = np.empty((rows, weight.shape[0]), dtype=np.float32)
    rows_times_weight(weight.detach().numpy(), x.detach().reshape(rows, k).contiguous().numpy(), out)
    return torch.from_numpy(out).reshape(*x.shape[:-1], weight.shape[0])


def use_huge_pages(model: torch.nn.Module) -> int:
    """Move the float32 CPU Linear weights of `model` into one private mapping advised for transparent huge
    pages (Linux); the Parameters stay the same objects with the same values. Returns the bytes moved (0
    where the platform has no MADV_HUGEPAGE or nothing qualifies)."""
    if not ENABLED or not hasattr(mmap, "MADV_HUGEPAGE"):
        return 0
    params: dict[int, torch.nn.Parameter] = {}
    for m in model.modules():
        w = getattr(m, "weight", None)
        if (isinstance(m, torch.nn.Linear) and isinstance(w, torch.nn.Parameter) and w.device.type == "cpu"
                and w.dtype == torch.float32 and w.is_contiguous()
                and getattr(w, "_dclm_huge_page_ptr", None) != w.data_ptr()):  # not moved already
            params.setdefault(id(w), w)  # a tied weight once
    if not params:
        return 0
    align = 16  # floats: every weight starts on a 64-byte line
    sizes = [w.numel() + (-w.numel() % align) for w in params.values()]
    arena_map = mmap.mmap(-1, sum(sizes) * 4, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    try:
        arena_map.madvise(mmap.MADV_HUGEPAGE)
    except OSError:
        pass  # THP disabled: the copy still works, on ordinary pages
    arena = np.frombuffer(arena_map, dtype=np.float32)  # keeps the mapping alive
    offset = 0
    with torch.no_grad():
        for w, size in zip(params.values(), sizes):
            home = torch.from_numpy(arena[offset:offset + w.numel()]).view(w.shape)
            home.copy_(w)
            w.data = home
            w._dclm_huge_page_ptr = w.data_ptr()
            offset += size
    return offset * 4
