"""`dclm process`: run a DCLM YAML pipeline over many shards, locally (process pool) or on Ray.

Layout under `OUTPUT/<yaml basename>/`:
  processed_data/<rel stem>_processed.<ext>   pages after the last step (input-relative paths mirrored)
  stats/<rel stem>_stats.jsonl                 DCLM's per-shard records (setup, one per step, commits, finished)
  _rejects/<rel>.jsonl                         pages that failed a step or could not be read, with the reason
                                               (src/dclm/runtime/rejects.py's one layout and schema)
  global_stats.jsonl                           one row per chunk (local runs and global steps)
  work/chunk_NN/                               pages between chunks when the YAML has global steps

Global steps (`exact_dedup`) split the steps into chunks as DCLM's Ray driver does; every chunk reads
an input that is never modified, so any interrupted run can be resumed and gives the same bytes.
"""

from __future__ import annotations

import hashlib
import logging
import os
import posixpath
import time
from dataclasses import dataclass, field

import orjson

from dclm.errors import DclmError
from dclm.io.pages import Shard, encode_pages, list_shards, read_pages, url_to_fs, write_bytes
from dclm.mappers.registry import load_module
from dclm.process.pipeline import Chunk, Pipeline, load_pipeline, steps_digest
from dclm.process.config import ProcessConfig
from dclm.process.executor import ShardJob, ShardResult, run_shard_job
from dclm.process.stats import read_jsonl_records, truncate_to_commit, write_jsonl_records
from dclm.runtime.jobs import resolve_workers
from dclm.runtime.progress import progress_write
from dclm.runtime.rejects import REJECTS_DIR, rejects_path

logger = logging.getLogger(__name__)



@dataclass
class ProcessResult:
    output_dir: str
    shards: int = 0
    done: int = 0
    skipped: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    pages_in: int = 0
    pages_out: int = 0
    step_totals: list[dict] = field(default_factory=list)
    secs: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed


def _output_suffix(shard: Shard, output_format: str) -> str:
    if output_format == "same":
        return shard.suffix.lstrip(".")
    return output_format


class _Layout:
    def __init__(self, root: str, pipeline: Pipeline, output_format: str):
        self.root = root
        self.pipeline = pipeline
        self.output_format = output_format
        self.n_chunks = len(pipeline.chunks)

    def out(self, shard: Shard, chunk: Chunk) -> str:
        if chunk.index == self.n_chunks - 1:
            return f"{self.root}/processed_data/{shard.stem}_processed.{_output_suffix(shard, self.output_format)}"
        return self.work(shard, chunk.index)

    def work(self, shard: Shard, chunk_index: int) -> str:
        return f"{self.root}/work/chunk_{chunk_index:02d}/{shard.stem}.jsonl.zst"

    def input(self, shard: Shard, chunk: Chunk) -> str:
        return shard.url if chunk.index == 0 else self.work(shard, chunk.index - 1)

    def stats(self, shard: Shard) -> str:
        return f"{self.root}/stats/{shard.stem}_stats.jsonl"

    def rejects(self, shard: Shard) -> str:
        return rejects_path(self.root, shard.rel)

    @property
    def global_stats(self) -> str:
        return f"{self.root}/global_stats.jsonl"


def run_process(config: ProcessConfig) -> ProcessResult:
    """Run `config.pipeline` over every shard under `config.inputs`; see the module docstring for outputs."""
    t_start = time.perf_counter()
    inputs, output, output_format = list(config.inputs), config.output, config.output_format
    base_dir = os.getcwd()
    modules = tuple(os.path.abspath(m) if m.endswith(".py") else m for m in config.mapper_modules)
    for mod in modules:
        load_module(mod)
    pipeline = load_pipeline(config.pipeline, config.source_name, base_dir=base_dir)
    shards = list_shards(inputs)
    if not shards:
        raise DclmError(f"no page shards (.jsonl, .jsonl.gz, .jsonl.zst, .parquet) found under {inputs}")
    if "://" not in output:
        output = os.path.abspath(output)
    root = f"{output.rstrip('/')}/{pipeline.name}"
    if config.overwrite:
        _clear(root)
    _remove_orphan_temp_files(root)
    layout = _Layout(root, pipeline, output_format)
    workers = resolve_workers(config.workers)
    result = ProcessResult(output_dir=root, shards=len(shards))
    global_rows = read_jsonl_records(layout.global_stats)
    totals: dict[int, dict] = {}
    for chunk in pipeline.chunks:
        t0 = time.perf_counter()
        if chunk.is_global:
            row = _run_global(chunk, shards, layout, pipeline)
        else:
            jobs = [
                ShardJob(
                    rel=s.rel, input_url=layout.input(s, chunk), output_url=layout.out(s, chunk),
                    stats_url=layout.stats(s), rejects_url=layout.rejects(s), source_url=s.url, chunk=chunk,
                    all_steps=pipeline.steps, source_name=pipeline.source, workers=min(workers, len(shards)),
                    base_dir=base_dir, mapper_modules=modules, seed=config.seed,
                )
                for s in shards
            ]
            results = config.run(run_shard_job, jobs, desc=f"chunk {chunk.index + 1}/{len(pipeline.chunks)}",
                                 on_result=_report)
            row = _local_row(results, layout, chunk)
            _accumulate(totals, results)
            if chunk.index == 0:
                result.pages_in = sum(r.pages_in for r in results)
            result.done = sum(r.status == "done" for r in results)
            result.skipped = sum(r.status == "skipped" for r in results)
            result.failed = [(r.rel, r.error) for r in results if r.status == "failed"]
        row["secs"] = time.perf_counter() - t0
        global_rows.append(row)
        write_jsonl_records(layout.global_stats, global_rows)
        if result.failed:
            if chunk.index < len(pipeline.chunks) - 1:
                logger.error("stopping before chunk %d: %d shard(s) failed", chunk.index + 2, len(result.failed))
            break
    result.step_totals = [totals[i] for i in sorted(totals)]
    if result.ok:
        result.pages_out = _count_final_pages(shards, layout, pipeline)
    result.secs = time.perf_counter() - t_start
    return result


def _clear(root: str) -> None:
    fs, path = url_to_fs(root)
    for sub in ("processed_data", "stats", REJECTS_DIR, "work", "global_stats.jsonl"):
        p = f"{path}/{sub}"
        if fs.exists(p):
            fs.rm(p, recursive=True)


def _remove_orphan_temp_files(root: str) -> None:
    """Temp files a killed run left behind (atomic writes that never reached their rename)."""
    fs, path = url_to_fs(root)
    if fs.exists(path):
        for p in fs.find(path):
            if posixpath.basename(p).startswith(".tmp-"):
                fs.rm(p)


def _report(job: ShardJob, r: ShardResult) -> None:
    if r.status == "failed":
        progress_write(f"dclm: shard {r.rel} failed: {r.error}")
    for err in r.read_errors:
        logger.warning("skipped bad line %s", err)
    if r.read_rejects > len(r.read_errors):
        logger.warning("%s: %d bad lines in all, written to its rejects file", r.rel, r.read_rejects)


def _local_row(results: list[ShardResult], layout: _Layout, chunk: Chunk) -> dict:
    return {
        "name": "local",
        "chunk": chunk.index,
        "steps": [s.func for s in chunk.steps],
        "num_successes": sum(r.status != "failed" for r in results),
        "num_failures": sum(r.status == "failed" for r in results),
        "skipped_shards": sum(r.status == "skipped" for r in results),
        "pages_in": sum(r.pages_in for r in results),
        "pages_out": sum(r.pages_out for r in results),
        "read_rejects": sum(r.read_rejects for r in results),
        "working_dir": layout.root,
        "resumptions": sum(r.resumed for r in results),
        "failed_shards": [r.rel for r in results if r.status == "failed"],
    }


def _accumulate(totals: dict[int, dict], results: list[ShardResult]) -> None:
    keys = ("pages_in", "pages_out", "kept", "removed", "split", "errors", "secs")
    for r in results:
        for rec in r.step_records:
            if "pages_in" not in rec:
                continue
            t = totals.setdefault(rec["step_index"], {"step": rec["step_index"] + 1, "name": rec["name"], **{k: 0 for k in keys}})
            for k in keys:
                t[k] += rec.get(k, 0)


def _run_global(chunk: Chunk, shards: list[Shard], layout: _Layout, pipeline: Pipeline) -> dict:
    """A global step over all shards, in the driver; skipped when its completion marker matches."""
    from dclm.process.global_steps import run_global_step

    step = chunk.steps[0]
    marker = f"{layout.root}/work/chunk_{chunk.index:02d}/_DONE.json"
    digest = steps_digest(pipeline.steps[: step.index + 1])
    if _global_done(marker, digest, step, shards, layout):
        logger.info("global step %s already done; skipping", step.func)
        return {"name": step.func, "working_dir": layout.root, "skipped": True}
    t0 = time.perf_counter()
    pages_by_shard = [read_pages(layout.input(s, chunk), text_key=None) for s in shards]
    new_pages, stats = run_global_step(step.func, step.kwargs, pages_by_shard)
    secs = time.perf_counter() - t0
    for shard, before, after in zip(shards, pages_by_shard, new_pages):
        data = encode_pages(after, layout.out(shard, chunk))
        write_bytes(layout.out(shard, chunk), data)
        records = truncate_to_commit(read_jsonl_records(layout.stats(shard)), step.index)
        records.append({"name": step.func, "step_index": step.index, "pages_in": len(before), "pages_out": len(after),
                        "removed": len(before) - len(after), "kept": len(after), "split": 0, "errors": 0,
                        "secs": secs / max(1, len(shards)), "global": True})
        records.append({"name": "commit", "secs": 0.0, "committed_through": step.index + 1, "steps_digest": digest,
                        "pages": len(after), "output_sha1": hashlib.sha1(data).hexdigest()})
        write_jsonl_records(layout.stats(shard), records)
    write_bytes(marker, orjson.dumps({"steps_digest": digest, **{k: v for k, v in stats.items() if isinstance(v, (int, float, str))}}))
    return {"name": step.func, "working_dir": layout.root, **stats}


def _global_done(marker: str, digest: str, step, shards: list[Shard], layout: _Layout) -> bool:
    """The marker matches this config and every shard's stats hold the step's commit."""
    fs, mpath = url_to_fs(marker)
    if not fs.exists(mpath):
        return False
    with fs.open(mpath, "rb") as f:
        if orjson.loads(f.read()).get("steps_digest") != digest:
            return False
    for s in shards:
        commits = [r for r in read_jsonl_records(layout.stats(s)) if r.get("name") == "commit"]
        if not any(c["committed_through"] == step.index + 1 for c in commits):
            return False
    return True


def _count_final_pages(shards: list[Shard], layout: _Layout, pipeline: Pipeline) -> int:
    total = 0
    for s in shards:
        records = read_jsonl_records(layout.stats(s))
        commits = [r for r in records if r.get("name") == "commit"]
        total += commits[-1]["pages"] if commits else 0
    return total


def format_summary(result: ProcessResult) -> str:
    """A plain-text table of per-step totals and the run's outcome."""
    head = f"{'#':>3}  {'step':<40} {'in':>9} {'kept':>9} {'removed':>9} {'split':>6} {'errors':>6} {'secs':>8}"
    lines = [head, "-" * len(head)]
    for t in result.step_totals:
        lines.append(f"{t['step']:>3}  {t['name'][:40]:<40} {t['pages_in']:>9} {t['kept']:>9} {t['removed']:>9} "
                     f"{t['split']:>6} {t['errors']:>6} {t['secs']:>8.2f}")
    lines.append(f"shards: {result.shards} ({result.done} processed, {result.skipped} already done, {len(result.failed)} failed); "
                 f"pages in {result.pages_in}, out {result.pages_out}; {result.secs:.1f}s -> {result.output_dir}")
    return "\n".join(lines)
