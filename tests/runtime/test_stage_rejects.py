"""Every data stage sends what it cannot use to the one reject log (src/dclm/runtime/rejects.py) with the
one schema, and accounts for every input: kept + removed + rejected = input."""

import gzip
import io

import orjson
import pytest

from dclm.process import ProcessConfig, run_process
from dclm.io import read_pages, write_pages
from dclm.runtime.rejects import read_rejects

SCHEMA = {"stage", "step", "file", "line", "reason", "record"}
TEXT = "The committee reviewed the annual budget and agreed to meet again next week to finish the plan. "


def process(pipeline, inputs, output, **kw):
    kw.setdefault("progress", False)
    return run_process(ProcessConfig(pipeline=pipeline, inputs=inputs, output=output, **kw))


def _shard_with_bad_lines(path, pages):
    """A .jsonl shard of `pages` plus one malformed JSON line and one invalid UTF-8 line (lines 2 and 4)."""
    lines = [orjson.dumps(p) for p in pages]
    lines.insert(1, b"{not json")
    lines.insert(3, b'{"text": "\xff\xfe"}')
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\n".join(lines) + b"\n")
    return len(lines)


def _pages(n, dup_every=0):
    return [{"id": i, "url": f"http://ex{i % 5}.com/{i}",
             "text": TEXT * (1 + i % 3) if not dup_every or i % dup_every else TEXT} for i in range(n)]


def _check(rejects, stage, file_suffix, at_least):
    assert len(rejects) >= at_least
    for r in rejects:
        assert set(r) == SCHEMA and r["stage"] == stage and r["file"].endswith(file_suffix) and r["reason"]
    return len(rejects)


def test_process(tmp_path):

    n_lines = _shard_with_bad_lines(tmp_path / "in/a.jsonl", _pages(20) + [{"id": "no-text"}])
    (tmp_path / "p.yaml").write_text("- source: web\n  steps:\n    - func: page_length_filter\n"
                                     "      length_type: word\n      min_length: 20\n")
    res = process(str(tmp_path / "p.yaml"), str(tmp_path / "in"), str(tmp_path / "out"), workers=1, progress=False)
    assert res.ok
    rejected = _check(read_rejects(str(tmp_path / "out/p")), "process", "in/a.jsonl", 3)
    steps = {r["step"] for r in read_rejects(str(tmp_path / "out/p"))}
    assert steps == {None, "page_length_filter"}  # two unreadable lines, one page without text
    removed = res.step_totals[0]["removed"]
    assert removed > 0 and res.pages_out + removed + rejected == n_lines


def test_dedup_exact(tmp_path):
    from dclm.dedup.exact import ExactDedupConfig, run_exact_dedup

    n_lines = _shard_with_bad_lines(tmp_path / "in/a.jsonl", _pages(30, dup_every=4))
    stats = run_exact_dedup(ExactDedupConfig(inputs=[str(tmp_path / "in")], output_directory=str(tmp_path / "out"),
                                             workers=1, progress=False))
    rejected = _check(read_rejects(str(tmp_path / "out")), "dedup exact", "in/a.jsonl", 2)
    assert stats.pages_removed > 0 and stats.pages_out + stats.pages_removed + rejected == n_lines
    assert len(read_pages(str(tmp_path / "out/a.jsonl"))) == stats.pages_out


def test_classifier_score(tmp_path):
    from dclm.classifier.config import ScoreConfig
    from dclm.classifier.score import score_shards
    from dclm.classifier.train import FastTextParams, train_classifier

    write_pages(str(tmp_path / "pos/a.jsonl"), [{"text": f"explain the reason {i} carefully"} for i in range(50)])
    write_pages(str(tmp_path / "neg/a.jsonl"), [{"text": f"buy cheap deal {i} now"} for i in range(50)])
    train_classifier([str(tmp_path / "pos")], [str(tmp_path / "neg")], str(tmp_path / "m.bin"),
                     params=FastTextParams(bucket=10_000, epoch=1))
    n_lines = _shard_with_bad_lines(tmp_path / "in/a.jsonl", _pages(10) + [{"id": "no-text"}])
    res = score_shards(ScoreConfig(model=str(tmp_path / "m.bin"), inputs=[str(tmp_path / "in")],
                                   output=str(tmp_path / "out"), workers=1, progress=False))
    rejected = _check(read_rejects(str(tmp_path / "out")), "classifier score", "in/a.jsonl", 3)
    t = res.totals()
    assert t["scored"] == 10 and t["rejects"] == rejected and t["scored"] + rejected == n_lines


def test_extract(tmp_path):
    pytest.importorskip("resiliparse")
    pytest.importorskip("warcio")
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    from dclm.extract import ExtractConfig, run_extract

    def extract(inputs, output, **kw):
        return run_extract(ExtractConfig(inputs=inputs, output=output, progress=False, **kw))

    page = f"<html><body><article><p>{TEXT}</p></article></body></html>".encode()
    src = tmp_path / "in/x.warc.gz"
    src.parent.mkdir()
    with open(src, "wb") as f:
        w = WARCWriter(f, gzip=True)
        for i, (body, enc) in enumerate([(page, None), (b"\x1f\x8b\x08\x00garbage-not-gzip", "gzip"), (page, None),
                                          (b"<html><body></body></html>", None)]):
            headers = [("Content-Type", "text/html")] + ([("Content-Encoding", enc)] if enc else [])
            http = StatusAndHeaders("200 OK", headers, protocol="HTTP/1.1")
            w.write_record(w.create_warc_record(f"http://ex.com/{i}", "response", payload=io.BytesIO(body),
                                                http_headers=http))
    with open(src, "ab") as f:  # a damaged region at the end: a gzip member cut short
        f.write(gzip.compress(b"WARC/1.0\r\nWARC-Type: response\r\n" + bytes(500))[:40])
    res = extract([str(src)], str(tmp_path / "out"), workers=1)
    rejects = read_rejects(str(tmp_path / "out"))
    _check(rejects, "extract", "in/x.warc.gz", 2)
    assert {r["step"] for r in rejects} == {"extract", "read"}
    stats = res.files[0]
    failed = [r for r in rejects if r["step"] == "extract"]
    assert len(failed) == stats["errors"] == 1 and failed[0]["record"]["url"] == "http://ex.com/1"
    removed = stats["skipped_non_html"] + stats["skipped_oversized"] + stats["empty_extraction"]
    assert stats["pages"] + removed + len(failed) == stats["records_by_type"]["response"] == 4
