import gzip
import hashlib
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest

from dclm.cli import main as cli_main
from dclm.errors import DclmError
from dclm.io import write_pages
from dclm.tokenize import TokenShards, tokenize_pages, tokenize_shuffle
from dclm.tokenize import buckets as B
from dclm.tokenize import shards as S
from dclm.tokenize.config import WORK
from dclm.tokenize.shards import iter_tar_contexts, read_manifest

from .conftest import make_docs

SEQLEN = 64
CHUNK = 64


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Three input files in three formats (one nested), 1,800 documents in all."""
    root = tmp_path_factory.mktemp("pages")
    docs = make_docs(1800, seed=3)
    files = [root / "a.jsonl", root / "sub" / "b.jsonl.gz", root / "c.jsonl.zst"]
    parts = [docs[:700], docs[700:1300], docs[1300:]]
    for f, part in zip(files, parts):
        write_pages(str(f), [{"text": d} for d in part])
    # input order is sorted relative path: a.jsonl, c.jsonl.zst, sub/b.jsonl.gz
    return root, parts[0] + parts[2] + parts[1]


def run(corpus_root, out, enc, **kw):
    kw = {"seqlen": SEQLEN, "chunk_size": CHUNK, "workers": 1, "progress": False, **kw}
    return tokenize_shuffle(str(corpus_root), str(out), encoder=enc, **kw)


def tar_rows(out) -> np.ndarray:
    rows = []
    for m in read_manifest(str(out)):
        got = [ids for _, ids in iter_tar_contexts(str(Path(out) / (m["shard"] + ".tar")))]
        assert len(got) == m["num_sequences"]
        rows += got
    return np.array(rows)


def split_docs(rows: np.ndarray, enc) -> list[str]:
    eot, pad = enc.info.eot_id, enc.info.pad_id
    stream = rows.reshape(-1).tolist()
    docs, cur = [], []
    for t in stream:
        if t == eot:
            docs.append(cur)
            cur = []
        else:
            cur.append(t)
    assert all(t == pad for t in cur)  # after the last EOT: the last file's padding
    out = []
    for d in docs:
        while d and d[0] == pad:  # padding that closed the previous input file
            d = d[1:]
        out.append(enc.decode(d))
    return out


def file_hashes(out) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(Path(out).glob("shard_*"))}


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_round_trip_without_shuffle(corpus, tmp_path, small_encoder, workers):
    root, docs = corpus
    r = run(root, tmp_path / "o", small_encoder, shuffle=False, workers=workers)
    rows = tar_rows(tmp_path / "o")
    assert rows.shape[1] == SEQLEN and r.num_sequences == len(rows)
    native = np.stack(list(TokenShards.open(str(tmp_path / "o"))))
    assert native.dtype == np.uint16 and np.array_equal(native, rows)
    assert split_docs(rows, small_encoder) == docs
    assert r.documents == len(docs) and r.num_tokens == len(rows) * SEQLEN
    assert 0 < r.pad_tokens <= int((rows == small_encoder.info.pad_id).sum())


def test_tail_drop_keeps_whole_contexts_only(corpus, tmp_path, small_encoder):
    root, docs = corpus
    r = run(root, tmp_path / "o", small_encoder, shuffle=False, tail="drop")
    assert r.pad_tokens == 0 and r.dropped_tokens > 0
    padded = run(root, tmp_path / "p", small_encoder, shuffle=False)
    assert padded.num_sequences == r.num_sequences + 3  # one padded tail per input file


def test_shuffle_is_a_seeded_permutation_independent_of_workers_and_budget(corpus, tmp_path, small_encoder):
    root, _ = corpus
    run(root, tmp_path / "plain", small_encoder, shuffle=False)
    base = tar_rows(tmp_path / "plain")
    a = run(root, tmp_path / "a", small_encoder, seed=7)
    rows_a = tar_rows(tmp_path / "a")
    assert sorted(map(bytes, rows_a.astype("<u2"))) == sorted(map(bytes, base.astype("<u2")))
    assert not np.array_equal(rows_a, base)
    # many buckets (tiny budget), other worker count: byte-identical shards
    b = run(root, tmp_path / "b", small_encoder, seed=7, workers=2, buckets=8)
    idx = json.loads((tmp_path / "b" / "index.json").read_text())
    assert idx["runs"][0]["buckets"] > 1 and a.num_sequences == b.num_sequences
    assert file_hashes(tmp_path / "a") == file_hashes(tmp_path / "b")
    run(root, tmp_path / "c", small_encoder, seed=8)
    assert not np.array_equal(tar_rows(tmp_path / "c"), rows_a)


def test_open_lm_layout_manifest_and_reference(corpus, tmp_path, small_encoder):
    root, _ = corpus
    r = run(root, tmp_path / "o", small_encoder, name="tiny_tokshuf")
    out = tmp_path / "o"
    lines = (out / "manifest.jsonl").read_text().splitlines()
    first = json.loads(lines[0])
    assert first == {"shard": "shard_00000000", "num_sequences": CHUNK}
    assert sum(json.loads(line)["num_sequences"] for line in lines) == r.num_sequences
    with tarfile.open(out / "shard_00000000.tar") as tar:
        names = tar.getnames()
        assert names[0] == "00000000_00000000.json.gz" and all(n.endswith(".json.gz") for n in names)
        ids = json.loads(gzip.decompress(tar.extractfile(names[0]).read()))
        assert isinstance(ids, list) and len(ids) == SEQLEN and all(isinstance(t, int) for t in ids)
    ref = json.loads((out / "tiny_tokshuf.json").read_text())
    for key in ("uuid", "name", "creation_date", "dataset_url", "manifest_url", "sources", "tokenized", "tokenizer",
                "num_tokens", "size", "sampling_yaml", "data_key"):
        assert key in ref
    assert ref["tokenized"] is True and ref["num_tokens"] == r.num_sequences * SEQLEN
    assert ref["manifest_url"].endswith("manifest.jsonl") and ref["data_key"] == "json.gz"
    assert ref["size"] == sum(p.stat().st_size for p in out.glob("shard_*.tar"))
    assert not (out / WORK).exists()


def test_mixing_repeat_factors_and_weights(tmp_path, small_encoder):
    a, b = make_docs(400, seed=11), make_docs(400, seed=12)
    write_pages(str(tmp_path / "in" / "web_0.jsonl"), [{"text": d} for d in a])
    write_pages(str(tmp_path / "in" / "code_0.jsonl"), [{"text": d} for d in b])
    mix = tmp_path / "mix.yaml"
    mix.write_text("sources:\n  - source: WEB\n    markers: [web_]\n  - source: CODE\n    markers: [code_]\n"
                   "sampling_frequencies:\n  WEB: 2.0\n  CODE: 0.5\n")
    r = run(tmp_path / "in", tmp_path / "o", small_encoder, mix=str(mix))
    web, code = r.sources["WEB"], r.sources["CODE"]
    assert web["sequences"] == 2 * web["contexts"]
    assert 0.3 * code["contexts"] < code["sequences"] < 0.7 * code["contexts"]
    assert r.num_sequences == web["sequences"] + code["sequences"]
    ref = json.loads(Path(r.reference).read_text())
    assert ref["sampling_yaml"]["sampling_frequencies"] == {"WEB": 2.0, "CODE": 0.5}
    # weights: equal token shares, no source repeated
    mix.write_text("sources:\n  - source: WEB\n    markers: [web_]\n  - source: CODE\n    paths: [in/code_0.jsonl]\n"
                   "weights:\n  WEB: 1\n  CODE: 1\n")
    r2 = run(tmp_path / "in" / "web_0.jsonl", tmp_path / "o2", small_encoder, mix=str(mix))
    assert max(v["frequency"] for v in r2.sources.values()) == pytest.approx(1.0)
    w, c = r2.sources["WEB"]["tokens_out"], r2.sources["CODE"]["tokens_out"]
    assert abs(w - c) / (w + c) < 0.1
    mix.write_text("sources:\n  - source: WEB\n    markers: [web_]\nsampling_frequencies:\n  WEB: 1\n")
    with pytest.raises(DclmError, match="UNKNOWN"):
        run(tmp_path / "in", tmp_path / "o3", small_encoder, mix=str(mix))


def test_resume_after_crash_gives_identical_bytes(corpus, tmp_path, small_encoder, monkeypatch):
    root, _ = corpus
    run(root, tmp_path / "ref", small_encoder, seed=5, buckets=8)
    real = B.load_bucket
    calls, crash = [], [True]

    def flaky(spans, st):
        calls.append(1)
        if crash[0] and len(calls) == 4:
            raise KeyboardInterrupt
        return real(spans, st)

    monkeypatch.setattr(B, "load_bucket", flaky)
    with pytest.raises(KeyboardInterrupt):
        run(root, tmp_path / "o", small_encoder, seed=5, buckets=8)
    work = tmp_path / "o" / WORK
    assert work.is_dir() and not (tmp_path / "o" / "manifest.jsonl").exists()
    assert len(list((work / "_done" / "bucket").glob("*.json"))) == 3
    calls.clear()
    crash[0] = False
    run(root, tmp_path / "o", small_encoder, seed=5, buckets=8)
    assert len(calls) == 5  # the three finished buckets are not redone
    assert file_hashes(tmp_path / "o") == file_hashes(tmp_path / "ref")
    again = run(root, tmp_path / "o", small_encoder, seed=5, buckets=8)
    assert again.skipped


def test_append_and_tokenizer_mismatch(tmp_path, small_encoder, neox_encoder):
    write_pages(str(tmp_path / "x" / "x.jsonl"), [{"text": d} for d in make_docs(200, 1)])
    write_pages(str(tmp_path / "y" / "y.jsonl"), [{"text": d} for d in make_docs(200, 2)])
    first = run(tmp_path / "x", tmp_path / "o", small_encoder)
    with pytest.raises(DclmError, match="already holds"):
        run(tmp_path / "y", tmp_path / "o", small_encoder)
    with pytest.raises(DclmError, match="tokenizer mismatch"):
        run(tmp_path / "y", tmp_path / "o", neox_encoder, append=True)
    second = run(tmp_path / "y", tmp_path / "o", small_encoder, append=True)
    manifest = read_manifest(str(tmp_path / "o"))
    assert len(manifest) == first.num_shards + second.num_shards
    assert manifest[first.num_shards]["shard"] == f"shard_{first.num_shards:08d}"
    assert len(TokenShards.open(str(tmp_path / "o"))) == first.num_sequences + second.num_sequences


def test_empty_input_errors(tmp_path, small_encoder):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DclmError, match="empty input"):
        run(tmp_path / "empty", tmp_path / "o", small_encoder)
    write_pages(str(tmp_path / "nodocs" / "a.jsonl"), [])
    with pytest.raises(DclmError, match="empty input"):
        run(tmp_path / "nodocs", tmp_path / "o2", small_encoder)


def test_bad_lines_are_rejected_not_lost(tmp_path, small_encoder):
    from dclm.runtime.rejects import read_rejects

    p = tmp_path / "in" / "sub" / "a.jsonl"
    p.parent.mkdir(parents=True)
    p.write_text('{"text": "good one"}\nnot json\n{"no_text": 1}\n{"text": "good two"}\n{"text": 3}\n')
    write_pages(str(tmp_path / "in" / "b.jsonl"), [{"text": d} for d in make_docs(5, 1)])
    r = run(tmp_path / "in", tmp_path / "o", small_encoder, shuffle=False)
    rejects = read_rejects(str(tmp_path / "o"))
    assert r.documents + r.rejected == 5 + 5 and r.rejected == len(rejects) == 3
    assert [p.relative_to(tmp_path / "o").as_posix() for p in (tmp_path / "o" / "_rejects").rglob("*.jsonl")] == \
        ["_rejects/sub/a.jsonl.jsonl"]
    assert all(set(x) == {"stage", "step", "file", "line", "reason", "record"} for x in rejects)
    assert [(x["stage"], x["step"], x["line"]) for x in rejects] == [("tokenize-shuffle", None, n) for n in (2, 3, 5)]
    assert rejects[0]["record"] == "not json" and rejects[0]["file"] == str(p)
    assert not (tmp_path / "o" / WORK).exists()


def test_cli_run_and_inspect(corpus, tmp_path, small_json, capsys):
    root, _ = corpus
    out = tmp_path / "o"
    rc = cli_main(["tokenize-shuffle", "--input", str(root), "--output", str(out), "--tokenizer", small_json,
                   "--seqlen", "64", "--chunk-size", "32", "--workers", "1", "--no-progress"])
    assert rc == 0 and "sequences" in capsys.readouterr().out
    rc = cli_main(["tokenize-shuffle", "inspect", str(out), "--samples", "2"])
    text = capsys.readouterr().out
    assert rc == 0 and "EOT per 1k tokens" in text and "agree" in text and text.count("--- sequence") == 2
    assert cli_main(["tokenize-shuffle", "--input", str(tmp_path / "missing"), "--output", str(out)]) == 2
    assert "input not found" in capsys.readouterr().err


def test_neox_pipeline_and_demo_entry_point(tmp_path, neox_encoder):
    pages = [{"text": d, "url": f"u{i}"} for i, d in enumerate(make_docs(150, 4))]
    r = tokenize_pages(pages, str(tmp_path / "o"), encoder=neox_encoder, seqlen=2049, shuffle=False)
    rows = np.stack(list(TokenShards.open(str(tmp_path / "o"))))
    assert rows.shape[1] == 2049 and r.num_sequences == len(rows)
    assert split_docs(rows, neox_encoder) == [p["text"] for p in pages]


def test_token_dataset_input_reshuffles_without_tokenizing(corpus, tmp_path, small_encoder, neox_encoder):
    root, _ = corpus
    run(root, tmp_path / "plain", small_encoder, shuffle=False)
    base = tar_rows(tmp_path / "plain")
    r = run(tmp_path / "plain", tmp_path / "again", small_encoder, seed=3, buckets=8)
    rows = np.stack(list(TokenShards.open(str(tmp_path / "again"))))
    assert r.num_sequences == len(base) and not np.array_equal(rows, base)
    assert sorted(map(bytes, rows)) == sorted(map(bytes, base.astype("<u2")))
    with pytest.raises(DclmError, match="tokenizer mismatch"):
        run(tmp_path / "plain", tmp_path / "x", neox_encoder)


def test_bucketed_shuffle_equals_the_plain_definition(corpus, tmp_path, small_encoder):
    """Twin: the order is a global stable sort of every context by its key, keys drawn per file from
    default_rng([seed, file_seed(rel), 2]); computed here in memory without buckets."""
    root, _ = corpus
    per_file = []
    for rel in ("a.jsonl", "c.jsonl.zst", "sub/b.jsonl.gz"):
        run(root / rel, tmp_path / rel.replace("/", "_"), small_encoder, shuffle=False)
        rows = np.stack(list(TokenShards.open(str(tmp_path / rel.replace("/", "_")))))
        keys = np.random.default_rng([9, B.file_seed(rel), 2]).bit_generator.random_raw(len(rows))
        per_file.append((rows, keys))
    rows = np.concatenate([r for r, _ in per_file])
    keys = np.concatenate([k for _, k in per_file])
    expected = rows[np.argsort(keys, kind="stable")]
    run(root, tmp_path / "shuffled", small_encoder, seed=9, buckets=16)
    got = np.stack(list(TokenShards.open(str(tmp_path / "shuffled"))))
    assert np.array_equal(got, expected)


def test_inspect_reports_damage(corpus, tmp_path, small_encoder, small_json, capsys):
    from dclm.tokenize.inspect import inspect_dataset

    root, _ = corpus
    r = run(root, tmp_path / "o", small_encoder)
    report = inspect_dataset(str(tmp_path / "o"), samples=1, tokenizer=small_json)
    assert report["problems"] == [] and report["num_sequences"] == r.num_sequences
    assert 0 < report["eot_per_1k_tokens"] < 1000 and len(report["samples"]) == 1
    (tmp_path / "o" / "shard_00000001.tar").unlink()
    assert cli_main(["tokenize-shuffle", "inspect", str(tmp_path / "o"), "--samples", "0"]) == 1
    assert "missing shard_00000001.tar" in capsys.readouterr().out


def test_memory_budget_sizes_buckets_and_rejects_too_small(corpus, tmp_path, small_encoder):
    root, _ = corpus
    with pytest.raises(DclmError, match="too small"):
        run(root, tmp_path / "o", small_encoder, memory_budget=1 << 20)
    row = SEQLEN * 2 + 8
    budget = B.BASELINE_BYTES + 2 * CHUNK * SEQLEN * 2 + int(100 * row * 2 * B.SPREAD)
    r = run(root, tmp_path / "o2", small_encoder, memory_budget=budget, seed=7)
    idx = json.loads((tmp_path / "o2" / "index.json").read_text())
    assert idx["runs"][0]["buckets"] >= 16 and r.num_sequences > 0
    run(root, tmp_path / "o3", small_encoder, seed=7)
    assert file_hashes(tmp_path / "o2") == file_hashes(tmp_path / "o3")
    # without shuffling the buckets are position ranges, smaller than a shard here: pieces joined
    run(root, tmp_path / "p2", small_encoder, memory_budget=budget, shuffle=False)
    assert json.loads((tmp_path / "p2" / "index.json").read_text())["runs"][0]["buckets"] >= 16
    run(root, tmp_path / "p3", small_encoder, shuffle=False)
    assert file_hashes(tmp_path / "p2") == file_hashes(tmp_path / "p3")


def test_memory_plan_is_capped_so_peak_does_not_grow_with_input():
    from dclm.tokenize.plan import Settings

    st = Settings(seqlen=2049, seed=1, shuffle=True, tail="pad", text_key="text", chunk_size=8192, dtype="<u2",
                  eot=0, pad=50256)
    mem = B.plan_memory(64 << 30, 4, st)
    row = 2049 * 2 + 8
    assert mem.bucket_contexts == mem.scatter_contexts == B.BUCKET_CAP_BYTES // row
    assert B.bucket_count(10**8, mem, True, None) == 1 << int(np.ceil(np.log2(10**8 / mem.bucket_contexts)))
    assert B.bucket_count(10**8, mem, False, None) == 1 and B.bucket_count(5, mem, True, 5) == 8


def test_tar_writer_matches_tarfile_byte_for_byte():
    import io

    from dclm.tokenize.shards import _gzip, write_tar

    rows = np.random.default_rng(0).integers(0, 50000, size=(37, 100)).astype("<u2")
    ours = io.BytesIO()
    write_tar(ours, rows, 12)
    ref = io.BytesIO()
    with tarfile.open(fileobj=ref, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for i, row in enumerate(rows):
            data = _gzip(json.dumps(row.tolist(), separators=(",", ":")).encode())
            ti = tarfile.TarInfo(f"00000012_{i:08d}.json.gz")
            ti.size, ti.mode, ti.mtime = len(data), 0o644, 0
            tar.addfile(ti, io.BytesIO(data))
    assert ours.getvalue() == ref.getvalue()


def test_untokenizable_document_is_rejected_with_reason(tmp_path, small_encoder, monkeypatch):
    p = tmp_path / "in" / "a.jsonl"
    p.parent.mkdir()
    p.write_text('{"text": "fine"}\n{"text": "bad \\ud800 surrogate"}\n{"text": "BOOM"}\n{"text": "also fine"}\n')
    real = small_encoder.encode

    def encode(texts):
        if any("BOOM" in t for t in texts):
            raise ValueError("cannot encode\nsecond line")
        return real(texts)

    monkeypatch.setattr(small_encoder, "encode", encode)
    r = run(tmp_path / "in", tmp_path / "o", small_encoder, shuffle=False)
    from dclm.runtime.rejects import read_rejects

    rej = read_rejects(str(tmp_path / "o"))
    assert r.documents == 2 and r.rejected == 2
    reasons = sorted(x["reason"] for x in rej)
    assert reasons[0].startswith("malformed JSON") and reasons[1] == "tokenizer error: cannot encode"
    assert [x["record"] for x in rej if x["reason"].startswith("tokenizer")] == [{"text": "BOOM"}]


def test_resume_redoes_work_of_an_input_edited_in_place(tmp_path, small_encoder, monkeypatch):
    """Done markers are digest-checked (input size + mtime): an input rewritten with the same size after a
    crash is tokenized again, and every bucket after it, so the output is that of the new input."""
    import os

    src = tmp_path / "in" / "a.jsonl"
    write_pages(str(src), [{"text": d} for d in make_docs(300, seed=5)])
    real = B.load_bucket

    def crash(spans, st):
        raise KeyboardInterrupt

    monkeypatch.setattr(B, "load_bucket", crash)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "in", tmp_path / "o", small_encoder, buckets=4)
    monkeypatch.setattr(B, "load_bucket", real)
    data = src.read_bytes()
    src.write_bytes(data.replace(b"the", b"eht"))
    os.utime(src, ns=(1, 1))  # a different mtime even on coarse clocks
    assert len(src.read_bytes()) == len(data)
    run(tmp_path / "in", tmp_path / "o", small_encoder, buckets=4)
    run(tmp_path / "in", tmp_path / "fresh", small_encoder, buckets=4)
    assert file_hashes(tmp_path / "o") == file_hashes(tmp_path / "fresh")
