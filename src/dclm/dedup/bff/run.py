"""`run_bff`: a `BffConfig` in, its virtual shards run, a `BffResult` out.

Global (cross-shard) deduplication. All inputs of one shard share one filter, so one run with the default
single shard deduplicates globally (DCLM ran 10 shards independently and kept ~80% residual duplication
between them). When the data do not fit one run, keep the filter in a file: `bloom_filter_file` F is loaded
if it exists and saved at the end, so runs over successive parts (on one machine, or on machines that pass
the file along) see everything earlier. Trade-off: a global filter needs ~1.2 bytes per expected n-gram at
fp 0.01 (`dclm dedup bff sysreq`), on one machine, and the parts run one after another; per-shard filters
(`total_shards` S) need 1/S of the memory each and run in parallel, but miss duplicates across shards. They
run as independent jobs of the shared runner (`dclm.runtime.jobs`: a process pool, or Ray tasks with `ray`,
each shard on one core), or one at a time with `shard_num` on separate machines; the files of one shard keep
bff's ordered scheduler (`shard.py` says why). Splitting one filter by n-gram hash range across machines is
not offered: a paragraph's keep/insert decision needs its contained count over every range, so bff's
semantics would need a round trip per paragraph.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

from dclm.dedup.bff.config import BffConfig
from dclm.dedup.bff.hashing import Seeds
from dclm.dedup.bff.shard import FileJob, open_filter, run_parallel, run_serial, warm_up
from dclm.dedup.bff.state import FileOutcome
from dclm.io import list_shards
from dclm.runtime.jobs import resolve_workers


@dataclass(frozen=True)
class BffResult:
    """Counts of a bff run, summed over its shards, and where the time went."""

    files: int
    files_written: int
    files_failed: int
    docs_in: int
    docs_out: int
    rejects: int
    text_bytes_in: int
    text_bytes_out: int | None  # None with `annotate` (texts stay whole)
    shards: int
    workers: int
    setup_secs: float           # filter and kernels ready, summed over shards
    secs: float
    filter_bytes: int           # of each shard's filter
    num_hashers: int
    seed: int
    filter_fill: float          # fraction of bits set, over every shard's filter
    # summed over files: the parallel parts (prepare: read+tokenise+hash, finish: build+write), the serial
    # filter part (decide) and the time workers waited for their turn
    prepare_s: float
    decide_s: float
    finish_s: float
    wait_s: float
    failed: tuple[tuple[str, str], ...]  # (input-relative path, error)
    mb_per_s: float | None
    peak_rss_mb_largest_process: float

    @property
    def ok(self) -> bool:
        return not self.failed


@dataclass(frozen=True)
class _ShardRun:
    files: list[FileOutcome]
    failed: list[tuple[str, str]]
    workers: int
    setup_secs: float
    filter_bytes: int
    num_hashers: int
    seed: int
    filter_fill: float
    peak_rss_mb: float


@dataclass(frozen=True)
class _ShardJob:
    cfg: BffConfig
    shard: int


def _file_jobs(cfg: BffConfig, shard: int) -> list[FileJob]:
    files = [s for i, s in enumerate(list_shards(list(cfg.inputs))) if i % cfg.total_shards == shard]
    if cfg.shuffle_files is not None:
        random.Random(cfg.shuffle_files).shuffle(files)
    out = cfg.output_directory.rstrip("/")
    return [FileJob(s, out) for s in files]


def _run_shard(cfg: BffConfig, shard: int, workers: int, progress: bool) -> _ShardRun:
    """Virtual shard `shard`'s files through one filter, by `workers` processes."""
    t0 = time.perf_counter()
    jobs = _file_jobs(cfg, shard)
    workers = min(workers, max(1, len(jobs)))
    filt = open_filter(cfg, shared=workers > 1)
    seeds = Seeds.from_seed(filt.seed)
    warm_up(cfg, seeds)
    setup = time.perf_counter() - t0
    if workers == 1:
        files, failed = run_serial(jobs, cfg, filt, seeds, progress)
    else:
        files, failed = run_parallel(jobs, cfg, filt, seeds, workers, progress)
    if cfg.bloom_filter_file and cfg.save_bloom_filter:
        filt.save(cfg.bloom_filter_file)
    return _ShardRun(files, failed, workers, setup, filt.size_in_bytes, filt.num_hashers, filt.seed,
                     filt.fill_ratio(), _peak_rss_mb())


def _shard_job(job: _ShardJob) -> _ShardRun:
    """One shard as a job of the shared runner: one process, its own filter."""
    return _run_shard(job.cfg, job.shard, 1, False)


def run_bff(cfg: BffConfig) -> BffResult:
    """Deduplicate every input file into `cfg.output_directory` (input-relative paths; rejects under
    `_rejects/`, src/dclm/runtime/rejects.py)."""
    t0 = time.perf_counter()
    shards = cfg.shard_indices
    if len(shards) == 1 and not cfg.ray:
        runs = [_run_shard(cfg, shards[0], resolve_workers(cfg.workers), cfg.progress)]
        workers = runs[0].workers
    else:
        runs = cfg.run(_shard_job, [_ShardJob(cfg, k) for k in shards], desc="bff", unit="shard")
        workers = min(resolve_workers(cfg.workers), len(shards))
    files = [f for r in runs for f in r.files]
    secs = time.perf_counter() - t0
    text_bytes_in = sum(f.text_bytes_in for f in files)
    return BffResult(
        files=sum(len(r.files) + len(r.failed) for r in runs),
        files_written=sum(f.written for f in files),
        files_failed=sum(len(r.failed) for r in runs),
        docs_in=sum(f.docs_in for f in files),
        docs_out=sum(f.docs_out for f in files),
        rejects=sum(f.rejects for f in files),
        text_bytes_in=text_bytes_in,
        text_bytes_out=None if cfg.annotate else sum(f.text_bytes_out for f in files),
        shards=len(shards),
        workers=workers,
        setup_secs=round(sum(r.setup_secs for r in runs), 3),
        secs=round(secs, 3),
        filter_bytes=runs[0].filter_bytes,
        num_hashers=runs[0].num_hashers,
        seed=runs[0].seed,
        filter_fill=round(sum(r.filter_fill for r in runs) / len(runs), 6),
        **{k: round(sum(getattr(f, k) for f in files), 3) for k in ("prepare_s", "decide_s", "finish_s", "wait_s")},
        failed=tuple(sorted(fail for r in runs for fail in r.failed)),
        mb_per_s=round(text_bytes_in / 1e6 / secs, 3) if secs > 0 else None,
        peak_rss_mb_largest_process=max(_peak_rss_mb(), *(r.peak_rss_mb for r in runs)),
    )


def _peak_rss_mb() -> float:
    """The peak resident set of this process or of any worker it forked (the filter counts in each)."""
    import resource

    return round(max(resource.getrusage(who).ru_maxrss for who in
                     (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)) / 1024, 1)
