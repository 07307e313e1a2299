"""One virtual shard of a bff run: its files through one Bloom filter, in file order, by bff's own scheduler.

Why not the shared job runner (`dclm.runtime.jobs`): its jobs are independent and come back in job order,
but here every file's filter checks and inserts must happen after those of the file before it (so the output
does not depend on the worker count), while reading, tokenising and hashing a file may run at any time.
That needs a turn handed from file to file between running workers, and one filter that every worker
updates in place; the runner's spawned workers share neither. So `workers` > 1 forks processes that share
the filter's anonymous `MAP_SHARED` mapping (`bloom.BloomFilter`) and a turn counter under a condition
variable. No kernel here uses numba's threading layer, so forking after the kernels ran is safe (the
runner's spawn rule guards against numba's OpenMP pool).

A worker claims the next file, reads, tokenises and hashes it (the expensive part); when the file's turn
comes it runs the file's filter checks and inserts in one compiled call per batch, hands the turn on, then
builds and writes the output. A worker whose file is not yet up prepares one more file meanwhile instead of
idling. Memory: the filter once, plus per worker up to two files being processed (their pages as Python
objects, about 3x their text) and ~10 bytes per character of UTF-8 buffer, token and n-gram arrays, built
in batches of 8M characters.
"""

from __future__ import annotations

import dataclasses
import gc
import logging
import os
import time
import traceback
from dataclasses import dataclass

import orjson

from dclm.dedup.bff import batch as fast
from dclm.dedup.bff.bloom import BloomFilter
from dclm.dedup.bff.config import BffConfig
from dclm.dedup.bff.hashing import Seeds
from dclm.dedup.bff.state import Batch, FileOutcome, PreparedFile
from dclm.errors import DclmError, ShardFailed
from dclm.io import Shard
from dclm.io.pages import compress, encode_pages, iter_pages, write_bytes
from dclm.runtime.config import ConfigError
from dclm.runtime.progress import progress_bar
from dclm.runtime.rejects import RejectLog

logger = logging.getLogger(__name__)

STAGE = "dedup bff"
BATCH_CHARS = 1 << 23
_AHEAD = 2  # files a parallel worker may hold prepared while waiting for its turn


@dataclass(frozen=True)
class FileJob:
    shard: Shard
    out_root: str

    @property
    def out_url(self) -> str:
        return f"{self.out_root}/{self.shard.rel}"


def prepare(job: FileJob, cfg: BffConfig, seeds: Seeds) -> PreparedFile:
    """Read, tokenise and hash one file (no filter access)."""
    prep = PreparedFile(job.shard.rel, job.out_url, RejectLog(job.out_root, job.shard.rel, STAGE, job.shard.url))
    pages: list[dict] = []
    chars = 0
    for page in iter_pages(job.shard.url, on_reject=prep.rejects.on_read_reject):
        if not isinstance(page["text"], str):
            prep.rejects.add("'text' is a list, bff needs a string", page)
            continue
        pages.append(page)
        chars += len(page["text"])
        if chars >= BATCH_CHARS:
            prep.batches.append(Batch(pages))
            pages, chars = [], 0
    if pages:
        prep.batches.append(Batch(pages))
    for b in prep.batches:
        fast.analyse(b, cfg, seeds)
        prep.bytes_in += b.analysis.bytes_in
    return prep


def decide(prep: PreparedFile, cfg: BffConfig, filt: BloomFilter, seeds: Seeds) -> None:
    for b in prep.batches:
        fast.decide(b, cfg, filt, seeds)


def finish(prep: PreparedFile, cfg: BffConfig) -> FileOutcome:
    """Build and write the file's outputs and its rejects."""
    docs_in = docs_out = 0
    bytes_out = 0
    kept: list[dict] = []
    for b in prep.batches:
        for i in range(len(b.pages)):
            docs_in += 1
            out, nbytes = fast.output(b, i, cfg)
            if fast.is_blank(out["text"]):
                continue
            docs_out += 1
            bytes_out += nbytes
            kept.append(out)
        b.analysis = b.decisions = None
    if kept:
        if prep.out_url.endswith(".parquet"):
            data = encode_pages(kept, prep.out_url)
        else:
            data = compress(b"".join(orjson.dumps(p, option=orjson.OPT_SORT_KEYS) + b"\n" for p in kept), prep.out_url)
        write_bytes(prep.out_url, data)
    return FileOutcome(prep.rel, docs_in, docs_out, prep.rejects.flush(), prep.bytes_in, bytes_out, bool(kept))


def open_filter(cfg: BffConfig, shared: bool) -> BloomFilter:
    """`bloom_filter_file` if it exists, else a new filter sized for `expected_ngram_count` at `fp_rate`."""
    if cfg.bloom_filter_file and os.path.exists(cfg.bloom_filter_file):
        filt = BloomFilter.load(cfg.bloom_filter_file, shared=shared)
        if cfg.seed is not None and cfg.seed != filt.seed:
            raise ConfigError("seed", f"{cfg.seed} differs from the seed {filt.seed} stored in {cfg.bloom_filter_file}")
        logger.info("loaded Bloom filter %s (%d words, %d hashers)", cfg.bloom_filter_file, filt.words,
                    filt.num_hashers)
        return filt
    seed = 0 if cfg.seed is None else cfg.seed
    return BloomFilter.create(cfg.expected_ngram_count, cfg.fp_rate, cfg.num_hashers, seed, shared=shared)


def warm_up(cfg: BffConfig, seeds: Seeds) -> None:
    """Compile (or load from cache) the kernels once, before forking, so workers inherit them."""
    probe = BloomFilter(1, 1, 0)
    b = Batch([{"text": "warm up\nthe kernels"}])
    fast.analyse(b, cfg, seeds)
    fast.decide(b, cfg, probe, seeds)


def _timed(outcome: FileOutcome, **secs: float) -> FileOutcome:
    return dataclasses.replace(outcome, **secs)


def run_serial(jobs: list[FileJob], cfg: BffConfig, filt: BloomFilter, seeds: Seeds, progress: bool):
    """Every file in this process, in order; returns (outcomes, failed [(rel, error)])."""
    results, failed = [], []
    with progress_bar(len(jobs), desc="bff", unit="file", enabled=progress) as bar:
        for job in jobs:
            try:
                t0 = time.perf_counter()
                prep = prepare(job, cfg, seeds)
                t1 = time.perf_counter()
                decide(prep, cfg, filt, seeds)
                t2 = time.perf_counter()
                res = finish(prep, cfg)
                results.append(_timed(res, prepare_s=t1 - t0, decide_s=t2 - t1, finish_s=time.perf_counter() - t2))
            except (ShardFailed, DclmError) as e:
                failed.append((job.shard.rel, str(e)))
            bar.update(1)
    return results, failed


def _worker(jobs, cfg, filt, seeds, claim, turn, cond, queue):
    """Claim files in order and prepare them; decide a held file when its turn comes, else prepare one more
    file ahead (at most `_AHEAD` held) instead of waiting, so neither core idles at the ordered hand-over."""
    held: list[list] = []  # [index, prepared or None, error or None, timings], ascending index
    decided: list[list] = []
    exhausted = False
    while held or decided or not exhausted:
        if held:
            with cond:
                up = turn.value == held[0][0]
            if up:
                i, prep, err, tm = held.pop(0)
                t0 = time.perf_counter()
                try:
                    if prep is not None:
                        decide(prep, cfg, filt, seeds)
                finally:
                    with cond:
                        turn.value = i + 1
                        cond.notify_all()
                tm["decide_s"] = time.perf_counter() - t0
                decided.append([i, prep, err, tm])
                continue
        if decided:
            queue.put(_finish_held(*decided.pop(0), cfg))
            continue
        if not exhausted and len(held) < _AHEAD:
            with claim.get_lock():
                i = claim.value
                claim.value += 1
            if i >= len(jobs):
                exhausted = True
                continue
            prep, err = None, None
            t0 = time.perf_counter()
            try:
                prep = prepare(jobs[i], cfg, seeds)
            except (ShardFailed, DclmError) as e:
                err = str(e)
            except Exception:
                err = traceback.format_exc()
            held.append([i, prep, err, {"prepare_s": time.perf_counter() - t0, "wait_s": 0.0}])
            continue
        t0 = time.perf_counter()
        with cond:
            while turn.value != held[0][0]:
                cond.wait()
        held[0][3]["wait_s"] += time.perf_counter() - t0


def _finish_held(i, prep, err, tm, cfg):
    if prep is not None:
        t0 = time.perf_counter()
        try:
            return i, _timed(finish(prep, cfg), **tm, finish_s=time.perf_counter() - t0), None
        except (ShardFailed, DclmError) as e:
            err = str(e)
        except Exception:
            err = traceback.format_exc()
    return i, None, err


def run_parallel(jobs: list[FileJob], cfg: BffConfig, filt: BloomFilter, seeds: Seeds, workers: int, progress: bool):
    """The files by `workers` forked processes sharing `filt` (see the module docstring); same returns as
    `run_serial`, and the same outputs."""
    import multiprocessing as mp
    import queue as queue_mod

    ctx = mp.get_context("fork")
    claim = ctx.Value("q", 0)
    turn = ctx.Value("q", 0, lock=False)
    cond = ctx.Condition()
    queue = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(jobs, cfg, filt, seeds, claim, turn, cond, queue), daemon=True)
             for _ in range(workers)]
    gc.freeze()  # keep the collector from touching (and so copying) the parent's objects in every worker
    for p in procs:
        p.start()
    gc.unfreeze()
    results: dict[int, FileOutcome] = {}
    failed = []
    done = 0
    try:
        with progress_bar(len(jobs), desc="bff", unit="file", enabled=progress) as bar:
            while done < len(jobs):
                try:
                    i, res, err = queue.get(timeout=1.0)
                except queue_mod.Empty:
                    dead = [p for p in procs if p.exitcode not in (None, 0)]
                    if dead:
                        raise DclmError(f"a bff worker died (exit code {dead[0].exitcode}; out of memory?)") from None
                    continue
                done += 1
                if err is None:
                    results[i] = res
                else:
                    failed.append((jobs[i].shard.rel, err.strip().splitlines()[-1] if "\n" in err.strip() else err))
                    if "\n" in err.strip():
                        logger.error("bff failed on %s:\n%s", jobs[i].shard.rel, err)
                bar.update(1)
        for p in procs:
            p.join()
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
    return [results[i] for i in sorted(results)], sorted(failed)
