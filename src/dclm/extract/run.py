"""`dclm extract`: WARC/WET files to DCLM-Pool page shards, one output shard per input file.

A page is `{"text", "url", "metadata": {every WARC header}, "warcinfo": <the file's warcinfo block>}`:
DCLM-Pool's layout plus `url` (= WARC-Target-URI, which DCLM's `move_url_modifier` would set anyway).
`response` records go through HTTP decoding (transfer/content encoding, charset) and an HTML extractor;
`conversion` records (WET) already hold text and are kept as they are, stripped, as DCLM did.

Per input `<rel>` the run writes `OUTPUT/<rel minus compression>.jsonl.zst`,
`OUTPUT/stats/<rel minus compression>.json` and, when a record failed or a region of the file was damaged,
`OUTPUT/_rejects/<rel>.jsonl` (the runtime's reject layout; `record` holds the record's offset, id and url),
each atomically. A file whose output and stats both exist
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

import orjson

from dclm.errors import DclmError
from dclm.extract.decode import HTML_TYPES, DecodeError, TooLarge, decode_body, looks_like_html, parse_http, to_text
from dclm.extract.extractors import get_extractor
from dclm.extract.warc import RawRecord, WarcFile, iter_records, list_warcs, strip_compression
from dclm.io.pages import atomic_open, url_to_fs
from dclm.extract.config import COMPRESSIONS, ExtractConfig
from dclm.runtime.rejects import RejectLog

log = logging.getLogger(__name__)

_WANTED = frozenset({"warcinfo", "response", "conversion"})
_WRITE_BATCH = 1 << 20  # bytes of JSON lines handed to the compressor at once


def output_paths(output: str, wf: WarcFile, compression: str) -> tuple[str, str]:
    stem = strip_compression(wf.rel)
    return posixpath.join(output, stem + COMPRESSIONS[compression]), posixpath.join(output, "stats", stem + ".json")


def _new_stats(wf: WarcFile, out_url: str, opts: ExtractConfig) -> dict:
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

    def __init__(self, wf: WarcFile, out_url: str, opts: ExtractConfig, rejects: RejectLog):
        self.opts = opts
        self.rejects = rejects
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
        entry = self._entry(offset, reason, headers)
        self.stats["damaged"].append(entry)
        self.rejects.add(reason, {k: v for k, v in entry.items() if k != "reason"}, step="read")

    def fail(self, raw: RawRecord, reason: str) -> None:
        entry = self._entry(raw.offset, reason, raw.headers)
        self.stats["errors"] += 1
        self.stats["error_records"].append(entry)
        self.rejects.add(reason, {k: v for k, v in entry.items() if k != "reason"}, step="extract")

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


def extract_file(wf: WarcFile, out_url: str, stats_url: str, opts: ExtractConfig, rejects_root: str) -> dict:
    """Extract one WARC/WET file; returns its stats (also written to `stats_url`), its failed records and
    damaged regions go to the reject log under `rejects_root`."""
    t0 = time.perf_counter()
    rejects = RejectLog(rejects_root, wf.rel, "extract", wf.url)
    job = _FileExtraction(wf, out_url, opts, rejects)
    stats = job.stats
    fs, path = url_to_fs(wf.url)
    try:
        stats["input_bytes"] = int(fs.size(path) or 0)
    except OSError as e:
        raise DclmError(f"{wf.url}: cannot read ({e})") from None
    warcinfo: str | None = None
    with atomic_open(out_url, "wb") as f:
        writer = _Writer(f, opts.compression)
        try:
            for raw in iter_records(wf.url, opts.max_record_bytes, _WANTED, job.damaged):
                stats["records"] += 1
                job.by_type[raw.type] += 1
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
    rejects.flush()
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


@dataclass(frozen=True)
class _Job:
    wf: WarcFile
    out_url: str
    stats_url: str
    opts: ExtractConfig
    rejects_root: str


def _job(job: _Job) -> tuple[str, dict | None, str | None]:
    """(rel, stats, None) or (rel, None, error) for a file that could not be read at all."""
    try:
        return job.wf.rel, extract_file(job.wf, job.out_url, job.stats_url, job.opts, job.rejects_root), None
    except DclmError as e:
        return job.wf.rel, None, str(e)
    except OSError as e:
        return job.wf.rel, None, f"{e.__class__.__name__}: {e}"


def _load_stats(stats_url: str) -> dict | None:
    fs, path = url_to_fs(stats_url)
    try:
        with fs.open(path, "rb") as f:
            return orjson.loads(f.read())
    except (OSError, orjson.JSONDecodeError):
        return None


def run_extract(config: ExtractConfig) -> ExtractResult:
    """Extract every WARC/WET file under `config.inputs` into `config.output` (see the module docstring)."""
    t0 = time.perf_counter()
    opts, output, overwrite, compression = config, config.output, config.overwrite, config.compression
    inputs = list(config.inputs)
    files = list_warcs(inputs)
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
        todo.append(_Job(wf, out_url, stats_url, opts, output))
    config.run(_job, todo, desc="extract", unit="B", sizes=[_size(j.wf.url) for j in todo],
               on_result=lambda job, r: _collect(*r, done, result))
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


def _collect(rel, stats, err, done, result) -> None:
    if err is not None:
        result.failed.append((rel, err))
        log.error("%s: %s", rel, err)
        return
    done[rel] = stats
    for item in stats["damaged"]:
        log.warning("%s @%s: %s", rel, item["offset"], item["reason"])


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
