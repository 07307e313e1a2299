"""From a WARC response block to an HTML string: HTTP headers, transfer/content encodings, and charset.

The charset is chosen in the order browsers use (HTML5 "encoding sniffing"): a byte-order mark, the
`charset=` of the HTTP Content-Type, a `<meta charset>` / `<meta http-equiv>` in the first 1024 bytes,
then strict UTF-8, then statistical detection (resiliparse's uchardet). Labels are mapped to the WHATWG
encodings (so `iso-8859-1` decodes as cp1252 and `shift_jis` as Python's shift_jis), as browsers do.
"""

from __future__ import annotations

import codecs
import re
import zlib
from dataclasses import dataclass

_HEADER_END = re.compile(rb"\r?\n\r?\n")
_META_CHARSET = re.compile(
    rb"""<meta[^>]*?(?:charset\s*=\s*["']?\s*|content\s*=\s*["'][^"'>]*?charset\s*=\s*)([A-Za-z0-9_.:\-]+)""",
    re.IGNORECASE,
)
_BOMS = ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be"))
HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
_HTML_SNIFF = re.compile(rb"^\s*(?:<!--.*?-->\s*)*<(?:!doctype\s+html|html|head|body)[\s>]", re.IGNORECASE | re.DOTALL)


class DecodeError(ValueError):
    """The HTTP block or its content encoding is damaged; the record is counted as an error."""


class TooLarge(ValueError):
    """A decompressed payload would exceed the byte limit (a likely decompression bomb)."""


@dataclass
class HttpResponse:
    status: int | None
    headers: dict[str, str]  # lower-case names; a repeated header keeps its last value
    body: bytes

    @property
    def content_type(self) -> str | None:
        ct = self.headers.get("content-type")
        return ct.split(";", 1)[0].strip().lower() or None if ct else None

    @property
    def charset(self) -> str | None:
        ct = self.headers.get("content-type") or ""
        m = re.search(r"charset\s*=\s*[\"']?([^\"';\s]+)", ct, re.IGNORECASE)
        return m.group(1) if m else None


def parse_http(block: bytes) -> HttpResponse:
    """Split an HTTP response (status line, headers, blank line, body); tolerates LF-only line ends."""
    m = _HEADER_END.search(block)
    if m is None or not block.startswith(b"HTTP/"):
        raise DecodeError("no HTTP response header")
    lines = block[: m.start()].decode("latin-1").splitlines()
    parts = lines[0].split(None, 2)
    status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return HttpResponse(status, headers, block[m.end():])


def _dechunk(body: bytes) -> bytes:
    out, pos = [], 0
    while True:
        eol = body.find(b"\n", pos)
        if eol < 0:
            raise DecodeError("truncated chunked transfer encoding")
        size_field = body[pos:eol].split(b";", 1)[0].strip()
        try:
            size = int(size_field, 16)
        except ValueError:
            raise DecodeError("bad chunk size in chunked transfer encoding") from None
        if size == 0:
            return b"".join(out)
        out.append(body[eol + 1 : eol + 1 + size])
        pos = eol + 1 + size
        if pos > len(body):
            raise DecodeError("truncated chunked transfer encoding")
        pos = body.find(b"\n", pos) + 1 or len(body)


def _inflate(data: bytes, wbits: int, limit: int) -> bytes:
    d = zlib.decompressobj(wbits)
    try:
        out = d.decompress(data, limit + 1)
    except zlib.error as e:
        raise DecodeError(f"corrupt compressed content ({e})") from None
    if len(out) > limit:
        raise TooLarge(f"decompressed content exceeds {limit} bytes")
    return out


def _brotli(data: bytes, limit: int) -> bytes:
    import brotli

    try:
        out = brotli.decompress(data)
    except brotli.error as e:
        raise DecodeError(f"corrupt brotli content ({e})") from None
    if len(out) > limit:
        raise TooLarge(f"decompressed content exceeds {limit} bytes")
    return out


def decode_body(resp: HttpResponse, limit: int) -> bytes:
    """The payload with Transfer-Encoding and Content-Encoding undone (gzip, x-gzip, deflate, br).

    Common Crawl usually stores payloads already de-chunked and renames the header to
    X-Crawler-Transfer-Encoding; a payload that still says `chunked` is de-chunked only when it parses."""
    body = resp.body
    if "chunked" in resp.headers.get("transfer-encoding", "").lower():
        try:
            body = _dechunk(body)
        except DecodeError:
            pass  # the crawler stored the payload de-chunked but kept the header
    encodings = [e.strip().lower() for e in resp.headers.get("content-encoding", "").split(",") if e.strip()]
    for enc in reversed(encodings):
        if enc in ("gzip", "x-gzip"):
            body = _inflate(body, 47, limit)  # 47 = 32 + 15: gzip or zlib header, detected automatically
        elif enc == "deflate":
            try:
                body = _inflate(body, 15, limit)  # zlib-wrapped, as the RFC says
            except DecodeError:
                body = _inflate(body, -15, limit)  # raw deflate, as many servers send
        elif enc == "br":
            body = _brotli(body, limit)
        elif enc not in ("identity", "none"):
            raise DecodeError(f"unsupported content-encoding {enc!r}")
    return body


def normalize_charset(label: str | None) -> str | None:
    """A Python codec name for a charset label, mapped to its WHATWG encoding; None if unknown."""
    if not label:
        return None
    from resiliparse.parse.encoding import map_encoding_to_html5

    label = label.strip().strip("\"'").lower()
    try:
        py_name = codecs.lookup(label).name
    except LookupError:
        py_name = None
    mapped = map_encoding_to_html5(label)
    if mapped == "utf-8" and py_name not in (None, "utf-8"):
        # resiliparse maps labels outside the WHATWG table to utf-8; try Python's canonical name instead
        mapped = map_encoding_to_html5(py_name)
        if mapped == "utf-8":
            mapped = py_name
    if mapped == "utf-8" and py_name is None and label.replace("-", "").replace("_", "") != "utf8":
        return None
    if mapped.startswith("utf-16"):  # a meta/HTTP utf-16 label on a document without a BOM means utf-8
        return "utf-8"
    try:
        codecs.lookup(mapped)
    except LookupError:
        return None
    return mapped


def sniff_meta_charset(head: bytes) -> str | None:
    m = _META_CHARSET.search(head[:1024])
    return normalize_charset(m.group(1).decode("ascii")) if m else None


def _decode_declared(body: bytes, enc: str) -> str:
    """Decode with a declared charset; a declaration that the bytes contradict loses to valid UTF-8."""
    try:
        return body.decode(enc)
    except UnicodeDecodeError:
        pass
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return body.decode(enc, "replace")


def to_text(body: bytes, http_charset: str | None) -> tuple[str, str]:
    """(text, how the charset was found: 'bom' | 'http' | 'meta' | 'utf-8' | 'detected')."""
    from resiliparse.parse.encoding import bytes_to_str, detect_encoding

    for bom, enc in _BOMS:
        if body.startswith(bom):
            return body[len(bom):].decode(enc, "replace"), "bom"
    enc = normalize_charset(http_charset)
    if enc:
        return _decode_declared(body, enc), "http"
    enc = sniff_meta_charset(body)
    if enc:
        return _decode_declared(body, enc), "meta"
    try:
        return body.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    enc = detect_encoding(body)
    return bytes_to_str(body, enc, errors="replace"), "detected"


def looks_like_html(body: bytes) -> bool:
    return bool(_HTML_SNIFF.match(body[:1024]))
