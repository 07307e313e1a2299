"""Processing one shard through one local chunk of steps: DCLM's `process_single_file`, made resumable.

Each step maps every page (`[]` removed, `[page]` kept, more = split); a page whose mapper raises is
counted under `errors` and written with the step and error to the shard's reject file. `commit` steps and
the chunk's end write the pages, then the stats file whose commit record carries the step count and the
output's digest; a rerun resumes after the last commit whose output is intact, otherwise from the chunk
input, which is never modified. Outputs are therefore identical whether or not a run was interrupted.

Mappers that draw from Python's global `random` (DCLM's `random_sampling_filter`) see it seeded before each
step from the run seed, the shard path and the step index (`seed_step`), so their draws do not depend on
worker count, shard order or where a resumed run restarted.
"""

from __future__ import annotations

import hashlib
import os
import random
import time
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

from dclm.errors import DclmError, ShardFailed
from dclm.io.pages import encode_pages, read_pages, url_to_fs, write_bytes
from dclm.mappers.registry import load_module
from dclm.process.aggregators import make_aggregator
from dclm.process.pipeline import Chunk, Step, build_mapper, steps_digest
from dclm.process.stats import read_jsonl_records, remove_if_exists, truncate_to_commit, write_jsonl_records

STAGE = "process"


@dataclass(frozen=True)
class ShardJob:
    rel: str
    input_url: str
    output_url: str
    stats_url: str
    rejects_url: str
    source_url: str  # the shard as the user named it (what reject records cite)
    chunk: Chunk
    all_steps: tuple[Step, ...]
    source_name: str
    workers: int = 1
    base_dir: str = "."
    mapper_modules: tuple[str, ...] = ()
    seed: int = 0


@dataclass
class ShardResult:
    rel: str
    status: str  # "done", "skipped" or "failed"
    error: str = ""
    step_records: list[dict] = field(default_factory=list)
    pages_in: int = 0
    pages_out: int = 0
    read_rejects: int = 0
    read_errors: list[str] = field(default_factory=list)  # first few "file:line: reason" for the log
    resumed: bool = False
    secs: float = 0.0


_built: dict[tuple, list[Callable]] = {}


def _mappers_for(job: ShardJob) -> list[Callable | None]:
    """Build the chunk's mappers once per process (factories compile regexes and load models here)."""
    key = (steps_digest(job.chunk.steps), job.base_dir, job.mapper_modules)
    if key not in _built:
        for mod in job.mapper_modules:
            load_module(mod)
        _built[key] = [None if s.is_commit else build_mapper(s, job.base_dir) for s in job.chunk.steps]
    return _built[key]


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")


def _reject(step: Step | None, error: str, page: Any, lineno: int | None = None, file: str | None = None) -> dict:
    """A record in the runtime's one reject schema (src/dclm/runtime/rejects.py); `step` None = unreadable."""
    return {"stage": STAGE, "step": None if step is None else step.func, "file": file, "line": lineno,
            "reason": error, "record": page}


def seed_step(seed: int, rel: str, step_index: int) -> None:
    """Seed the global `random` for one step of one shard (a str seed is hashed with SHA-512 by `random`,
    so the stream is the same in every process and Python run)."""
    random.seed(f"{seed}:{rel}:{step_index}")


def run_step(step: Step, fn: Callable, pages: list[dict], rejects: list[dict], workers: int = 1) -> tuple[list[dict], dict]:
    """Apply one mapper to every page; returns the output pages and DCLM's step record."""
    t_start = time.perf_counter()
    out: list[dict] = []
    counts = {"errors": 0, "removed": 0, "kept": 0, "split": 0}
    secs = 0.0
    first_error = ""
    results = None
    batch = getattr(fn, "map_batch", None)
    if batch is not None and pages:
        try:
            t0 = time.perf_counter()
            results = batch(pages)
            secs = time.perf_counter() - t0
        except Exception:  # fall back to per-page calls so the failing page is isolated and rejected
            results = None
    for i, page in enumerate(pages):
        if results is not None:
            res = results[i]
        else:
            t0 = time.perf_counter()
            try:
                res = fn(page)
            except Exception as e:
                secs += time.perf_counter() - t0
                msg = f"{e.__class__.__name__}: {e}"
                first_error = first_error or msg
                counts["errors"] += 1
                rejects.append(_reject(step, msg, page))
                continue
            secs += time.perf_counter() - t0
        n = len(res)
        if n == 0:
            counts["removed"] += 1
        elif n == 1:
            counts["kept"] += 1
        else:
            counts["split"] += 1
        out.extend(res)
    if pages and counts["errors"] == len(pages):
        raise ShardFailed(f"step {step.index + 1} ({step.func}) failed on all {len(pages)} pages; first error: {first_error}")
    record = {
        "name": step.func,
        "step_index": step.index,
        "pages_in": len(pages),
        "pages_out": len(out),
        "secs": secs,
        "secs/page": secs / len(pages) if pages else 0.0,
        **counts,
        "workers": workers,
    }
    for key, spec in step.aggregate.items():
        t0 = time.perf_counter()
        values = [p[key] for p in out if key in p]
        record[key] = make_aggregator(key, spec)(values)
        record[f"{key}_secs"] = time.perf_counter() - t0
    record["total_secs"] = time.perf_counter() - t_start
    return out, record


def process_pages(steps: list[Step], pages: list[dict], base_dir: str | None = None, seed: int = 0,
                  rel: str = "") -> tuple[list[dict], list[dict], list[dict]]:
    """Run local steps over in-memory pages (no files): returns (pages, step records, rejects); `rel` names
    the shard for `seed_step`."""
    records: list[dict] = []
    rejects: list[dict] = []
    for step in steps:
        if step.is_commit:
            continue
        seed_step(seed, rel, step.index)
        pages, rec = run_step(step, build_mapper(step, base_dir), pages, rejects)
        records.append(rec)
        if not pages:
            break
    return pages, records, rejects


def run_shard_job(job: ShardJob) -> ShardResult:
    """Process one shard through one chunk; failures come back as a `failed` result, never raised."""
    t0 = time.perf_counter()
    rng_state = random.getstate()  # in-process runs leave the caller's generator as it was
    try:
        result = _run(job)
    except DclmError as e:
        result = ShardResult(job.rel, "failed", error=str(e))
    except Exception as e:  # a bug or an unexpected library error: report it for this shard, keep the others going
        tb = traceback.extract_tb(e.__traceback__)[-1]
        where = f" at {os.path.basename(tb.filename)}:{tb.lineno}" if tb else ""
        result = ShardResult(job.rel, "failed", error=f"{e.__class__.__name__}: {e}{where}")
    finally:
        random.setstate(rng_state)
    result.secs = time.perf_counter() - t0
    return result


def _run(job: ShardJob) -> ShardResult:
    chunk = job.chunk
    start, end = chunk.steps[0].index, chunk.steps[-1].index + 1
    records = read_jsonl_records(job.stats_url)

    # where to resume: the last commit, if it belongs to this config and its output is intact
    commits = [r for r in records if r.get("name") == "commit"]
    done = commits[-1]["committed_through"] if commits else 0
    if commits and commits[-1].get("steps_digest") != steps_digest(job.all_steps[:done]):
        raise DclmError(f"{job.stats_url}: existing output was made with a different config; rerun with --overwrite")
    if done >= end:
        own = [c for c in commits if c["committed_through"] == end]  # this chunk's final commit
        if own and _output_intact(job.output_url, own[-1]):
            mine = [r for r in records if start <= r.get("step_index", -1) < end and "pages_in" in r]
            return ShardResult(job.rel, "skipped", step_records=mine, pages_in=mine[0]["pages_in"] if mine else 0,
                               pages_out=own[-1]["pages"])
        done = start
    pages: list[dict] | None = None
    if start < done < end:
        if _output_intact(job.output_url, commits[-1]):
            pages = read_pages(job.output_url, text_key=None)
        else:
            done = start
    if done < start:
        raise DclmError(f"{job.rel}: earlier pipeline steps are not finished (stats at step {done}, chunk starts at {start})")
    resumed = bool(records)
    records = truncate_to_commit(records, done)
    # rejects are appended in step order and each commit records how many there were, so resuming after
    # a commit keeps exactly the rejects of the steps it covers
    kept = next((r.get("rejects", 0) for r in reversed(records) if r.get("name") == "commit"), 0)
    rejects = read_jsonl_records(job.rejects_url)[:kept]

    t_load = time.perf_counter()
    read_rejects = 0
    if pages is None:
        def on_reject(lineno: int, reason: str, raw: Any) -> None:
            rejects.append(_reject(None, reason, raw, lineno, job.source_url))

        n_before = len(rejects)
        pages = read_pages(job.input_url, on_reject=on_reject, text_key=None)
        read_rejects = len(rejects) - n_before
    records.append({
        "name": "process_setup",
        "jsonl_load_secs": time.perf_counter() - t_load,
        "jsonl_path": job.input_url,
        "source_name": job.source_name,
        "output_path": job.output_url,
        "stats_output_path": job.stats_url,
        "workers": job.workers,
        "first_run": not resumed,
        "graceful_continuation": resumed,
        "resume_from_step": done,
        "pages_read": len(pages),
        "read_rejects": read_rejects,
        "execution_start_time": _now(),
    })
    pages_in = len(pages)
    fns = _mappers_for(job)
    executed, skipped, commit_steps = [], 0, 0
    t_run = time.perf_counter()
    for step, fn in zip(chunk.steps, fns):
        if step.index < done:
            skipped += 1
            continue
        if step.is_commit:
            commit_steps += 1
            _commit(job, pages, records, rejects, step.index + 1)
            continue
        if not pages:  # DCLM stops early once nothing is left
            skipped += 1
            continue
        seed_step(job.seed, job.rel, step.index)
        n_before = len(rejects)
        try:
            pages, rec = run_step(step, fn, pages, rejects, job.workers)
        except ShardFailed:
            _write_rejects(job.rejects_url, _with_file(rejects, job.source_url))
            raise
        _with_file(rejects[n_before:], job.source_url)
        records.append(rec)
        executed.append(rec)
    finished = {
        "name": "process_finished",
        "total_secs": time.perf_counter() - t_run,
        "executed_steps": len(executed),
        "skipped_steps": skipped,
        "commit_steps": commit_steps,
        "finished_processing": True,
        "execution_end_time": _now(),
    }
    _commit(job, pages, records, rejects, end, trailer=finished)
    read_errors = [f"{job.input_url}:{r['line']}: {r['reason']}" for r in rejects if r["step"] is None][:5]
    return ShardResult(job.rel, "done", step_records=executed, pages_in=pages_in, pages_out=len(pages),
                       read_rejects=read_rejects, read_errors=read_errors, resumed=resumed)


def _output_intact(url: str, commit: dict) -> bool:
    try:
        fs, path = url_to_fs(url)
        if not fs.exists(path):
            return False
        with fs.open(path, "rb") as f:
            return hashlib.sha1(f.read()).hexdigest() == commit.get("output_sha1")
    except OSError:
        return False


def _with_file(rejects: list[dict], file: str) -> list[dict]:
    for r in rejects:
        r["file"] = file
    return rejects


def _write_rejects(url: str, rejects: list[dict]) -> None:
    if rejects:
        write_jsonl_records(url, rejects)
    else:
        remove_if_exists(url)


def _commit(job: ShardJob, pages: list[dict], records: list[dict], rejects: list[dict], through: int,
            trailer: dict | None = None) -> None:
    """Write pages, rejects, then the stats file whose commit record makes the new state official."""
    t0 = time.perf_counter()
    data = encode_pages(pages, job.output_url)
    write_bytes(job.output_url, data)
    _write_rejects(job.rejects_url, rejects)
    records.append({
        "name": "commit",
        "secs": time.perf_counter() - t0,
        "committed_through": through,
        "steps_digest": steps_digest(job.all_steps[:through]),
        "pages": len(pages),
        "rejects": len(rejects),
        "output_sha1": hashlib.sha1(data).hexdigest(),
    })
    write_jsonl_records(job.stats_url, records + ([trailer] if trailer else []))
    if trailer:
        records.append(trailer)
