import gzip

import orjson
import pytest

from dclm.cli import main
from dclm.errors import DclmError
from dclm.extract import ExtractConfig, run_extract
from dclm.io import list_shards, read_pages

pytest.importorskip("fastwarc")
pytest.importorskip("resiliparse")

LIMIT = 8000  # the "big" record of standard_records is larger than this; all others are smaller


def extract(inputs, output, **kw):
    kw.setdefault("progress", False)
    return run_extract(ExtractConfig(inputs=inputs, output=output, **kw))


def _pages(out, name="x.warc.jsonl.zst"):
    return {p["url"]: p for p in read_pages(str(out / name))}


def _stats(out, name="x.warc.json"):
    return orjson.loads((out / "stats" / name).read_bytes())


def _accounted(s):
    pages_or_skips = s["pages"] + s["skipped_non_html"] + s["skipped_oversized"] + s["empty_extraction"] + s["errors"]
    by_type = s["records_by_type"]
    return by_type.get("response", 0) + by_type.get("conversion", 0) == pages_or_skips


@pytest.mark.parametrize("gz", [True, False])
def test_warc_to_pages(make_warc, tmp_path, gz):
    src = make_warc("x.warc.gz" if gz else "x.warc", gz=gz)
    out = tmp_path / "out"
    result = extract([str(src.parent)], str(out), max_record_bytes=LIMIT)
    assert result.ok and not result.skipped
    pages = _pages(out)
    assert sorted(pages) == sorted(f"http://ex.com/{n}" for n in ("utf8", "latin1", "sjis", "gzip", "br", "deflate", "sniffed"))
    assert "Café crème brûlée" in pages["http://ex.com/utf8"]["text"]
    assert "Ça coûte très cher à Paris" in pages["http://ex.com/latin1"]["text"]
    assert "日本語のテキストです" in pages["http://ex.com/sjis"]["text"]
    for kind in ("gzip", "brotli", "raw deflate"):
        assert any(f"Compressed with {kind}." in p["text"] for p in pages.values())
    page = pages["http://ex.com/utf8"]
    assert list(page) == ["text", "url", "metadata", "warcinfo"]
    assert page["metadata"]["WARC-Target-URI"] == "http://ex.com/utf8"
    assert page["metadata"]["WARC-Type"] == "response"
    assert {"WARC-Record-ID", "WARC-Date", "Content-Length"} <= set(page["metadata"])
    assert "isPartOf: TEST-CRAWL" in page["warcinfo"]
    # main-content extraction drops the navigation bar
    assert "Home | About" not in page["text"]

    s = _stats(out)
    assert s["pages"] == 7
    assert s["records_by_type"] == {"metadata": 1, "request": 1, "response": 12, "revisit": 1, "warcinfo": 1}
    assert s["skipped_non_html"] == 2 and s["non_html_types"] == {"image/png": 1, "application/pdf": 1}
    assert s["skipped_oversized"] == 1
    assert s["empty_extraction"] == 1
    assert s["errors"] == 1 and s["error_records"][0]["url"] == "http://ex.com/badgzip"
    assert "corrupt compressed content" in s["error_records"][0]["reason"]
    assert s["charset_source"] == {"http": 3, "meta": 1, "utf-8": 4}
    assert s["content_encoding"] == {"br": 1, "deflate": 1, "gzip": 2}
    assert s["damaged"] == []
    assert _accounted(s)


def test_wet_file(make_warc, tmp_path):
    text = "Plain text of a converted page.\nSecond line é.\n"
    recs = [("conversion", "http://ex.com/a", None, None, text.encode()),
            ("conversion", "http://ex.com/b", None, None, b"   \n"),
            ("conversion", "http://ex.com/c", None, None, "Другая страница".encode())]
    src = make_warc("CC-MAIN-1.warc.wet.gz", recs)
    out = tmp_path / "out"
    extract([str(src)], str(out))
    pages = _pages(out, "CC-MAIN-1.warc.wet.jsonl.zst")
    assert pages["http://ex.com/a"]["text"] == text.strip()  # WET text is kept as is, stripped, as DCLM did
    assert pages["http://ex.com/c"]["text"] == "Другая страница"
    assert pages["http://ex.com/a"]["metadata"]["WARC-Type"] == "conversion"
    s = _stats(out, "CC-MAIN-1.warc.wet.json")
    assert s["pages"] == 2 and s["empty_extraction"] == 1 and _accounted(s)


@pytest.mark.parametrize("member,extra,expected", [
    (5, 20, "truncated gzip stream"),  # fastwarc ends silently; the gzip tail check notices
    (9, 150, "damaged or truncated record header"),  # fastwarc yields a record with half its header
    (7, 12, "unreadable WARC data"),  # fastwarc raises on a member with no data
    (None, None, "truncated record"),  # fastwarc yields a short block
])
def test_truncated_gz_keeps_earlier_pages(make_warc, tmp_path, member, extra, expected):
    src = make_warc("x.warc.gz")
    data = src.read_bytes()
    starts = [i for i in range(len(data)) if data[i:i + 3] == b"\x1f\x8b\x08"]
    end = int(len(data) * 0.6) if member is None else starts[member] + extra
    src.write_bytes(data[:end])
    out = tmp_path / "out"
    result = extract([str(src)], str(out), max_record_bytes=LIMIT)
    assert result.ok
    s = _stats(out)
    assert 0 < s["pages"] < 7
    assert len(s["damaged"]) == 1
    reason = s["damaged"][0]["reason"]
    assert reason.startswith(expected) and "truncated" in reason
    assert len(_pages(out)) == s["pages"]


def test_truncated_plain_warc(make_warc, tmp_path):
    src = make_warc("x.warc", gz=False)
    data = src.read_bytes()
    src.write_bytes(data[: data.index(b"http://ex.com/sjis") + 2000])  # cut inside a later record's block
    out = tmp_path / "out"
    extract([str(src)], str(out), max_record_bytes=LIMIT)
    s = _stats(out)
    assert s["pages"] >= 3
    assert len(s["damaged"]) == 1 and "truncated" in s["damaged"][0]["reason"]


@pytest.mark.parametrize("gz", [True, False])
def test_corrupt_record_mid_file_resyncs(make_warc, tmp_path, gz):
    src = make_warc("x.warc.gz" if gz else "x.warc", gz=gz)
    data = bytearray(src.read_bytes())
    if gz:
        # damage the compressed bytes of the 3rd gzip member (the latin-1 response follows the metadata record)
        starts = [i for i in range(len(data)) if data[i:i + 3] == b"\x1f\x8b\x08"]
        target = starts[4]
        for k in range(target + 20, target + 60):
            data[k] ^= 0x5A
    else:
        at = bytes(data).index(b"WARC/1.", bytes(data).index(b"http://ex.com/latin1") - 400)
        data[at:at + 7] = b"GARBAGE"
    src.write_bytes(bytes(data))
    out = tmp_path / "out"
    result = extract([str(src)], str(out), max_record_bytes=LIMIT)
    assert result.ok
    s = _stats(out)
    assert len(s["damaged"]) == 1 and "; resumed at offset" in s["damaged"][0]["reason"]
    pages = _pages(out)
    assert "http://ex.com/latin1" not in pages
    assert {"http://ex.com/utf8", "http://ex.com/sjis", "http://ex.com/sniffed"} <= set(pages)  # before and after


def test_not_a_warc_is_reported_not_raised(tmp_path):
    src = tmp_path / "junk.warc.gz"
    src.write_bytes(gzip.compress(b"this is not a WARC file\n" * 10))
    out = tmp_path / "out"
    result = extract([str(src)], str(out))
    assert result.ok and result.files[0]["pages"] == 0 and result.files[0]["damaged"]
    assert read_pages(str(out / "junk.warc.jsonl.zst")) == []


def test_resume_and_overwrite_are_deterministic(make_warc, tmp_path):
    src = make_warc("sub/x.warc.gz")
    out = tmp_path / "out"
    extract([str(tmp_path / "in")], str(out), max_record_bytes=LIMIT)
    target = out / "sub" / "x.warc.jsonl.zst"
    first = target.read_bytes()
    again = extract([str(tmp_path / "in")], str(out), max_record_bytes=LIMIT)
    assert again.skipped == ["sub/x.warc.gz"] and again.files[0]["pages"] == 7
    target.unlink()  # an output lost after a crash is redone
    extract([str(tmp_path / "in")], str(out), max_record_bytes=LIMIT)
    assert target.read_bytes() == first
    extract([str(src)], str(tmp_path / "out2"), max_record_bytes=LIMIT, overwrite=True)
    assert (tmp_path / "out2" / "x.warc.jsonl.zst").read_bytes() == first
    assert [s.rel for s in list_shards(str(out))] == ["sub/x.warc.jsonl.zst"]  # stats are not page shards


@pytest.mark.parametrize("compression,suffix", [("gz", ".jsonl.gz"), ("none", ".jsonl")])
def test_output_compression(make_warc, tmp_path, compression, suffix):
    src = make_warc("x.warc.gz")
    out = tmp_path / "out"
    extract([str(src)], str(out), compression=compression, max_record_bytes=LIMIT)
    assert len(read_pages(str(out / f"x.warc{suffix}"))) == 7


def test_workers_give_same_bytes(make_warc, tmp_path):
    for i in range(3):
        make_warc(f"w{i}.warc.gz")
    one, two = tmp_path / "one", tmp_path / "two"
    extract([str(tmp_path / "in")], str(one), workers=1, max_record_bytes=LIMIT)
    r = extract([str(tmp_path / "in")], str(two), workers=2, max_record_bytes=LIMIT, progress=True)
    assert [s["rel"] for s in r.files] == ["w0.warc.gz", "w1.warc.gz", "w2.warc.gz"]
    for i in range(3):
        assert (one / f"w{i}.warc.jsonl.zst").read_bytes() == (two / f"w{i}.warc.jsonl.zst").read_bytes()


@pytest.mark.parametrize("extractor", ["trafilatura", "justext"])
def test_alternative_extractors(make_warc, tmp_path, extractor):
    pytest.importorskip(extractor)
    src = make_warc("x.warc.gz")
    out = tmp_path / "out"
    extract([str(src)], str(out), extractor=extractor, max_record_bytes=LIMIT)
    pages = _pages(out)
    assert "Ça coûte très cher à Paris" in pages["http://ex.com/latin1"]["text"]
    if extractor == "justext":  # every paragraph is kept, boilerplate included, separated by blank lines
        assert "Home | About | Contact\n\nHeading\n\n" in pages["http://ex.com/utf8"]["text"]
    assert _stats(out)["extractor"] == extractor


def test_output_name_collision_is_an_error(make_warc, tmp_path):
    a = make_warc("x.warc.gz")
    b = make_warc("x.warc", gz=False)
    with pytest.raises(DclmError, match="would both be written"):
        extract([str(a), str(b)], str(tmp_path / "out"))


def test_cli(make_warc, tmp_path, capsys):
    src = make_warc("x.warc.gz")
    out = tmp_path / "out"
    rc = main(["extract", "--input", str(src), "--output", str(out), "--no-progress", "--max-record-bytes", str(LIMIT)])
    assert rc == 0
    assert "7 pages written" in capsys.readouterr().out
    assert main(["extract", "--input", str(tmp_path / "missing.warc.gz"), "--output", str(out)]) == 2
    with pytest.raises(SystemExit):
        main(["extract", "--input", str(src), "--output", str(out), "--extractor", "nope"])


def test_fsspec_urls(make_warc, tmp_path):
    fsspec = pytest.importorskip("fsspec")
    src = make_warc("x.warc.gz")
    with fsspec.open("memory://dclm-extract-test/in/sub/x.warc.gz", "wb") as f:
        f.write(src.read_bytes())
    result = extract(["memory://dclm-extract-test/in"], "memory://dclm-extract-test/out", max_record_bytes=LIMIT,
                     workers=1)  # memory:// lives in this process only
    assert [s["rel"] for s in result.files] == ["sub/x.warc.gz"] and result.files[0]["pages"] == 7
    assert len(read_pages("memory://dclm-extract-test/out/sub/x.warc.jsonl.zst")) == 7
    fsspec.filesystem("memory").rm("/dclm-extract-test", recursive=True)


def test_no_warcinfo_means_no_key(make_warc, tmp_path):
    from warcio.archiveiterator import ArchiveIterator
    from warcio.warcwriter import WARCWriter

    src = make_warc("x.warc.gz")
    bare = tmp_path / "bare.warc.gz"
    with open(bare, "wb") as f, open(src, "rb") as g:  # the same records without the leading warcinfo record
        w = WARCWriter(f, gzip=True)
        for rec in ArchiveIterator(g):
            if rec.rec_type != "warcinfo":
                w.write_record(rec)
    extract([str(bare)], str(tmp_path / "out"), max_record_bytes=LIMIT)
    pages = read_pages(str(tmp_path / "out" / "bare.warc.jsonl.zst"))
    assert len(pages) == 7 and all("warcinfo" not in p for p in pages)


def test_pool_runs_through_process(make_warc, tmp_path):
    src = make_warc("x.warc.gz")
    pool = tmp_path / "pool"
    extract([str(src)], str(pool), max_record_bytes=LIMIT)
    rc = main(["process", "--config", "content_to_text", "--input", str(pool), "--output", str(tmp_path / "proc"),
               "--workers", "1", "--no-progress"])
    assert rc == 0
    [out] = list((tmp_path / "proc").rglob("*_processed.jsonl.zst"))
    assert len(read_pages(str(out))) == 7
