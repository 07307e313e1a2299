"""Page shards: one JSON object per line (optionally gzip/zstd compressed) or parquet.

Reading is streaming and never silently loses a line: a line that is not valid UTF-8, not JSON, not an
object, or lacks a string `text` is handed to the caller's `on_reject(lineno, reason, raw)`; a shard
whose compressed stream is truncated raises `ShardFailed`. Writing is atomic (temp file + rename) and
deterministic (gzip without timestamps), so reruns produce identical bytes.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import posixpath
import uuid
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

import fsspec
import orjson

from dclm.errors import DclmError, ShardFailed

PAGE_SUFFIXES = (".jsonl", ".jsonl.gz", ".jsonl.zst", ".jsonl.zstd", ".parquet")
_READ_CHUNK = 1 << 20

RejectFn = Callable[[int, str, Any], None]


def shard_suffix(path: str) -> str | None:
    """The page-shard suffix of `path` (e.g. '.jsonl.gz'), or None if it is not a page shard."""
    for suffix in sorted(PAGE_SUFFIXES, key=len, reverse=True):
        if path.endswith(suffix):
            return suffix
    return None


@dataclass(frozen=True, order=True)
class Shard:
    """One input file: `rel` is its path relative to the input root, used to mirror output paths."""

    rel: str
    url: str

    @property
    def suffix(self) -> str:
        return shard_suffix(self.url) or ""

    @property
    def stem(self) -> str:
        """`rel` without its shard suffix (e.g. 'CC/part-0001')."""
        return self.rel[: len(self.rel) - len(self.suffix)]


def url_to_fs(url: str):
    """(filesystem, path) for a local path or fsspec URL; a bad URL is a one-line error."""
    try:
        fs, path = fsspec.core.url_to_fs(url)
    except (ValueError, ImportError) as e:
        raise DclmError(f"cannot open {url}: {e}") from None
    return fs, path


def _join(url: str, path: str, fs) -> str:
    protocol = fs.protocol[0] if isinstance(fs.protocol, (tuple, list)) else fs.protocol
    if "://" in url:
        return f"{protocol}://{path.lstrip('/')}" if protocol != "file" else path
    return path


# bookkeeping folders the shared runtime writes beside a stage's outputs (src/dclm/runtime/rejects.py,
# resume.py): never input pages, even when a stage's output folder is the next stage's input
RUNTIME_DIRS = ("_rejects", "_done")


def list_shards(inputs: str | Iterable[str]) -> list[Shard]:
    """Every page shard under `inputs` (files or directories, recursive, skipping the runtime's `_rejects/`
    and `_done/` folders), sorted by relative path."""
    if isinstance(inputs, str):
        inputs = [inputs]
    shards: dict[str, Shard] = {}
    for inp in inputs:
        fs, root = url_to_fs(inp)
        if not fs.exists(root):
            raise DclmError(f"input not found: {inp}")
        if fs.isdir(root):
            found = [p for p in fs.find(root) if shard_suffix(p)]
            for p in found:
                rel = posixpath.relpath(p, root.rstrip("/") or "/") if p != root else posixpath.basename(p)
                if rel.split("/", 1)[0] in RUNTIME_DIRS:
                    continue
                _add(shards, Shard(rel=rel, url=_join(inp, p, fs)))
        else:
            if not shard_suffix(root):
                raise DclmError(f"not a page shard (expected one of {', '.join(PAGE_SUFFIXES)}): {inp}")
            _add(shards, Shard(rel=posixpath.basename(root), url=_join(inp, root, fs)))
    return sorted(shards.values())


def _add(shards: dict[str, Shard], shard: Shard) -> None:
    """Outputs mirror relative paths, so two inputs with the same one would overwrite each other."""
    other = shards.get(shard.rel)
    if other is not None and other.url != shard.url:
        raise DclmError(f"inputs {other.url} and {shard.url} have the same relative path {shard.rel!r}; "
                        "their outputs would collide (pass their common parent directory instead)")
    shards[shard.rel] = shard


def _zstd_chunks(raw, url: str) -> Iterator[bytes]:
    import zstandard

    dctx = zstandard.ZstdDecompressor()
    dobj = dctx.decompressobj()
    fed = False
    while True:
        chunk = raw.read(_READ_CHUNK)
        if not chunk:
            break
        while chunk:
            fed = True
            try:
                out = dobj.decompress(chunk)
            except zstandard.ZstdError as e:
                raise ShardFailed(f"{url}: corrupt zstd stream ({e})") from None
            if out:
                yield out
            if dobj.eof:
                chunk = dobj.unused_data
                dobj = dctx.decompressobj()
                fed = False
            else:
                chunk = b""
    if fed and not dobj.eof:
        raise ShardFailed(f"{url}: truncated zstd stream (file ended mid-frame)")


def _raw_chunks(url: str) -> Iterator[bytes]:
    fs, path = url_to_fs(url)
    try:
        f = fs.open(path, "rb")
    except FileNotFoundError:
        raise ShardFailed(f"{url}: file not found") from None
    except (PermissionError, IsADirectoryError, OSError) as e:
        raise ShardFailed(f"{url}: cannot read ({e.__class__.__name__}: {e})") from None
    with f:
        if url.endswith(".gz"):
            try:
                with gzip.GzipFile(fileobj=f) as gz:
                    while chunk := gz.read(_READ_CHUNK):
                        yield chunk
            except EOFError:
                raise ShardFailed(f"{url}: truncated gzip stream (file ended before the end-of-stream marker)") from None
            except (OSError, gzip.BadGzipFile) as e:
                raise ShardFailed(f"{url}: corrupt gzip stream ({e})") from None
        elif url.endswith((".zst", ".zstd")):
            yield from _zstd_chunks(f, url)
        else:
            try:
                while chunk := f.read(_READ_CHUNK):
                    yield chunk
            except OSError as e:
                raise ShardFailed(f"{url}: read error ({e})") from None


def _iter_lines(url: str) -> Iterator[tuple[int, bytes]]:
    lineno = 0
    tail = b""
    for chunk in _raw_chunks(url):
        buf = tail + chunk
        lines = buf.split(b"\n")
        tail = lines.pop()
        for line in lines:
            lineno += 1
            yield lineno, line
    if tail:
        yield lineno + 1, tail


def _parse_line(raw: bytes, text_key: str | None) -> tuple[Any, str | None]:
    """(page, None) or (raw-ish value, reason)."""
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as e:
        return raw.decode("utf-8", "backslashreplace"), f"invalid UTF-8 at byte {e.start}"
    try:
        page = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        return raw.decode("utf-8"), f"malformed JSON: {e}"
    if not isinstance(page, dict):
        return page, f"not a JSON object (got {type(page).__name__})"
    if text_key is not None:
        if text_key not in page:
            return page, f"missing '{text_key}'"
        if not isinstance(page[text_key], (str, list)):
            return page, f"'{text_key}' is {type(page[text_key]).__name__}, not a string"
    return page, None


def iter_pages(url: str, on_reject: RejectFn | None = None, text_key: str | None = "text") -> Iterator[dict]:
    """Stream the pages of one shard. Bad lines go to `on_reject(lineno, reason, raw)`; blank lines are skipped.

    `text_key=None` skips the text check (raw DCLM-Pool shards may keep content under another key).
    Without `on_reject`, a bad line raises `DclmError` naming file and line.
    """
    if url.endswith(".parquet"):
        yield from _iter_parquet(url, on_reject, text_key)
        return
    for lineno, raw in _iter_lines(url):
        if not raw.strip():
            continue
        page, reason = _parse_line(raw, text_key)
        if reason is None:
            yield page
        elif on_reject is None:
            raise DclmError(f"{url}:{lineno}: {reason}")
        else:
            on_reject(lineno, reason, page)


def _iter_parquet(url: str, on_reject: RejectFn | None, text_key: str | None) -> Iterator[dict]:
    import pyarrow.parquet as pq

    fs, path = url_to_fs(url)
    try:
        with fs.open(path, "rb") as f:
            pf = pq.ParquetFile(f)
            row = 0
            for batch in pf.iter_batches(batch_size=4096):
                for page in batch.to_pylist():
                    row += 1
                    if text_key is not None and not isinstance(page.get(text_key), (str, list)):
                        reason = f"missing '{text_key}'" if page.get(text_key) is None else f"'{text_key}' is not a string"
                        if on_reject is None:
                            raise DclmError(f"{url}: row {row}: {reason}")
                        on_reject(row, reason, page)
                        continue
                    yield page
    except FileNotFoundError:
        raise ShardFailed(f"{url}: file not found") from None
    except DclmError:
        raise
    except Exception as e:  # pyarrow raises many types for a damaged file
        raise ShardFailed(f"{url}: unreadable parquet ({e.__class__.__name__}: {e})") from None


def read_pages(url: str, on_reject: RejectFn | None = None, text_key: str | None = "text") -> list[dict]:
    return list(iter_pages(url, on_reject, text_key))


@contextlib.contextmanager
def atomic_open(url: str, mode: str = "wb"):
    """Open `url` for writing; the file appears under its final name only if the block succeeds."""
    fs, path = url_to_fs(url)
    parent = posixpath.dirname(path)
    if parent:
        fs.makedirs(parent, exist_ok=True)
    tmp = posixpath.join(parent, f".tmp-{uuid.uuid4().hex}-{posixpath.basename(path)}")
    local = getattr(fs, "protocol", None) in ("file", ("file", "local")) or fs.__class__.__name__ == "LocalFileSystem"
    try:
        with fs.open(tmp, mode) as f:
            yield f
            if local:
                f.flush()
                os.fsync(f.fileno())
        if local:
            os.replace(tmp, path)
        else:
            fs.mv(tmp, path)
    except BaseException:
        with contextlib.suppress(Exception):
            fs.rm(tmp)
        raise


def dumps_page(page: Any) -> bytes:
    return orjson.dumps(page, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS)


def encode_jsonl(pages: Iterable[Any]) -> bytes:
    return b"".join(dumps_page(p) + b"\n" for p in pages)


def encode_pages(pages: list[dict], url: str) -> bytes:
    """The bytes `write_pages` would write for `pages` at `url` (format chosen by its suffix)."""
    if url.endswith(".parquet"):
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            table = pa.Table.from_pylist(pages) if pages else pa.table({})
        except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
            raise DclmError(f"{url}: pages do not fit one parquet schema ({e}); write .jsonl.zst instead") from None
        buf = io.BytesIO()
        pq.write_table(table, buf)
        return buf.getvalue()
    return compress(encode_jsonl(pages), url)


def write_bytes(url: str, data: bytes) -> None:
    with atomic_open(url, "wb") as f:
        f.write(data)


def write_pages(url: str, pages: Iterable[dict]) -> int:
    """Write pages atomically in the format the suffix names; returns the number written."""
    pages = list(pages)
    write_bytes(url, encode_pages(pages, url))
    return len(pages)


def compress(data: bytes, url: str) -> bytes:
    """Compress by the suffix of `url`, deterministically (no timestamps or file names)."""
    if url.endswith(".gz"):
        return gzip.compress(data, compresslevel=6, mtime=0)
    if url.endswith((".zst", ".zstd")):
        import zstandard

        return zstandard.ZstdCompressor(level=3).compress(data)
    return data
