"""The demo's raw crawl: its pages written back as the HTTP responses of a WARC file, as Common Crawl holds them,
so the experiment starts where DCLM does, at text extraction.

Each page becomes an HTML document (title, a nav of its menu-like lines, one <p> per other line); a share of
records are not HTML at all (PDFs, images) or are HTML with no text, which extraction must drop.
"""

from __future__ import annotations

import gzip
import html
import io
import random

_NAV_MAX_WORDS = 3


def page_html(text: str, title: str) -> bytes:
    lines = [ln for ln in text.split("\n")]
    nav = [ln for ln in lines[:6] if 0 < len(ln.split()) <= _NAV_MAX_WORDS]
    body = "".join(f"<p>{html.escape(ln)}</p>\n" if ln.strip() else "<br>\n" for ln in lines)
    links = "".join(f'<a href="/{html.escape(x.lower())}">{html.escape(x)}</a> ' for x in nav)
    return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title></head>\n"
            f"<body><nav>{links}</nav>\n<article>\n{body}</article></body></html>\n").encode()


def _record(headers: dict[str, str], payload: bytes) -> bytes:
    head = "WARC/1.0\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    head += f"Content-Length: {len(payload)}\r\n\r\n"
    # one gzip member per record, as Common Crawl writes them
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as g:
        g.write(head.encode() + payload + b"\r\n\r\n")
    return buf.getvalue()


def _http(body: bytes, content_type: str) -> bytes:
    return (f"HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body


def write_warc(path: str, pages: list[dict], seed: int, non_html: float = 0.03, empty: float = 0.01) -> dict:
    """Write `pages` (with some non-HTML and empty records mixed in) as one .warc.gz; returns the counts."""
    from dclm.io import atomic_open

    rng = random.Random(f"warc:{seed}:{path}")
    counts = {"pages": 0, "non_html": 0, "empty": 0}
    out = [_record({"WARC-Type": "warcinfo", "WARC-Record-ID": f"<urn:uuid:{_uuid(rng)}>",
                    "WARC-Date": "2019-04-18T00:00:00Z", "Content-Type": "application/warc-fields"},
                   b"software: dclm demo\r\nformat: WARC File Format 1.0\r\n")]
    for i, page in enumerate(pages):
        meta = page.get("metadata", {})
        url = page["url"]
        date = meta.get("WARC-Date", "2019-04-18T00:00:00Z")
        r = rng.random()
        if r < non_html:
            kind, body = "application/pdf", b"%PDF-1.4\n" + bytes(rng.randrange(256) for _ in range(200))
            counts["non_html"] += 1
        elif r < non_html + empty:
            kind, body = "text/html; charset=utf-8", b"<html><head></head><body></body></html>"
            counts["empty"] += 1
        else:
            kind, body = "text/html; charset=utf-8", page_html(page["text"], page["text"].split("\n")[0][:80])
            counts["pages"] += 1
        out.append(_record({"WARC-Type": "response", "WARC-Record-ID": f"<urn:uuid:{_uuid(rng)}>",
                            "WARC-Date": date, "WARC-Target-URI": url,
                            "Content-Type": "application/http; msgtype=response"}, _http(body, kind)))
    with atomic_open(path, "wb") as f:
        f.write(b"".join(out))
    return counts


def _uuid(rng: random.Random) -> str:
    import uuid

    return str(uuid.UUID(int=rng.getrandbits(128), version=4))
