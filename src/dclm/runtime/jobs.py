"""The one job runner of every data stage: in process, a local process pool, or Ray, behind one call.

Start-method policy: a pool always uses `spawn`. numba's GNU-OpenMP pool terminates a child forked after it
ran (see src/dclm/kernels for the same guard on the decode path), torch and Ray threads do not survive fork,
and spawn behaves the same on Linux and macOS. Job functions and their arguments must therefore be
picklable module-level objects.

Results come back in job order whatever the completion order, so a stage's outputs never depend on
`workers` or on the engine.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Sequence, TypeVar

from dclm.errors import DclmError
from dclm.runtime.config import ConfigError, arg
from dclm.runtime.progress import progress_bar

J = TypeVar("J")
R = TypeVar("R")

logger = logging.getLogger(__name__)


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS
        return os.cpu_count() or 1


def resolve_workers(workers: int) -> int:
    """`workers` as every verb reads it: 0 = all cores, N = N processes."""
    if workers < 0:
        raise ConfigError("workers", f"must be >= 0 (0 = all cores), got {workers}")
    return workers or available_cores()


def run_jobs(fn: Callable[[J], R], jobs: Sequence[J], *, workers: int = 0, ray: bool = False,
             ray_address: str | None = None, desc: str = "jobs", unit: str = "shard", progress: bool = True,
             on_result: Callable[[J, R], None] | None = None, sizes: Sequence[int] | None = None) -> list[R]:
    """`[fn(job) for job in jobs]`, run by the chosen engine, with one progress bar.

    With `sizes` (e.g. input bytes per job, `unit="B"`) the bar advances by a job's size when it finishes,
    so its rate and ETA mean something when jobs differ in size.

    `on_result(job, result)` runs in the driver as each job finishes (completion order), e.g. to log a
    failed shard above the bar. With `ray`, Ray is started locally (num_cpus = workers) unless
    `ray_address` names a cluster; a lost task is retried by Ray."""
    results: dict[int, R] = {}
    n = resolve_workers(workers)
    if sizes is not None and len(sizes) != len(jobs):
        raise ValueError(f"{len(sizes)} sizes for {len(jobs)} jobs")
    total = sum(sizes) if sizes is not None else len(jobs)
    with progress_bar(total, desc=desc, unit=unit, enabled=progress) as bar:
        for i, r in _completed(fn, jobs, n, ray, ray_address):
            results[i] = r
            if on_result is not None:
                on_result(jobs[i], r)
            bar.update(sizes[i] if sizes is not None else 1)
    return [results[i] for i in range(len(jobs))]


def _completed(fn, jobs, workers: int, ray: bool, ray_address: str | None) -> Iterator[tuple[int, Any]]:
    if ray:
        yield from _ray_completed(fn, jobs, workers, ray_address)
    elif workers <= 1 or len(jobs) <= 1:
        for i, job in enumerate(jobs):
            yield i, fn(job)
    else:
        yield from _pool_completed(fn, jobs, workers)


_SHARED_POOLS: dict[int, Any] = {}  # worker count -> the pool `shared_pool` keeps open


def _new_pool(workers: int):
    import concurrent.futures as cf
    import multiprocessing as mp

    return cf.ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"))


@contextlib.contextmanager
def shared_pool(workers: int):
    """Keep one process pool of `workers` open for every `run_jobs` inside the block, so a stage that runs
    several phases of jobs starts its spawned workers (imports, caches) once, not once per phase."""
    n = resolve_workers(workers)
    if n <= 1 or n in _SHARED_POOLS:
        yield
        return
    pool = _SHARED_POOLS[n] = _new_pool(n)
    try:
        yield
    finally:
        del _SHARED_POOLS[n]
        pool.shutdown(cancel_futures=True)


def _pool_completed(fn, jobs, workers: int):
    import concurrent.futures as cf
    from concurrent.futures.process import BrokenProcessPool

    shared = _SHARED_POOLS.get(workers)
    with contextlib.nullcontext(shared) if shared else _new_pool(min(workers, len(jobs))) as pool:
        futures = {pool.submit(fn, job): i for i, job in enumerate(jobs)}
        try:
            for fut in cf.as_completed(futures):
                yield futures[fut], fut.result()
        except BrokenProcessPool:
            raise DclmError("a worker process died (out of memory or killed); rerun the same command to resume") from None
        finally:
            for fut in futures:
                fut.cancel()


def init_ray(address: str | None = None, num_cpus: int | None = None):
    """`ray`, initialised once per process: a cluster at `address`, else a local one with `num_cpus`."""
    try:
        import ray
    except ImportError:
        raise DclmError("--ray needs Ray: pip install 'dclm[ray]'") from None
    if not ray.is_initialized():
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        kwargs: dict[str, Any] = {"address": address} if address else {"num_cpus": num_cpus}
        ray.init(include_dashboard=False, log_to_driver=False, **kwargs)
    return ray


def _ray_completed(fn, jobs, workers: int, address: str | None):
    ray = init_ray(address, workers)
    task = ray.remote(max_retries=3)(_apply)
    fn_ref = ray.put(fn)
    refs = {task.remote(fn_ref, job): i for i, job in enumerate(jobs)}
    pending = list(refs)
    while pending:
        ready, pending = ray.wait(pending, num_returns=1)
        yield refs[ready[0]], ray.get(ready[0])


def _apply(fn, job):
    """The Ray task body: any picklable callable (a partial, a builtin) runs as a task this way."""
    return fn(job)


def chunked(items: Iterable[J], size: int) -> Iterator[list[J]]:
    batch: list[J] = []
    for x in items:
        batch.append(x)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


@dataclass(frozen=True, kw_only=True)
class Execution:
    """How a data stage runs its jobs; stage configs inherit it, so every verb has the same four flags."""

    workers: int = arg(0, help="processes (0 = all cores)")
    ray: bool = arg(False, help="run each job as a Ray task (local Ray unless --ray-address)")
    ray_address: str | None = arg(None, help="address of an existing Ray cluster, e.g. auto or ray://host:10001")
    progress: bool = arg(True, help="show progress bars")

    def run(self, fn, jobs, *, desc: str, unit: str = "shard", on_result=None, sizes=None) -> list:
        return run_jobs(fn, jobs, workers=self.workers, ray=self.ray, ray_address=self.ray_address, desc=desc,
                        unit=unit, progress=self.progress, on_result=on_result, sizes=sizes)
