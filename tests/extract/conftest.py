"""WARC/WET files built with warcio for the extraction tests: every charset, encoding and damage case."""

import gzip
import io
import zlib

import pytest

PARA = ("The quick brown fox jumps over the lazy dog while the committee reviews the annual budget report. "
        "Members discussed the proposal at length and agreed to meet again next week to finalise the plan. ")


def html(body_text: str, head: str = "") -> str:
    return (f"<!DOCTYPE html><html><head>{head}<title>t</title></head><body><nav>Home | About | Contact</nav>"
            f"<article><h1>Heading</h1><p>{body_text}</p><p>{PARA}</p></article></body></html>")


# a record is (WARC-Type, url, HTTP status line or None, HTTP headers or None, payload bytes)
def response(url, body: bytes, headers, status="200 OK"):
    return ("response", url, status, headers, body)


def standard_records(big_body_bytes: int = 6000):
    br = pytest.importorskip("brotli")
    utf8 = html("Café crème brûlée on the menu today. " + PARA).encode("utf-8")
    latin1 = html("Ça coûte très cher à Paris. " + PARA).encode("latin-1")
    sjis = html("日本語のテキストです。" + PARA, head='<meta http-equiv="Content-Type" content="text/html; charset=Shift_JIS">').encode("shift_jis")
    gz_page = html("Compressed with gzip. " + PARA).encode()
    br_page = html("Compressed with brotli. " + PARA).encode()
    deflate_page = html("Compressed with raw deflate. " + PARA).encode()
    co = zlib.compressobj(6, zlib.DEFLATED, -15)
    raw_deflate = co.compress(deflate_page) + co.flush()
    return [
        ("request", "http://ex.com/utf8", None, None, b"GET /utf8 HTTP/1.1\r\nHost: ex.com\r\n\r\n"),
        response("http://ex.com/utf8", utf8, [("Content-Type", "text/html; charset=UTF-8")]),
        ("metadata", "http://ex.com/utf8", None, None, b"fetchTimeMs: 12\r\n"),
        response("http://ex.com/latin1", latin1, [("Content-Type", "text/html; charset=ISO-8859-1")]),
        response("http://ex.com/sjis", sjis, [("Content-Type", "text/html")]),
        response("http://ex.com/gzip", gzip.compress(gz_page, mtime=0),
                 [("Content-Type", "text/html; charset=utf-8"), ("Content-Encoding", "gzip")]),
        response("http://ex.com/br", br.compress(br_page), [("Content-Type", "text/html"), ("Content-Encoding", "br")]),
        response("http://ex.com/deflate", raw_deflate, [("Content-Type", "text/html"), ("Content-Encoding", "deflate")]),
        response("http://ex.com/sniffed", html("No content type at all. " + PARA).encode(), []),
        response("http://ex.com/logo.png", b"\x89PNG\r\n\x1a\n" + bytes(200), [("Content-Type", "image/png")]),
        response("http://ex.com/doc.pdf", b"%PDF-1.4\n" + bytes(300), [("Content-Type", "application/pdf")]),
        response("http://ex.com/big", html("x " * big_body_bytes).encode(), [("Content-Type", "text/html")]),
        response("http://ex.com/empty", b"<html><body></body></html>", [("Content-Type", "text/html")]),
        response("http://ex.com/badgzip", b"\x1f\x8b\x08\x00garbage-not-gzip",
                 [("Content-Type", "text/html"), ("Content-Encoding", "gzip")]),
        ("revisit", "http://ex.com/utf8", None, None, b""),
    ]


def write_warc(path, records, gz: bool, warcinfo: dict | None = None) -> None:
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    with open(path, "wb") as f:
        w = WARCWriter(f, gzip=gz)
        w.write_record(w.create_warcinfo_record(path.name, warcinfo or {"software": "dclm-tests", "isPartOf": "TEST-CRAWL"}))
        for wtype, url, status, headers, body in records:
            if wtype == "response":
                http = StatusAndHeaders(status, headers, protocol="HTTP/1.1")
                rec = w.create_warc_record(url, "response", payload=io.BytesIO(body), http_headers=http)
            elif wtype == "conversion":
                rec = w.create_warc_record(url, "conversion", payload=io.BytesIO(body),
                                           warc_content_type="text/plain")
            else:
                rec = w.create_warc_record(url, wtype, payload=io.BytesIO(body), warc_content_type="application/octet-stream")
            w.write_record(rec)


@pytest.fixture
def warc_records():
    return standard_records()


@pytest.fixture
def make_warc(tmp_path):
    def make(name: str, records=None, gz: bool = True, warcinfo: dict | None = None):
        path = tmp_path / "in" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        write_warc(path, standard_records() if records is None else records, gz, warcinfo)
        return path

    return make
