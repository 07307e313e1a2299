"""Reading WARC/WET records with fastwarc, surviving damaged files.

fastwarc stops at the first unparseable record (OSError) and, for a `.gz` file cut short, simply ends
early without an error. `iter_records` turns both into reported issues and keeps going: after damage it
scans forward for the next record start (a gzip member header in compressed files, a `WARC/1.` line in
plain ones) and resumes there, and at the end of a gzip file it checks that the last member is complete.
A record whose header lacks WARC-Type/Content-Length, or whose block is shorter than its Content-Length,
is reported and skipped.
"""

from __future__ import annotations

import posixpath
import re
import zlib
from dataclasses import dataclass
from typing import Callable, Iterator

from dclm.errors import DclmError
from dclm.io.pages import url_to_fs

# WARC and WET names as Common Crawl and common writers produce them, with optional compression
_WARC_NAME = re.compile(r"\.(?:warc|wet|warc\.wet)(?:\.gz|\.zst|\.zstd|\.lz4)?$", re.IGNORECASE)
_COMPRESSION = re.compile(r"\.(?:gz|zst|zstd|lz4)$", re.IGNORECASE)
_GZIP_MAGIC = b"\x1f\x8b\x08"
_WARC_MAGIC = b"WARC/1."
_SCAN_CHUNK = 1 << 20

IssueFn = Callable[[int, str, dict], None]


def is_warc_name(path: str) -> bool:
    return bool(_WARC_NAME.search(path))


def strip_compression(rel: str) -> str:
    """'a/b.warc.gz' -> 'a/b.warc' (the stem output names are built from, as DCLM does)."""
    return _COMPRESSION.sub("", rel)


@dataclass(frozen=True, order=True)
class WarcFile:
    rel: str  # path relative to the input root; output paths mirror it
    url: str


def list_warcs(inputs: list[str]) -> list[WarcFile]:
    """Every WARC/WET file named by `inputs` (files, or directories walked recursively), sorted by `rel`."""
    found: dict[str, WarcFile] = {}
    for inp in inputs:
        fs, root = url_to_fs(inp)
        if not fs.exists(root):
            raise DclmError(f"input not found: {inp}")
        prefix = inp[: len(inp) - len(inp.split("://", 1)[-1])] if "://" in inp and not inp.startswith("file://") else ""
        if fs.isdir(root):
            base = root.rstrip("/") or "/"
            for p in sorted(fs.find(root)):
                if is_warc_name(p):
                    rel = posixpath.relpath(p, base)
                    found.setdefault(rel, WarcFile(rel, prefix + p if prefix else p))
        else:
            if not is_warc_name(root):
                raise DclmError(f"not a WARC/WET file (expected .warc, .warc.gz, .warc.wet.gz, ...): {inp}")
            rel = posixpath.basename(root)
            found.setdefault(rel, WarcFile(rel, inp if prefix else root))
    return sorted(found.values())


@dataclass
class RawRecord:
    offset: int  # where the record (its gzip member, in a .gz file) starts in the file
    type: str  # WARC-Type, lower-case
    headers: dict[str, str]  # every WARC header, in file order
    length: int  # the declared Content-Length
    block: bytes | None  # None when not read (an unwanted type or longer than the byte limit)


def _scan(f, start: int, needle: bytes) -> int | None:
    """Offset just past the newline of the next `needle` at or after `start - 1`, or None at EOF.

    Needles start with a newline for plain WARC (`\\nWARC/1.`), so a match is at a line start; gzip
    member headers have no such anchor and the needle is the bare magic (see `_needle`)."""
    skip = 1 if needle.startswith(b"\n") else 0
    pos = max(start - skip, 0)
    f.seek(pos)
    tail = b""
    while True:
        chunk = f.read(_SCAN_CHUNK)
        if not chunk:
            return None
        buf = tail + chunk
        i = buf.find(needle)
        if i >= 0:
            return pos - len(tail) + i + skip
        tail = buf[-(len(needle) - 1):]
        pos += len(chunk)


def _needle(gz: bool) -> bytes:
    return _GZIP_MAGIC if gz else b"\n" + _WARC_MAGIC


def _gzip_tail_problem(f, start: int) -> tuple[int, str] | None:
    """Decode the gzip members from `start` to EOF; (member offset, reason) if one is corrupt or cut short."""
    f.seek(start)
    member = start
    d = zlib.decompressobj(31)
    consumed = 0
    while True:
        chunk = f.read(_SCAN_CHUNK)
        if not chunk:
            break
        data = chunk
        while data:
            try:
                d.decompress(data)
            except zlib.error as e:
                return member, f"corrupt gzip member at offset {member} ({e})"
            if d.eof:
                used = len(data) - len(d.unused_data)
                consumed += used
                member = start + consumed
                data = d.unused_data
                d = zlib.decompressobj(31)
            else:
                consumed += len(data)
                data = b""
    if consumed and member != start + consumed:
        return member, f"truncated gzip stream: the file ends inside the member starting at offset {member}"
    return None


def iter_records(url: str, max_bytes: int, wanted: frozenset[str], on_issue: IssueFn) -> Iterator[RawRecord]:
    """Every record of one WARC/WET file, in order. Blocks are read only for `wanted` types within `max_bytes`.

    Damage is reported through `on_issue(offset, reason, headers)` and never raises, except when the file
    cannot be opened at all (OSError)."""
    from fastwarc.warc import ArchiveIterator

    fs, path = url_to_fs(url)
    reported: set[int] = set()

    def report(offset: int, reason: str, headers: dict) -> None:
        if offset not in reported:  # a record cut short is reported once, not again by the gzip check
            reported.add(offset)
            on_issue(offset, reason, headers)

    with fs.open(path, "rb") as f:
        gz = f.read(3) == _GZIP_MAGIC
        needle = _needle(gz)
        start: int | None = 0
        resyncing = False  # True while trying candidate offsets after damage: their failures are not news
        pending: tuple[int, str] | None = None  # damage reported once we know whether reading resumed
        while start is not None:
            f.seek(start)
            last: int | None = None
            try:
                for rec in ArchiveIterator(f, parse_http=False, fsspec_args=False):
                    last = start + rec.stream_pos
                    if pending is not None:
                        report(pending[0], f"{pending[1]}; resumed at offset {last}", {})
                        pending = None
                    resyncing = False
                    raw = _read(rec, last, max_bytes, wanted, report)
                    if raw is not None:
                        yield raw
            except OSError as e:
                at = last if last is not None else start
                if not resyncing:
                    pending = (at, f"unreadable WARC data after offset {at} ({e})")
                resyncing = True
                start = _scan(f, at + 1, needle)
                continue
            if resyncing and last is None:  # this candidate offset held no record: try the next one
                start = _scan(f, start + 1, needle)
                continue
            if gz:
                problem = _gzip_tail_problem(f, last if last is not None else start)
                if problem is not None:
                    offset, reason = problem
                    report(offset, reason, {})
                    resyncing = True
                    start = _scan(f, offset + 1, needle)
                    continue
            start = None
        if pending is not None:
            report(pending[0], f"{pending[1]}; nothing readable follows (truncated file?)", {})


def _read(rec, offset: int, max_bytes: int, wanted: frozenset[str], on_issue: IssueFn) -> RawRecord | None:
    headers = dict(rec.headers.items())
    wtype = headers.get("WARC-Type")
    declared = headers.get("Content-Length", "")
    if not wtype or not declared.strip().isdigit():
        on_issue(offset, "damaged or truncated record header (no WARC-Type or Content-Length); record skipped", headers)
        return None
    wtype, length = wtype.strip().lower(), int(declared)
    if wtype not in wanted or (length > max_bytes and wtype != "warcinfo"):
        return RawRecord(offset, wtype, headers, length, None)
    block = rec.reader.read()
    if len(block) < length:
        on_issue(offset, f"truncated record: {len(block)} of {length} bytes", headers)
        return None
    return RawRecord(offset, wtype, headers, length, block)
