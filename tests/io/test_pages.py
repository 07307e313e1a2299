import gzip

import fsspec
import orjson
import pytest

from dclm.errors import DclmError, ShardFailed
from dclm.io import atomic_open, iter_pages, list_shards, read_pages, write_pages

PAGES = [{"text": "hello wörld 🌍", "id": i, "meta": {"n": [1, 2.5, None]}} for i in range(50)]


@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.gz", ".jsonl.zst", ".jsonl.zstd", ".parquet"])
def test_round_trip_every_format(tmp_path, suffix):
    url = str(tmp_path / f"a{suffix}")
    assert write_pages(url, PAGES) == 50
    assert read_pages(url) == PAGES


def test_writes_are_deterministic(tmp_path):
    a, b = tmp_path / "a.jsonl.gz", tmp_path / "b.jsonl.gz"
    write_pages(str(a), PAGES)
    write_pages(str(b), PAGES)
    assert a.read_bytes() == b.read_bytes()


@pytest.mark.parametrize("scheme", ["file", "memory"])
def test_fsspec_urls(tmp_path, scheme):
    base = f"file://{tmp_path}" if scheme == "file" else "memory://dclm-test"
    write_pages(f"{base}/in/x/a.jsonl.zst", PAGES[:3])
    write_pages(f"{base}/in/b.jsonl", PAGES[3:5])
    shards = list_shards(f"{base}/in")
    assert [s.rel for s in shards] == ["b.jsonl", "x/a.jsonl.zst"]
    assert [s.stem for s in shards] == ["b", "x/a"]
    assert [p["id"] for s in shards for p in iter_pages(s.url)] == [3, 4, 0, 1, 2]


def test_atomic_open_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.jsonl"
    with pytest.raises(RuntimeError):
        with atomic_open(str(target)) as f:
            f.write(b"partial")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_bad_lines_are_rejected_with_line_numbers(tmp_path):
    p = tmp_path / "bad.jsonl"
    p.write_bytes(
        b'{"text": "ok"}\n'
        b"{not json\n"
        b'{"text": "caf\xe9"}\n'  # latin-1 byte, invalid UTF-8
        b'{"id": 1}\n'
        b'{"text": 5}\n'
        b"[1, 2]\n"
        b"\n"
        b'{"text": "last"}'  # no trailing newline
    )
    rejects = []
    pages = read_pages(str(p), on_reject=lambda line, reason, raw: rejects.append((line, reason)))
    assert [pg["text"] for pg in pages] == ["ok", "last"]
    assert [r[0] for r in rejects] == [2, 3, 4, 5, 6]
    assert "malformed JSON" in rejects[0][1]
    assert "invalid UTF-8" in rejects[1][1]
    assert rejects[2][1] == "missing 'text'"
    assert "not a string" in rejects[3][1]
    assert "not a JSON object" in rejects[4][1]
    with pytest.raises(DclmError, match=r"bad.jsonl:2: malformed JSON"):
        read_pages(str(p))


@pytest.mark.parametrize("suffix", [".jsonl.gz", ".jsonl.zst"])
def test_truncated_archives_fail_the_shard(tmp_path, suffix):
    url = str(tmp_path / f"t{suffix}")
    write_pages(url, [{"text": "x" * 1000, "i": i} for i in range(2000)])
    data = (tmp_path / f"t{suffix}").read_bytes()
    (tmp_path / f"t{suffix}").write_bytes(data[: len(data) // 2])
    with pytest.raises(ShardFailed, match="truncated"):
        read_pages(url)


def test_empty_and_missing_files(tmp_path):
    (tmp_path / "empty.jsonl").write_bytes(b"")
    (tmp_path / "empty.jsonl.gz").write_bytes(gzip.compress(b""))
    assert read_pages(str(tmp_path / "empty.jsonl")) == []
    assert read_pages(str(tmp_path / "empty.jsonl.gz")) == []
    with pytest.raises(ShardFailed, match="not found"):
        read_pages(str(tmp_path / "nope.jsonl"))
    with pytest.raises(DclmError, match="input not found"):
        list_shards(str(tmp_path / "nope"))
    with pytest.raises(DclmError, match="not a page shard"):
        (tmp_path / "x.txt").write_text("hi")
        list_shards(str(tmp_path / "x.txt"))


def test_memory_fs_is_isolated_per_test():
    fsspec.filesystem("memory").rm("/dclm-test", recursive=True) if fsspec.filesystem("memory").exists("/dclm-test") else None
    write_pages("memory://dclm-test/z.jsonl", [{"text": "a"}])
    assert orjson.loads(fsspec.open("memory://dclm-test/z.jsonl", "rb").open().read()) == {"text": "a"}


def test_inputs_with_the_same_relative_path_are_refused(tmp_path):
    write_pages(str(tmp_path / "a" / "x.jsonl"), PAGES[:1])
    write_pages(str(tmp_path / "b" / "x.jsonl"), PAGES[:1])
    with pytest.raises(DclmError, match="same relative path 'x.jsonl'"):
        list_shards([str(tmp_path / "a"), str(tmp_path / "b")])
    assert len(list_shards([str(tmp_path / "a"), str(tmp_path / "a" / "x.jsonl")])) == 1
