"""bff remove types with hand-derived expectations (3-gram windows, min 2 tokens unless stated)."""

from dclm.runtime.rejects import read_rejects


def _t(pages):
    return None if pages is None else [p["text"] for p in pages]


def test_paragraph_mode_removes_a_seen_paragraph_with_its_newline(bff):
    docs = [{"id": 0, "text": "a b c d\ne f g"}, {"id": 1, "text": "x y z\na b c d\ne f"}]
    out, stats = bff({"f.jsonl": docs}, remove_type="paragraph")
    # doc1: "\na b c d" has 2/2 seen 3-grams -> removed; "\ne f" is a 2-token unit (one n-gram "e f"), unseen
    assert _t(out["f.jsonl"]) == ["a b c d\ne f g", "x y z\ne f"]
    assert "bff_duplicate_spans" not in out["f.jsonl"][1] and "bff_contained_ngram_count_before_dedupe" not in out["f.jsonl"][1]
    out, _ = bff({"f.jsonl": docs}, out="ann", remove_type="paragraph", annotate=True)
    assert out["f.jsonl"][1] == {"id": 1, "text": "x y z\na b c d\ne f", "bff_duplicate_spans": [[5, 13]],
                                 "bff_contained_ngram_count": 2}


def test_multibyte_crlf_and_short_paragraphs(bff):
    docs = [{"text": "é ü ö\r\nß ä"}, {"text": "zz\r\né ü ö\r\nq"}, {"text": "ß ä\nzz"}]
    out, _ = bff({"f.jsonl": docs}, remove_type="paragraph")
    # doc1 paragraphs (bytes): [0,3) "zz\r" (1 token < min: kept, not inserted), [3,13) "\né ü ö\r" (seen),
    # [13,15) "\nq"; doc2: "ß ä" was one short n-gram of doc0 -> removed; "\nzz" is below min -> kept
    assert _t(out["f.jsonl"]) == ["é ü ö\r\nß ä", "zz\r\nq", "\nzz"]
    out, _ = bff({"f.jsonl": docs}, out="ann", remove_type="paragraph", annotate=True)
    assert [p["bff_duplicate_spans"] for p in out["f.jsonl"]] == [[], [[3, 13]], [[0, 5]]]


def test_old_both_drops_a_document_whose_paragraphs_are_not_all_removed(bff):
    seen = "a b c d e f g h i j k"
    docs = [{"id": 0, "text": seen, "url": "u0"}, {"id": 1, "text": f"{seen}\na b c q r", "url": "u1", "source": "s"}]
    # doc1: paragraph 0 has 9/9 seen 3-grams (removed), paragraph 1 has 1/3 (kept); 10/12 > 0.8 drops the document
    out, stats = bff({"f.jsonl": docs}, remove_type="old-both")
    assert _t(out["f.jsonl"]) == [seen]
    assert out["f.jsonl"][0]["bff_contained_ngram_count_before_dedupe"] == 0
    out, _ = bff({"f.jsonl": docs}, out="para", remove_type="paragraph")
    assert _t(out["f.jsonl"]) == [seen, "\na b c q r"]
    # annotate: text intact, spans only of removed paragraphs, every field but id/source/text dropped
    out, _ = bff({"f.jsonl": docs}, out="ann", remove_type="old-both", annotate=True)
    assert out["f.jsonl"][1] == {"id": 1, "source": "s", "text": f"{seen}\na b c q r",
                                 "bff_duplicate_spans": [[0, 21]], "bff_contained_ngram_count": 10}
    assert set(out["f.jsonl"][0]) == {"id", "text", "bff_duplicate_spans", "bff_contained_ngram_count"}


def test_old_both_zero_ngram_documents_and_strict_threshold(bff):
    docs = [{"text": "a b c"}, {"text": "a b c d"}, {"text": "one"}, {"text": "one"}]
    # doc1: 1 of 2 n-grams seen = 0.5, threshold 0.5 is strict -> kept; tiny docs have 0/0 -> kept
    out, _ = bff({"f.jsonl": docs}, remove_type="old-both", filtering_threshold=0.5)
    assert _t(out["f.jsonl"]) == ["a b c", "a b c d", "one", "one"]


def test_document_mode_counts_ngrams_across_newlines(bff):
    seen = "a b c d e f g h i j k"
    docs = [{"text": seen}, {"text": f"{seen}\na b c q r"}, {"text": seen}]
    # doc1 as one unit: 14 windows across the newline, 10 seen -> 0.71, kept; doc2 is a full repeat
    out, _ = bff({"f.jsonl": docs}, remove_type="document")
    assert _t(out["f.jsonl"]) == [seen, f"{seen}\na b c q r"]
    out, _ = bff({"f.jsonl": docs}, out="ann", remove_type="document", annotate=True)
    assert [p["bff_duplicate_spans"] for p in out["f.jsonl"]] == [[], [], [[0, 21]]]


def test_naive_both_keeps_new_documents(bff):
    docs = [{"text": "a b c d\ne f g"}, {"text": "a b c d\ne f g"}, {"text": "x y z w\ne f g"}]
    # bff inserts the document's n-grams before its paragraph pass, which then removes every paragraph of
    # a new document; here doc0 survives, doc1 goes at document level, doc2 loses its seen paragraph
    out, _ = bff({"f.jsonl": docs}, remove_type="naive-both")
    assert _t(out["f.jsonl"]) == ["a b c d\ne f g", "x y z w"]
    out, _ = bff({"f.jsonl": docs}, out="ann", remove_type="naive-both", annotate=True)
    assert [p["bff_duplicate_spans"] for p in out["f.jsonl"]] == [[], [[0, 13]], [[7, 13]]]


def test_both_assigns_ngrams_to_their_paragraph(bff):
    docs = [{"text": "a b c d\ne f g h"}, {"text": "x y z w\ne f g h"}, {"text": "z w e f"}]
    # doc1 windows: xyz yzw (par 0), zwe wef (across), efg fgh (par 1, both seen): 2/6 < 0.8 keeps the
    # document, paragraph 1 is removed (2/2 >= 0.8); the cross windows touch it and are not inserted,
    # so doc2 ("z w e f" = zwe, wef) is new
    out, _ = bff({"f.jsonl": docs}, remove_type="both")
    assert _t(out["f.jsonl"]) == ["a b c d\ne f g h", "x y z w", "z w e f"]
    out, _ = bff({"f.jsonl": docs}, out="ann", remove_type="both", annotate=True)
    assert [(p["bff_duplicate_spans"], p["bff_contained_ngram_count"]) for p in out["f.jsonl"]] == [
        ([], 0), ([[7, 15]], 2), ([], 0)]


def test_both_removes_whole_documents_at_threshold(bff):
    docs = [{"text": "a b c d\ne f g h"}, {"text": "a b c d\ne f g h  "}, {"text": "tiny"}]
    out, _ = bff({"f.jsonl": docs}, out="ann", remove_type="both", annotate=True)
    # a document without n-grams is returned untouched (no annotation), as in bff
    assert out["f.jsonl"][1]["bff_duplicate_spans"] == [[0, 17]] and "bff_duplicate_spans" not in out["f.jsonl"][2]
    out, _ = bff({"f.jsonl": docs}, remove_type="both")
    assert _t(out["f.jsonl"]) == ["a b c d\ne f g h", "tiny"]


def test_substring_cuts_seen_token_runs(bff):
    docs = [{"text": "a b c d e f"}, {"text": "x y a b c d e f z"}, {"text": "x y a b c d e f z"}]
    out, _ = bff({"f.jsonl": docs}, remove_type="substring", substr_seqlen=4)
    # doc1: windows 2..5 seen -> tokens [2, 8) "a".."f" (6 >= 4) cut; kept token spans [0,2) and [8,9)
    assert _t(out["f.jsonl"])[:2] == ["a b c d e f", "x y z"]
    out, _ = bff({"f.jsonl": docs}, out="ann", remove_type="substring", substr_seqlen=4, annotate=True)
    assert out["f.jsonl"][1]["bff_duplicate_spans"] == [[4, 16]] and out["f.jsonl"][1]["bff_contained_ngram_count"] == 4


def test_exact_mode(bff):
    docs = [{"text": "same"}, {"text": "same"}, {"text": "same "}]
    out, _ = bff({"f.jsonl": docs}, remove_type="exact")
    assert _t(out["f.jsonl"]) == ["same", "same "]
    out, _ = bff({"f.jsonl": docs}, out="ann", remove_type="exact", annotate=True)
    assert [p.get("bff_exact_duplicate") for p in out["f.jsonl"]] == [None, True, None]


def test_output_keys_sorted_blank_docs_omitted_files_skipped_and_rejects(bff, tmp_path):
    docs = [{"z": 1, "text": "a b c", "id": 7}, {"text": " \u3000\n"}, b"not json\n", {"text": ["a list"]}]
    out, stats = bff({"a.jsonl": docs, "b.jsonl": [{"text": "a b c"}]}, remove_type="paragraph")
    raw = (tmp_path / "out" / "a.jsonl").read_bytes()
    assert raw == b'{"id":7,"text":"a b c","z":1}\n'
    assert out["b.jsonl"] is None  # its only document was removed: no file is written
    assert stats.docs_in == 3 and stats.docs_out == 1 and stats.rejects == 2
    rejects = read_rejects(str(tmp_path / "out"))
    assert [r["reason"].split(":")[0] for r in rejects] == ["malformed JSON", "'text' is a list, bff needs a string"]
    assert [(r["stage"], r["step"], r["line"]) for r in rejects] == [("dedup bff", None, 3), ("dedup bff", None, None)]
    assert rejects[0]["record"] == "not json" and rejects[1]["record"] == {"text": ["a list"]}
    assert all(r["file"].endswith("in/a.jsonl") for r in rejects)


def test_no_update_leaves_filter_unchanged(bff):
    docs = [{"text": "a b c d"}, {"text": "a b c d"}]
    out, stats = bff({"f.jsonl": docs}, remove_type="paragraph", update_bloom_filter=False)
    assert _t(out["f.jsonl"]) == ["a b c d", "a b c d"] and stats.filter_fill == 0
