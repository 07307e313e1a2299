import pytest

from dclm.dedup.exact import (
    NORMALIZERS,
    ccnet_dedup_normalizer,
    exact_dedup_pages,
    normalize_timestamps,
    normalize_url,
)
from dclm.errors import DclmError


def test_normalizers():
    assert normalize_url("https://www.example.com/a/b/?utm_source=x") == "example.com/a/b"
    assert normalize_url("http://example.com/?ref=feed") == "example.com"
    assert normalize_url("http://example.com/a?page=2") == "example.com/a?page=2"
    assert NORMALIZERS["normalize_whitespace_and_lowercase"]("  Hello World \n") == "hello world"
    assert NORMALIZERS["hash_text"]("abc") == "900150983cd24fb0d6963f7d28e17f72"
    assert normalize_timestamps("1970-01-02T00:00:00Z") == pytest.approx(86400, abs=86400)
    assert normalize_timestamps("garbage") == -1.0
    assert ccnet_dedup_normalizer("  Héllo，World 2024！\x07 ") == "helloworld 0000"
    assert ccnet_dedup_normalizer("   ") == ""


def test_first_copy_wins_across_shards():
    shards = [
        [{"text": "a", "id": 0}, {"text": "b", "id": 1}],
        [{"text": "b", "id": 2}, {"text": "c", "id": 3}, {"text": "a", "id": 4}],
        [{"text": "c", "id": 5}],
    ]
    out, stats = exact_dedup_pages(shards)
    assert [[p["id"] for p in s] for s in out] == [[0, 1], [3], []]
    assert stats["pages_in"] == 6 and stats["pages_out"] == 3 and stats["pages_removed"] == 3
    assert stats["units_in"] == 6 and stats["units_out"] == 3


def test_normalised_text_and_urls():
    shards = [[{"text": "Hello ", "url": "https://www.x.com/a/"}, {"text": "hello", "url": "http://x.com/a?utm_q=1"}]]
    out, _ = exact_dedup_pages([list(s) for s in shards], normalize="normalize_whitespace_and_lowercase")
    assert [p["text"] for p in out[0]] == ["Hello "]
    shards = [[{"text": "1", "url": "https://www.x.com/a/"}, {"text": "2", "url": "http://x.com/a?utm_q=1"}]]
    out, stats = exact_dedup_pages(shards, content_key="url", normalize="normalize_url")
    assert [p["text"] for p in out[0]] == ["1"] and stats["units_removed"] == 1


def test_list_valued_text_is_deduplicated_per_line():
    shards = [
        [{"text": ["header", "body one", "header"], "id": 0}],
        [{"text": ["header", "footer"], "id": 1}, {"text": ["footer"], "id": 2}, {"text": "body one", "id": 3}],
    ]
    out, stats = exact_dedup_pages(shards)
    assert out[0] == [{"text": ["header", "body one"], "id": 0}]
    assert out[1] == [{"text": ["footer"], "id": 1}]
    assert stats["units_in"] == 7 and stats["units_out"] == 3
    assert stats["pages_modified"] == 2 and stats["pages_out"] == 2


def test_selection_key_min_and_max_ties_to_first():
    def shards():
        return [[{"text": "x", "ts": "2020-01-01T00:00:00Z", "id": 0}, {"text": "x", "ts": "2019-01-01T00:00:00Z", "id": 1}],
                [{"text": "x", "ts": "2019-01-01T00:00:00Z", "id": 2}, {"text": "x", "ts": "2021-01-01T00:00:00Z", "id": 3}]]
    out, _ = exact_dedup_pages(shards(), selection_key="ts", selection_normalize="normalize_timestamps")
    assert [p["id"] for s in out for p in s] == [1]
    out, _ = exact_dedup_pages(shards(), selection_key="ts", selection_normalize="normalize_timestamps", selection_reverse=True)
    assert [p["id"] for s in out for p in s] == [3]


def test_selection_none_loses_and_missing_is_an_error():
    out, _ = exact_dedup_pages([[{"text": "x", "n": None, "id": 0}, {"text": "x", "n": 5, "id": 1}]], selection_key="n")
    assert [p["id"] for p in out[0]] == [1]
    with pytest.raises(DclmError, match="selection_key"):
        exact_dedup_pages([[{"text": "x"}]], selection_key="n")
    with pytest.raises(DclmError, match="cannot compare"):
        exact_dedup_pages([[{"text": "x", "n": "a"}, {"text": "x", "n": 1}]], selection_key="n")


def test_unknown_normalizer_and_missing_key():
    with pytest.raises(DclmError, match="unknown normalize 'nope'"):
        exact_dedup_pages([[{"text": "x"}]], normalize="nope")
    out, stats = exact_dedup_pages([[{"id": 1}, {"text": "x"}, {"metadata": {"u": "x"}}]], content_key="metadata.u")
    assert len(out[0]) == 3 and stats["pages_missing_key"] == 2


def test_dotted_key_dedups_nested_urls():
    pages = [{"text": str(i), "metadata": {"WARC-Target-URI": "https://a.org/x" + ("/" if i else "")}} for i in range(3)]
    out, stats = exact_dedup_pages([pages], content_key="metadata.WARC-Target-URI", normalize="normalize_url")
    assert [p["text"] for p in out[0]] == ["0"] and stats["pages_removed"] == 2


def test_deterministic_and_equal_to_a_set_reference():
    import random

    rng = random.Random(0)
    shards = [[{"text": ["l%d" % rng.randrange(30) for _ in range(rng.randrange(1, 5))], "id": (s, i)}
               for i in range(40)] for s in range(4)]
    seen, expect = set(), []
    for s in shards:
        for p in s:
            keep = []
            for line in p["text"]:
                if line not in seen:
                    seen.add(line)
                    keep.append(line)
            if keep:
                expect.append({"text": keep, "id": p["id"]})
    out, _ = exact_dedup_pages([[dict(p, text=list(p["text"])) for p in s] for s in shards])
    assert [p for s in out for p in s] == expect
