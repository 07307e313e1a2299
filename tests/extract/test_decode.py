import gzip
import zlib

import pytest

from dclm.extract.decode import (
    DecodeError,
    TooLarge,
    decode_body,
    looks_like_html,
    normalize_charset,
    parse_http,
    sniff_meta_charset,
    to_text,
)

pytest.importorskip("resiliparse")


@pytest.mark.parametrize("label,expected", [
    ("UTF-8", "utf-8"), ("utf8", "utf-8"), ("ISO-8859-1", "cp1252"), ("latin-1", "cp1252"), ("ascii", "cp1252"),
    ("Shift_JIS", "shift_jis"), ("gb2312", "gbk"), ("windows-1251", "cp1251"), ("koi8-r", "koi8-r"),
    ("utf-16", "utf-8"), ("bogus-charset", None), ("", None), (None, None),
])
def test_normalize_charset_follows_whatwg(label, expected):
    assert normalize_charset(label) == expected


def test_parse_http_lf_only_and_repeated_headers():
    r = parse_http(b"HTTP/1.1 404 Not Found\nContent-Type: text/html; Charset=\"EUC-JP\"\nX: 1\nX: 2\n\n<html>")
    assert r.status == 404 and r.content_type == "text/html" and r.charset == "EUC-JP"
    assert r.headers["x"] == "2" and r.body == b"<html>"
    with pytest.raises(DecodeError):
        parse_http(b"not http at all")


def _resp(body, **headers):
    head = "".join(f"{k.replace('_', '-')}: {v}\r\n" for k, v in headers.items())
    return parse_http(f"HTTP/1.1 200 OK\r\n{head}\r\n".encode() + body)


def test_content_encodings():
    page = b"<html>" + b"x" * 1000 + b"</html>"
    assert decode_body(_resp(gzip.compress(page), Content_Encoding="gzip"), 1 << 20) == page
    assert decode_body(_resp(zlib.compress(page), Content_Encoding="deflate"), 1 << 20) == page
    raw = zlib.compressobj(6, zlib.DEFLATED, -15)
    assert decode_body(_resp(raw.compress(page) + raw.flush(), Content_Encoding="deflate"), 1 << 20) == page
    assert decode_body(_resp(page, Content_Encoding="identity"), 1 << 20) == page
    with pytest.raises(TooLarge):  # a decompression bomb stops at the limit
        decode_body(_resp(gzip.compress(b"\0" * 10_000_000), Content_Encoding="gzip"), 1 << 20)
    with pytest.raises(DecodeError):
        decode_body(_resp(page, Content_Encoding="compress"), 1 << 20)


def test_chunked_transfer_encoding():
    chunked = b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n"
    assert decode_body(_resp(chunked, Transfer_Encoding="chunked"), 1 << 20) == b"hello world"
    # stored de-chunked although the header still says chunked: kept as is
    assert decode_body(_resp(b"<html>hi</html>", Transfer_Encoding="chunked"), 1 << 20) == b"<html>hi</html>"


def test_charset_precedence():
    sj = '<meta charset="shift_jis">日本語'.encode("shift_jis")
    assert to_text(sj, None) == ('<meta charset="shift_jis">日本語', "meta")
    assert to_text("é".encode("latin-1"), "iso-8859-1") == ("é", "http")
    assert to_text("\ufeffhé".encode("utf-8"), "iso-8859-1") == ("hé", "bom")  # BOM beats the header
    assert to_text("hé".encode("utf-8"), None) == ("hé", "utf-8")
    # a wrong declaration that valid UTF-8 contradicts loses to UTF-8
    assert to_text("“quoted”".encode("utf-8"), "shift_jis")[0] == "“quoted”"
    text, how = to_text(("Ceci est un texte français assez long pour la détection. " * 20).encode("cp1252"), None)
    assert how == "detected" and "français" in text


def test_meta_sniffing_and_html_sniffing():
    assert sniff_meta_charset(b'<meta http-equiv="content-type" content="text/html; charset=windows-1252">') == "cp1252"
    assert sniff_meta_charset(b" " * 2000 + b'<meta charset="utf-8">') is None  # only the first 1024 bytes count
    assert looks_like_html(b"  <!-- c --><!DOCTYPE html><html>")
    assert looks_like_html(b"<HTML><body>")
    assert not looks_like_html(b"%PDF-1.4")
    assert not looks_like_html(b'{"json": true}')
