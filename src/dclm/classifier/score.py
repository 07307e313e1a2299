"""`dclm classifier score`: fastText P(hq) for every page, written to sidecar attribute shards.

Layout under OUTPUT (dolma-style attributes; scoring once lets `select` re-threshold for free):
  <rel stem>.jsonl[.gz|.zst]   one record per input page, in input order: {"id"?, "url"?, KEY: score}
                               (parquet inputs get .jsonl.zst sidecars); a page without a string text gets
                               KEY: null so line N of the sidecar is always page N of the shard
  _rejects/<rel>.jsonl         pages without text and unreadable lines, with the reason (the runtime's one
                               reject layout and schema, src/dclm/runtime/rejects.py)
  _score.json                  model path and sha256, key, per-shard counts

Shards run as jobs of the shared runner (process pool or Ray), each process loading the model once. A sidecar is written atomically after its
rejects file, so its presence marks the shard done: rerunning skips it (resume); --overwrite rescores every shard.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import asdict, dataclass, field

import orjson

from dclm.errors import DclmError
from dclm.io import Shard, encode_pages, iter_pages, list_shards, write_bytes
from dclm.io.pages import url_to_fs
from dclm.classifier.model import DEFAULT_KEY, file_sha256, hq_probs, load_model
from dclm.classifier.config import ScoreConfig
from dclm.runtime.progress import progress_write
from dclm.runtime.rejects import RejectLog, rejects_path

logger = logging.getLogger(__name__)

MANIFEST = "_score.json"
STAGE = "classifier score"


def list_inputs(inputs: list[str]) -> list[Shard]:
    """The shards under `inputs`; two inputs holding the same relative path would share one sidecar, so refuse."""
    seen: dict[str, Shard] = {}
    for inp in inputs:
        for shard in list_shards([inp]):
            other = seen.setdefault(shard.rel, shard)
            if other.url != shard.url:
                raise DclmError(f"{other.url} and {shard.url} have the same relative path {shard.rel!r}; "
                                f"pass their common parent folder as --input instead")
    return sorted(seen.values())


def sidecar_rel(rel: str, suffix: str) -> str:
    """The sidecar path (relative to the attributes folder) of the input shard `rel`."""
    if suffix == ".parquet":
        return rel[: -len(suffix)] + ".jsonl.zst"
    return rel


@dataclass
class ShardScore:
    rel: str
    sidecar: str
    pages: int = 0
    scored: int = 0
    rejects: int = 0
    bytes: int = 0
    secs: float = 0.0
    skipped: bool = False
    error: str | None = None


@dataclass
class ScoreResult:
    output: str
    key: str
    model: str
    model_sha256: str
    shards: list[ShardScore] = field(default_factory=list)
    secs: float = 0.0

    @property
    def failed(self) -> list[ShardScore]:
        return [s for s in self.shards if s.error]

    def totals(self) -> dict:
        done = [s for s in self.shards if not s.error]
        return {
            "shards": len(self.shards),
            "shards_skipped": sum(s.skipped for s in done),
            "shards_failed": len(self.failed),
            "pages": sum(s.pages for s in done),
            "scored": sum(s.scored for s in done),
            "rejects": sum(s.rejects for s in done),
        }


def _record(page: dict, key: str, score) -> dict:
    rec = {}
    if "id" in page:
        rec["id"] = page["id"]
    if "url" in page:
        rec["url"] = page["url"]
    rec[key] = score
    return rec


def _score_batch(model, texts: list[str]) -> list[float | str]:
    """Scores for a batch; if fastText rejects the batch, score one by one so only bad texts fail."""
    try:
        return hq_probs(model, texts)
    except Exception:
        out: list[float | str] = []
        for text in texts:
            try:
                out.append(hq_probs(model, [text])[0])
            except Exception as e:
                out.append(f"scoring failed: {e.__class__.__name__}: {e}")
        return out


def score_pages(model, pages: list[dict], key: str, text_key: str, batch_size: int) -> tuple[list[dict], list[dict]]:
    """(sidecar records in page order, reject records) for in-memory pages."""
    records: list[dict] = []
    rejects: list[dict] = []
    pending: list[int] = []

    def flush() -> None:
        scores = _score_batch(model, [pages[i][text_key] for i in pending])
        for i, score in zip(pending, scores):
            if isinstance(score, str):
                records[i][key] = None
                rejects.append({"error": score, "page_index": i, "page": pages[i]})
            else:
                records[i][key] = score
        pending.clear()

    for i, page in enumerate(pages):
        text = page.get(text_key)
        records.append(_record(page, key, None))
        if isinstance(text, str):
            pending.append(i)
            if len(pending) >= batch_size:
                flush()
        else:
            reason = f"missing '{text_key}'" if text is None else f"'{text_key}' is {type(text).__name__}, not a string"
            rejects.append({"error": reason, "page_index": i, "page": page})
    if pending:
        flush()
    rejects.sort(key=lambda r: r["page_index"])
    return records, rejects


@dataclass(frozen=True)
class _Job:
    shard: Shard
    output: str
    model_path: str
    key: str
    text_key: str
    batch_size: int


def _exists(url: str) -> bool:
    fs, path = url_to_fs(url)
    return fs.exists(path)


def score_shard(job: _Job) -> ShardScore:
    shard = job.shard
    side_rel = sidecar_rel(shard.rel, shard.suffix)
    result = ShardScore(rel=shard.rel, sidecar=side_rel)
    t0 = time.perf_counter()
    try:
        model = load_model(job.model_path)
        log = RejectLog(job.output, shard.rel, STAGE, shard.url)
        pages = list(iter_pages(shard.url, on_reject=log.on_read_reject, text_key=None))
        records, rejects = score_pages(model, pages, job.key, job.text_key, job.batch_size)
        result.bytes = sum(len(p[job.text_key].encode("utf-8")) for p in pages if isinstance(p.get(job.text_key), str))
        for r in rejects:
            log.add(r["error"], r["page"])
        log.flush()
        side_url = f"{job.output}/{side_rel}"
        write_bytes(side_url, encode_pages(records, side_url))
        result.pages = len(pages)
        result.rejects = len(log)
        result.scored = sum(1 for r in records if r[job.key] is not None)
    except (DclmError, OSError) as e:
        result.error = str(e)
    result.secs = time.perf_counter() - t0
    return result


def _count_existing(job: _Job) -> ShardScore:
    """Counts for a shard finished by an earlier run, read back from its sidecar and rejects file."""
    shard = job.shard
    side_rel = sidecar_rel(shard.rel, shard.suffix)
    result = ShardScore(rel=shard.rel, sidecar=side_rel, skipped=True)
    for rec in iter_pages(f"{job.output}/{side_rel}", text_key=None):
        result.pages += 1
        result.scored += rec.get(job.key) is not None
    rej_url = rejects_path(job.output, shard.rel)
    if _exists(rej_url):
        result.rejects = sum(1 for _ in iter_pages(rej_url, text_key=None))
    return result


def _read_manifest(output: str) -> dict | None:
    url = f"{output}/{MANIFEST}"
    if not _exists(url):
        return None
    fs, path = url_to_fs(url)
    with fs.open(path, "rb") as f:
        try:
            return orjson.loads(f.read())
        except orjson.JSONDecodeError as e:
            raise DclmError(f"{url}: unreadable manifest ({e})") from None


def score_shards(config: ScoreConfig) -> ScoreResult:
    """Score every page shard under `config.inputs` into sidecars under `config.output`; resumes unless
    `config.overwrite`."""
    from dclm.classifier.model import resolve_model

    key, text_key, overwrite, inputs = config.key, config.text_key, config.overwrite, list(config.inputs)
    model_path = resolve_model(config.model)
    load_model(model_path)  # fail fast on a bad model, before any worker starts
    sha = file_sha256(model_path)
    output = config.output.rstrip("/")
    shards = list_inputs(inputs)
    if not shards:
        raise DclmError(f"no page shards under {', '.join(inputs)}")
    if not overwrite:
        previous = _read_manifest(output)
        if previous and (previous.get("model_sha256") != sha or previous.get("key") != key or previous.get("text_key") != text_key):
            raise DclmError(f"{output} holds scores from another model or key ({previous.get('model')}, key "
                            f"{previous.get('key')!r}); pass --overwrite or choose another --output")
    result = ScoreResult(output=output, key=key, model=os.path.abspath(model_path), model_sha256=sha)
    manifest = {"model": result.model, "model_sha256": sha, "key": key, "text_key": text_key, "complete": False}
    write_bytes(f"{output}/{MANIFEST}", orjson.dumps(manifest, option=orjson.OPT_INDENT_2) + b"\n")

    jobs = [_Job(s, output, model_path, key, text_key, config.batch_size) for s in shards]
    todo = []
    for job in jobs:
        if not overwrite and _exists(f"{output}/{sidecar_rel(job.shard.rel, job.shard.suffix)}"):
            result.shards.append(_count_existing(job))
        else:
            todo.append(job)
    t0 = time.perf_counter()
    result.shards.extend(_run(todo, config))
    result.secs = time.perf_counter() - t0
    result.shards.sort(key=lambda s: s.rel)

    manifest.update(
        complete=not result.failed,
        totals=result.totals(),
        shards=[{k: v for k, v in asdict(s).items() if k not in ("secs", "skipped", "bytes")} for s in result.shards],
    )
    write_bytes(f"{output}/{MANIFEST}", orjson.dumps(manifest, option=orjson.OPT_INDENT_2) + b"\n")
    return result


def _run(jobs: list[_Job], config: ScoreConfig) -> list[ShardScore]:
    def report(job: _Job, r: ShardScore) -> None:
        if r.error:
            progress_write(f"dclm: shard {r.rel} failed: {r.error}")

    return config.run(score_shard, jobs, desc="score", on_result=report)
