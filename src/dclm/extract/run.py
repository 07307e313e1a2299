"""`dclm extract`: WARC/WET files to DCLM-Pool page shards, one output shard per input file.

A page is `{"text", "url", "metadata": {every WARC header}, "warcinfo": <the file's warcinfo block>}`:
DCLM-Pool's layout plus `url` (= WARC-Target-URI, which DCLM's `move_url_modifier` would set anyway).
`response` records go through HTTP decoding (transfer/content encoding, charset) and an HTML extractor;
`conversion` records (WET) already hold text and are kept as they are, stripped, as DCLM did.

Per input `<rel>` the run writes `OUTPUT/<rel minus compression>.jsonl.zst` and
`OUTPUT/stats/<rel minus compression>.json`, each atomically. A file whose output and stats both exist
is skipped (resume) unless `overwrite`. Every record is accounted for in the stats:
responses + conversions = pages + non_html + oversized + empty + errors.
"""

from __future__ import annotations

import contextlib
import gzip
import logging
import os
import posixpath
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

import orjson

from dclm.errors import DclmError
from dclm.extract.decode import HTML_TYPES, DecodeError, TooLarge, decode_body, looks_like_html, parse_http, to_text
from dclm.extract.extractors import get_extractor
from dclm.extract.warc import RawRecord, WarcFile, iter_records, list_warcs, strip_compression
from dclm.io.pages import atomic_open, url_to_fs

log = logging.getLogger(__name__)

DEFAULT_MAX_RECORD_BYTES = 16 << 20
COMPRESSIONS = {"zst": ".jsonl.zst", "gz": ".jsonl.gz", "none": ".jsonl"}
_WANTED = frozenset({"warcinfo", "response", "conversion"})
_PROGRESS_STEP = 4 << 20  # report progress every this many input bytes
_WRITE_BATCH = 1 << 20  # bytes of JSON lines handed to the compressor at once


@dataclass
class ExtractOptions:
    extractor: str = "resiliparse"
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES
    compression: str = "zst"

    def __post_init__(self):
        if self.compression not in COMPRESSIONS:
            raise DclmError(f"unknown compression {self.compression!r}; choose one of {', '.join(COMPRESSIONS)}")
        if self.max_record_bytes <= 0:
            raise DclmError("--max-record-bytes must be positive")
        get_extractor(self.extractor)  # fail early on an unknown name or a missing extra


def output_paths(output: str, wf: WarcFile, compression: str) -> tuple[str, str]:
    stem = strip_compression(wf.rel)
    return posixpath.join(output, stem + COMPRESSIONS[compression]), posixpath.join(output, "stats", stem + ".json")


def _new_stats(wf: WarcFile, out_url: str, opts: ExtractOptions) -> dict:
    return {
        "input": wf.url, "rel": wf.rel, "output": out_url, "extractor": opts.extractor,
        "records": 0, "records_by_type": {}, "pages": 0,
        "skipped_non_html": 0, "skipped_oversized": 0, "empty_extraction": 0, "errors": 0,
        "non_html_types": {}, "charset_source": {}, "content_encoding": {}, "http_status": {},
        "warc_truncated_payloads": 0, "input_bytes": 0, "html_bytes": 0, "text_chars": 0,
        "error_records": [], "damaged": [], "seconds": 0.0,
    }


class _Writer:
    """Streams JSON lines into an already-open binary file, compressing as it goes (deterministic bytes)."""

    def __init__(self, f, compression: str):
        self._stack = contextlib.ExitStack()
        if compression == "zst":
            import zstandard

            f = self._stack.enter_context(zstandard.ZstdCompressor(level=3).stream_writer(f, closefd=False))
        elif compression == "gz":
            f = self._stack.enter_context(gzip.GzipFile(filename="", fileobj=f, mode="wb", compresslevel=6, mtime=0))
        self._f = f
        self._buf: list[bytes] = []
        self._size = 0

    def write(self, page: dict) -> None:
        line = orjson.dumps(page) + b"\n"
        self._buf.append(line)
        self._size += len(line)
        if self._size >= _WRITE_BATCH:  # one compressor call per batch, not per page
            self._flush()

    def _flush(self) -> None:
        if self._buf:
            self._f.write(b"".join(self._buf))
            self._buf, self._size = [], 0

    def close(self) -> None:
        self._flush()
        self._stack.close()


def _target_url(headers: dict) -> str:
    url = headers.get("WARC-Target-URI", "")
    return url[1:-1] if url.startswith("<") and url.endswith(">") else url


class _FileExtraction:
    """The state of one file's extraction: options, the extractor, and the counters its stats are made of."""

    def __init__(self, wf: WarcFile, out_url: str, opts: ExtractOptions):
        self.opts = opts
        self.extract = get_extractor(opts.extractor)
        self.stats = _new_stats(wf, out_url, opts)
        self.by_type: Counter = Counter()
        self.non_html: Counter = Counter()
        self.charsets: Counter = Counter()
        self.encodings: Counter = Counter()
        self.statuses: Counter = Counter()

    @staticmethod
    def _entry(offset: int, reason: str, headers: dict) -> dict:
        return {"offset": offset, "record_id": headers.get("WARC-Record-ID"), "url": _target_url(headers) or None,
                "reason": reason}

    def damaged(self, offset: int, reason: str, headers: dict) -> None:
        self.stats["damaged"].append(self._entry(offset, reason, headers))

    def fail(self, raw: RawRecord, reason: str) -> None:
        self.stats["errors"] += 1
        self.stats["error_records"].append(self._entry(raw.offset, reason, raw.headers))

    def text_of(self, raw: RawRecord) -> str | None:
        """The page text of a response/conversion record, or None when it is skipped or fails (counted here)."""
        if raw.block is None:
            self.stats["skipped_oversized"] += 1
            return None
        if raw.headers.get("WARC-Truncated"):
            self.stats["warc_truncated_payloads"] += 1
        if raw.type == "conversion":
            text = raw.block.decode("utf-8", "replace").strip()
        else:
            text = self._response_text(raw)
            if text is None:
                return None
        if not text:
            self.stats["empty_extraction"] += 1
            return None
        return text

    def _response_text(self, raw: RawRecord) -> str | None:
        stats = self.stats
        try:
            resp = parse_http(raw.block)
        except DecodeError as e:
            self.fail(raw, str(e))
            return None
        if resp.status is not None:
            self.statuses[f"{resp.status // 100}xx"] += 1
        ctype = resp.content_type
        if ctype not in HTML_TYPES and not (ctype in (None, "application/octet-stream") and looks_like_html(resp.body)):
            stats["skipped_non_html"] += 1
            self.non_html[ctype or "(none)"] += 1
            return None
        enc = resp.headers.get("content-encoding", "").strip().lower()
        if enc and enc != "identity":
            self.encodings[enc] += 1
        try:
            body = decode_body(resp, self.opts.max_record_bytes)
        except TooLarge:
            stats["skipped_oversized"] += 1
            return None
        except DecodeError as e:
            self.fail(raw, str(e))
            return None
        html, source = to_text(body, resp.charset)
        self.charsets[source] += 1
        stats["html_bytes"] += len(body)
        try:
            return self.extract(html).strip()
        except Exception as e:  # parsers raise many types on hostile HTML; the record is counted, the file goes on
            self.fail(raw, f"{self.opts.extractor} failed: {e.__class__.__name__}: {e}")
            return None

    def finish(self, seconds: float) -> dict:
        self.stats.update(
            records_by_type=dict(sorted(self.by_type.items())), non_html_types=dict(self.non_html.most_common()),
            charset_source=dict(sorted(self.charsets.items())), content_encoding=dict(sorted(self.encodings.items())),
            http_status=dict(sorted(self.statuses.items())), seconds=round(seconds, 3))
        return self.stats


def extract_file(wf: WarcFile, out_url: str, stats_url: str, opts: ExtractOptions,
                 progress: Callable[[int], None] | None = None) -> dict:
    """Extract one WARC/WET file; returns its stats (also written to `stats_url`).

    `progress(n)` is called with the number of input bytes read since its last call."""
    t0 = time.perf_counter()
    job = _FileExtraction(wf, out_url, opts)
    stats = job.stats
    fs, path = url_to_fs(wf.url)
    try:
        stats["input_bytes"] = int(fs.size(path) or 0)
    except OSError as e:
        raise DclmError(f"{wf.url}: cannot read ({e})") from None
    warcinfo: str | None = None
    reported = 0
    with atomic_open(out_url, "wb") as f:
        writer = _Writer(f, opts.compression)
        try:
            for raw in iter_records(wf.url, opts.max_record_bytes, _WANTED, job.damaged):
                stats["records"] += 1
                job.by_type[raw.type] += 1
                if progress is not None and raw.offset - reported >= _PROGRESS_STEP:
                    progress(raw.offset - reported)
                    reported = raw.offset
                if raw.type == "warcinfo":
                    if raw.block is not None:
                        warcinfo = raw.block.decode("utf-8", "replace").strip()
                    continue
                if raw.type not in ("response", "conversion"):
                    continue
                text = job.text_of(raw)
                if text is None:
                    continue
                page = {"text": text, "url": _target_url(raw.headers), "metadata": raw.headers}
                if warcinfo:  # as DCLM: no key when the file has no (or an empty) warcinfo record
                    page["warcinfo"] = warcinfo
                writer.write(page)
                stats["pages"] += 1
                stats["text_chars"] += len(text)
        finally:
            writer.close()
    if progress is not None:
        progress(stats["input_bytes"] - reported)
    job.finish(time.perf_counter() - t0)
    with atomic_open(stats_url, "wb") as f:
        f.write(orjson.dumps(stats, option=orjson.OPT_INDENT_2) + b"\n")
    return stats


@dataclass
class ExtractResult:
    files: list[dict] = field(default_factory=list)  # stats of every file, in input order
    skipped: list[str] = field(default_factory=list)  # rels resumed from an earlier run
    failed: list[tuple[str, str]] = field(default_factory=list)  # (rel, error) for files that could not be read
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed

    def totals(self) -> dict:
        keys = ("records", "pages", "skipped_non_html", "skipped_oversized", "empty_extraction", "errors",
                "input_bytes", "html_bytes", "text_chars")
        tot = {k: sum(s.get(k, 0) for s in self.files) for k in keys}
        tot["files"] = len(self.files)
        tot["damaged"] = sum(len(s.get("damaged", ())) for s in self.files)
        tot["files_damaged"] = sum(1 for s in self.files if s.get("damaged"))
        return tot


def _job(wf: WarcFile, out_url: str, stats_url: str, opts: ExtractOptions,
         progress: Callable[[int], None] | None) -> tuple[str, dict | None, str | None]:
    """(rel, stats, None) or (rel, None, error) for a file that could not be read at all."""
    try:
        return wf.rel, extract_file(wf, out_url, stats_url, opts, progress), None
    except DclmError as e:
        return wf.rel, None, str(e)
    except OSError as e:
        return wf.rel, None, f"{e.__class__.__name__}: {e}"


def _load_stats(stats_url: str) -> dict | None:
    fs, path = url_to_fs(stats_url)
    try:
        with fs.open(path, "rb") as f:
            return orjson.loads(f.read())
    except (OSError, orjson.JSONDecodeError):
        return None


def run_extract(inputs: list[str] | str, output: str, extractor: str = "resiliparse", workers: int = 1,
                max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES, compression: str = "zst",
                overwrite: bool = False, progress: bool = False) -> ExtractResult:
    """Extract every WARC/WET file under `inputs` into `output` (see the module docstring)."""
    t0 = time.perf_counter()
    opts = ExtractOptions(extractor, max_record_bytes, compression)
    files = list_warcs([inputs] if isinstance(inputs, str) else list(inputs))
    if not files:
        raise DclmError(f"no WARC/WET files under {inputs}")
    targets = {wf.rel: output_paths(output, wf, compression) for wf in files}
    seen: dict[str, str] = {}
    for rel, (out_url, _) in targets.items():
        if out_url in seen:
            raise DclmError(f"{seen[out_url]} and {rel} would both be written to {out_url}; extract them separately")
        seen[out_url] = rel
    result = ExtractResult()
    done: dict[str, dict] = {}
    todo = []
    for wf in files:
        out_url, stats_url = targets[wf.rel]
        if not overwrite and _exists(out_url):
            prior = _load_stats(stats_url)
            if prior is not None:
                done[wf.rel] = prior
                result.skipped.append(wf.rel)
                continue
        todo.append((wf, out_url, stats_url))
    workers = max(1, min(workers or os.cpu_count() or 1, len(todo) or 1))
    total_bytes = sum(_size(wf.url) for wf, _, _ in todo)
    bar = _progress_bar(total_bytes, progress)
    try:
        if workers == 1:
            for wf, out_url, stats_url in todo:
                rel, stats, err = _job(wf, out_url, stats_url, opts, None if bar is None else bar.update)
                _collect(rel, stats, err, done, result, bar)
        else:
            _run_parallel(todo, opts, workers, done, result, bar)
    finally:
        if bar is not None:
            bar.close()
    result.files = [done[wf.rel] for wf in files if wf.rel in done]
    result.seconds = round(time.perf_counter() - t0, 3)
    return result


def _exists(url: str) -> bool:
    fs, path = url_to_fs(url)
    return fs.exists(path)


def _size(url: str) -> int:
    fs, path = url_to_fs(url)
    try:
        return int(fs.size(path) or 0)
    except OSError:
        return 0


def _progress_bar(total: int, enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc="extract", dynamic_ncols=True)


def _collect(rel, stats, err, done, result, bar) -> None:
    if err is not None:
        result.failed.append((rel, err))
        log.error("%s: %s", rel, err)
        return
    done[rel] = stats
    if bar is not None:
        bar.set_postfix(pages=sum(s["pages"] for s in done.values()), refresh=False)
    for item in stats["damaged"]:
        log.warning("%s @%s: %s", rel, item["offset"], item["reason"])


def _run_parallel(todo, opts, workers, done, result, bar) -> None:
    import multiprocessing as mp
    import queue as queue_mod
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    ctx = mp.get_context("spawn")
    with ctx.Manager() as manager, ProcessPoolExecutor(workers, mp_context=ctx) as pool:
        q = manager.Queue() if bar is not None else None
        pending = {pool.submit(_job, wf, o, s, opts, None if q is None else q.put) for wf, o, s in todo}
        while pending:
            finished, pending = wait(pending, timeout=0.25, return_when=FIRST_COMPLETED)
            if q is not None:
                with contextlib.suppress(queue_mod.Empty):
                    while True:
                        bar.update(q.get_nowait())
            for fut in finished:
                _collect(*fut.result(), done, result, bar)


def format_summary(result: ExtractResult) -> str:
    t = result.totals()
    mb = t["input_bytes"] / 1e6
    secs = max(result.seconds, 1e-9)
    lines = [
        f"extract: {t['files']} files ({len(result.skipped)} already done), {t['records']} records, "
        f"{t['pages']} pages written in {result.seconds:.1f}s ({mb / secs:.1f} MB/s)",
        f"  skipped: {t['skipped_non_html']} non-HTML, {t['skipped_oversized']} oversized, "
        f"{t['empty_extraction']} empty extractions; {t['errors']} record errors",
    ]
    if t["damaged"]:
        lines.append(f"  {t['damaged']} damaged records/regions in {t['files_damaged']} files (see 'damaged' in stats/*.json)")
    for rel, err in result.failed:
        lines.append(f"  FAILED {rel}: {err}")
    return "\n".join(lines)
