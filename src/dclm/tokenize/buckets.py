"""Phase 2, the shuffle on local disk with bounded memory: scatter into seeded buckets, then sort each bucket.

Scatter (one job per input file): each context is repeated by its source's mixing frequency, every copy
draws a 64-bit key from an RNG seeded by (seed, file path), and the copies are written grouped by bucket
(the key's top bits), in runs of at most `scatter_contexts`.

Shuffle + write (one job per bucket): the bucket's runs are read from every file (file order, run order),
sorted by key and cut into shards of `chunk_size` contexts at their global positions; a shard that
straddles buckets is written as pieces, joined by one small job per such shard afterwards.

The output order is therefore the stable sort of all contexts by key, range-partitioned into buckets: the
same for any bucket count, run size, worker count, memory budget or engine (pool or Ray). That differs from
tokshuf-rs (rust_processing/tokshuf-rs/src/main.rs `coarse_shuffle` / `process_local_cell`), which appends
contexts to random "local cells" from many threads and shuffles each cell, so its order depends on timing.
Without shuffling, the buckets are consecutive position ranges of the input order instead.
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass

import numpy as np

from dclm.errors import DclmError
from dclm.io import atomic_open
from dclm.runtime.config import ConfigError
from dclm.runtime.resume import mark_done
from dclm.tokenize import shards as S
from dclm.tokenize.mix import copies
from dclm.tokenize.plan import Settings
from dclm.tokenize.shards import bytes_view

# What the budget must leave for the processes themselves: the driver with numpy and the tokenizer (the
# CLI measures ~190-230 MB), and each spawned worker with the same imports.
BASELINE_BYTES = 256 * 1024**2
WORKER_BYTES = 192 * 1024**2
# Buckets and scatter runs are never larger than this, so the peak does not grow with the input once it
# exceeds one bucket; larger buckets would only make the per-file reads of a bucket longer.
BUCKET_CAP_BYTES = 64 * 1024**2
MIN_JOB_BYTES = 64 * 1024**2  # what `workers=0` leaves each worker at least, besides its shard
SPREAD = 1.25  # headroom for the random spread of bucket sizes around their mean


def file_seed(rel: str) -> int:
    return int.from_bytes(hashlib.sha256(rel.encode()).digest()[:8], "little")


@dataclass(frozen=True)
class MemoryPlan:
    bucket_contexts: int  # the mean bucket size to aim for
    scatter_contexts: int  # contexts per scatter run


def plan_memory(budget: int, workers: int, st: Settings, max_freq: float = 1.0) -> MemoryPlan:
    """Bucket and run sizes that keep all processes under `budget`.

    A bucket job holds its bucket twice (rows and their sorted copy) plus keys, and one shard's tar being
    written; a scatter job holds a run, its repeats and their bucket-sorted copy."""
    row = st.seqlen * np.dtype(st.dtype).itemsize + 8
    shard = st.chunk_size * st.seqlen * np.dtype(st.dtype).itemsize
    procs = workers if workers > 1 else 0
    baseline = BASELINE_BYTES + procs * WORKER_BYTES
    per_job = (budget - baseline) / max(1, workers)
    room = per_job - 2 * shard
    if room < 16 * row * 2 * SPREAD:
        need = baseline + max(1, workers) * (2 * shard + 16 * row * 2 * SPREAD)
        raise ConfigError("memory_budget", f"{budget / 2**20:.0f}M is too small: the processes need "
                          f"~{baseline / 2**20:.0f}M and {workers} worker(s) with chunk_size {st.chunk_size} need "
                          f"{(need - baseline) / 2**20:.0f}M more (give at least {need / 2**20:.0f}M, or lower "
                          "chunk_size / workers)")
    cap = BUCKET_CAP_BYTES // row
    bucket = max(1, min(cap, int(room / (2 * row * SPREAD))))
    scatter = max(1, min(cap, int(per_job / ((2 + math.ceil(max(max_freq, 1.0))) * row))))
    return MemoryPlan(bucket, scatter)


def fit_workers(budget: int, cores: int, st: Settings) -> int:
    """The most worker processes (at most `cores`) that leave each one room for a useful bucket
    (`MIN_JOB_BYTES` besides its shard) under `budget`: what `workers=0` means for this stage."""
    shard = st.chunk_size * st.seqlen * np.dtype(st.dtype).itemsize
    fit = int((budget - BASELINE_BYTES) // (WORKER_BYTES + 2 * shard + MIN_JOB_BYTES))
    return max(1, min(cores, fit))


def bucket_count(expected: int, mem: MemoryPlan, shuffle: bool, forced: int | None, workers: int = 1) -> int:
    """A power of two (the key's top bits pick the bucket), at least one per worker so that all of them
    write shards even when the input fits one bucket."""
    if not shuffle:
        return 1
    want = forced or max(1, math.ceil(expected / mem.bucket_contexts), min(workers, expected))
    return 1 << max(0, math.ceil(math.log2(want)))


def positional_bucket_size(total: int, mem: MemoryPlan, chunk_size: int, workers: int) -> int:
    """Contexts per bucket without shuffling: whole shards where the memory plan allows, and at least one
    bucket per worker."""
    per = min(mem.bucket_contexts, max(1, math.ceil(total / max(1, workers))))
    return max(chunk_size, per // chunk_size * chunk_size) if mem.bucket_contexts >= chunk_size else per


# ------------------------------------------------------------------ scatter


@dataclass(frozen=True)
class ScatterJob:
    i: int
    rel: str
    src: str  # the file's contexts: phase 1's output or a native shard of a token-dataset input
    work: str
    settings: Settings
    freq: float
    n_buckets: int
    run_contexts: int
    digest: str


def scatter_stem(work: str, i: int) -> str:
    return os.path.join(work, "scatter", f"{i:06d}")


def scatter_file(job: ScatterJob) -> dict:
    """Copies by mixing frequency, a random key per copy, runs grouped by bucket; returns the run offsets."""
    st = job.settings
    dtype = np.dtype(st.dtype)
    row_bytes = st.seqlen * dtype.itemsize
    n = os.path.getsize(job.src) // row_bytes
    fs = file_seed(job.rel)
    rng_copies = np.random.default_rng([st.seed, fs, 1])
    rng_keys = np.random.default_rng([st.seed, fs, 2])
    shift = np.uint64(64 - int(math.log2(job.n_buckets)))
    runs, total = [], 0
    stem = scatter_stem(job.work, job.i)
    with open(job.src, "rb") as fin, atomic_open(stem + ".bin", "wb") as fout, atomic_open(stem + ".keys", "wb") as fkeys:
        for start in range(0, n, job.run_contexts):
            m = min(job.run_contexts, n - start)
            ctx = np.fromfile(fin, dtype=dtype, count=m * st.seqlen).reshape(m, st.seqlen)
            if job.freq != 1.0:
                ctx = np.repeat(ctx, copies(rng_copies, m, job.freq), axis=0)
            keys = rng_keys.bit_generator.random_raw(len(ctx)).astype(np.uint64)
            if job.n_buckets > 1:
                buckets = (keys >> shift).astype(np.int64)
                order = np.argsort(buckets, kind="stable")
                ctx, keys = ctx[order], keys[order]
                counts = np.bincount(buckets, minlength=job.n_buckets)
            else:
                counts = np.array([len(ctx)])
            fout.write(bytes_view(ctx))
            fkeys.write(bytes_view(keys))
            runs.append((np.concatenate([[0], np.cumsum(counts)]) + total).tolist())
            total += len(ctx)
    stats = {"i": job.i, "contexts": total, "runs": runs}
    mark_done(job.work, f"scatter/{job.i:06d}", job.digest, stats)
    return stats


# ------------------------------------------------------------------ buckets


@dataclass(frozen=True)
class Span:
    path: str
    keys: str | None  # the keys file when the bucket is sorted
    lo: int  # contexts [lo, hi) of the file
    hi: int


@dataclass(frozen=True)
class BucketJob:
    b: int
    spans: tuple[Span, ...]
    start: int  # the bucket's global positions [start, end) in the output
    end: int
    total: int
    first_shard: int
    output: str
    work: str
    settings: Settings
    digest: str


def sorted_spans(scatter_stats: list[dict], work: str, n_buckets: int) -> list[list[Span]]:
    """Per bucket, its runs in every scattered file, in file order then run order."""
    out: list[list[Span]] = [[] for _ in range(n_buckets)]
    for sm in scatter_stats:
        stem = scatter_stem(work, sm["i"])
        for off in sm["runs"]:
            for b in range(n_buckets):
                if off[b + 1] > off[b]:
                    out[b].append(Span(stem + ".bin", stem + ".keys", off[b], off[b + 1]))
    return out


def positional_spans(files: list[tuple[str, int]], per_bucket: int) -> list[list[Span]]:
    """The input order (files in order, each `(path, contexts)`) cut into consecutive buckets of `per_bucket`."""
    out: list[list[Span]] = []
    cur: list[Span] = []
    room = per_bucket
    for path, n in files:
        lo = 0
        while lo < n:
            take = min(room, n - lo)
            cur.append(Span(path, None, lo, lo + take))
            lo += take
            room -= take
            if room == 0:
                out.append(cur)
                cur, room = [], per_bucket
    if cur:
        out.append(cur)
    return out


def piece_path(work: str, k: int, b: int) -> str:
    return os.path.join(work, "pieces", f"{k:08d}.{b:06d}.bin")


def load_bucket(spans: tuple[Span, ...], st: Settings) -> np.ndarray:
    """The bucket's contexts, sorted by key where it has keys. Read straight into one preallocated array, so
    the bucket is held at most twice (while sorting)."""
    dtype = np.dtype(st.dtype)
    row_bytes = st.seqlen * dtype.itemsize
    n = sum(s.hi - s.lo for s in spans)
    rows = np.empty((n, st.seqlen), dtype=dtype)
    sort = bool(spans) and spans[0].keys is not None
    keys = np.empty(n if sort else 0, dtype=np.uint64)
    at = 0
    for s in spans:
        with open(s.path, "rb") as f:
            f.seek(s.lo * row_bytes)
            _read_exactly(f, rows[at:at + s.hi - s.lo])
        if sort:
            with open(s.keys, "rb") as f:
                f.seek(s.lo * 8)
                _read_exactly(f, keys[at:at + s.hi - s.lo])
        at += s.hi - s.lo
    if sort and n:
        rows = rows[np.argsort(keys, kind="stable")]
    return rows


def _read_exactly(f, into: np.ndarray) -> None:
    view = bytes_view(into)
    if f.readinto(view) != len(view):
        raise DclmError(f"{f.name} is shorter than its metadata says; rerun with overwrite")


def shuffle_bucket(job: BucketJob) -> dict:
    """Write the shards that lie inside the bucket, and pieces of those that straddle its edges."""
    st = job.settings
    rows = load_bucket(job.spans, st)
    C = st.chunk_size
    shards, pieces = [], []
    pos = job.start
    while pos < job.end:
        k = pos // C
        shard_end = min((k + 1) * C, job.total)
        stop = min(shard_end, job.end)
        part = rows[pos - job.start:stop - job.start]
        if pos == k * C and stop == shard_end:
            shards.append(S.write_shard(job.output, job.first_shard + k, part, np.dtype(st.dtype)))
        else:
            with atomic_open(piece_path(job.work, k, job.b), "wb") as f:
                f.write(bytes_view(part))
            pieces.append(k)
        pos = stop
    stats = {"shards": shards, "pieces": pieces}
    mark_done(job.work, f"bucket/{job.b:06d}", job.digest, stats)
    return stats


@dataclass(frozen=True)
class EdgeJob:
    k: int
    buckets: tuple[int, ...]  # the buckets holding its pieces, in order
    first_shard: int
    output: str
    work: str
    settings: Settings
    digest: str


def join_pieces(job: EdgeJob) -> dict:
    """Write a shard that straddles buckets from its pieces."""
    st = job.settings
    dtype = np.dtype(st.dtype)
    parts = [np.fromfile(piece_path(job.work, job.k, b), dtype=dtype).reshape(-1, st.seqlen) for b in job.buckets]
    row = S.write_shard(job.output, job.first_shard + job.k, np.concatenate(parts), dtype)
    mark_done(job.work, f"edge/{job.k:08d}", job.digest, row)
    return row
