"""The fast path against its twins: bit-identical to the Python Bloom twin, equal to an exact set-based
implementation at fp 1e-6, independent of the thread count, and global across runs via a filter file."""

import random

import pytest

from dclm.dedup.bff import reference
from dclm.dedup.bff.bloom import sysreq
from dclm.dedup.bff.config import REMOVE_TYPES
from dclm.dedup.bff.hashing import Seeds
from dclm.dedup.bff.reference import BloomTwin, SetFilter, process_page

MODES = list(REMOVE_TYPES)


def _corpus(seed, n_docs, vocab=300, extra=("é", "日本", "🙂", "don't", "3.14", ",", ".")):
    rng = random.Random(seed)
    words = "the of and to in is was for on that with as by at".split() + [f"w{i}" for i in range(vocab)] + list(extra)
    pool = [" ".join(rng.choice(words) for _ in range(rng.randrange(3, 25))) for _ in range(40)]
    docs = []
    for i in range(n_docs):
        paras = [rng.choice(pool) if rng.random() < 0.4 else " ".join(rng.choice(words) for _ in range(rng.randrange(0, 30)))
                 for _ in range(rng.randrange(1, 6))]
        docs.append({"id": i, "text": rng.choice(["\n", "\r\n", "\n\n"]).join(paras), "src": "x"})
    return docs


# every remove type at bff's default threshold and at a low one; substring also without fuzzy merging
# (threshold 1) and with every run removed (seqlen 0)
CASES = [(m, 0.8, 5) for m in MODES] + [(m, 0.5, 2) for m in MODES] + [("substring", 1.0, 5), ("substring", 0.8, 0)]


@pytest.mark.parametrize("mode,threshold,seqlen", CASES)
def test_fast_path_equals_python_twin_bit_for_bit(bff, mode, threshold, seqlen):
    docs = _corpus(0, 120)
    files = {"a.jsonl": docs[:60], "sub/b.jsonl": docs[60:]}
    req = sysreq(5000, 0.05)  # a small, busy filter so false positives occur and must agree too
    for annotate in (False, True):
        out, _ = bff(files, out=f"o{annotate}", remove_type=mode, annotate=annotate, expected_ngram_count=5000,
                     fp_rate=0.05, substr_seqlen=seqlen, filtering_threshold=threshold)
        twin = BloomTwin(req.words * 64, req.num_hashers, Seeds.from_seed(0))
        for name in ("a.jsonl", "sub/b.jsonl"):
            want = [p for d in files[name]
                    if (p := process_page(dict(d), twin, mode, 2, 3, threshold, seqlen, True, annotate))]
            assert (out[name] or []) == want, (mode, annotate, name)


def _planted_corpus(seed=1):
    """Exact duplicates, near-duplicates (one word changed) and shared boilerplate lines."""
    rng = random.Random(seed)
    words = [f"v{i}" for i in range(3000)] + ["the", "a", "of", ",", "."]
    line = lambda: " ".join(rng.choice(words) for _ in range(rng.randrange(8, 40)))  # noqa: E731
    boiler = [line() for _ in range(15)]
    docs = []
    for i in range(400):
        r = rng.random()
        if docs and r < 0.15:
            text = rng.choice(docs)["text"]
        elif docs and r < 0.3:
            toks = rng.choice(docs)["text"].split(" ")
            toks[rng.randrange(len(toks))] = "changed"
            text = " ".join(toks)
        else:
            text = "\n".join(rng.choice(boiler) if rng.random() < 0.3 else line() for _ in range(rng.randrange(1, 8)))
        docs.append({"id": i, "text": text})
    return docs


@pytest.mark.parametrize("mode,n", [("old-both", 13), ("paragraph", 5), ("document", 8), ("naive-both", 5), ("both", 5)])
def test_decisions_equal_an_exact_set_implementation(bff, monkeypatch, mode, n):
    words = pytest.importorskip("uniseg.wordbreak").words
    docs = _planted_corpus()
    files = {"a.jsonl": docs[:200], "b.jsonl": docs[200:]}
    out, stats = bff(files, remove_type=mode, min_ngram_size=n, max_ngram_size=n, expected_ngram_count=200_000,
                     fp_rate=1e-6)
    # the exact reference tokenises with uniseg (an independent UAX #29 implementation) and a Python set
    monkeypatch.setattr(reference, "tokenize", lambda t: [w for w in words(t) if not reference.is_blank(w)])
    if mode == "both":
        from dclm.dedup.bff import segment
        monkeypatch.setattr(reference, "tokenize_with_offsets", segment.tokenize_with_offsets)
    exact = SetFilter()
    for name in ("a.jsonl", "b.jsonl"):
        want = [p for d in files[name] if (p := process_page(dict(d), exact, mode, n, n, 0.8))]
        assert out[name] == want
    assert stats.docs_out < stats.docs_in - 50  # the planted duplicates were found


def test_outputs_do_not_depend_on_thread_count(bff, tmp_path):
    docs = _corpus(2, 300)
    files = {f"d{i // 40}/f{i}.jsonl": docs[i:i + 10] for i in range(0, 300, 10)}
    runs = {}
    for t in (1, 2, 3):
        out, stats = bff(files, out=f"t{t}", remove_type="old-both", workers=t, bloom_filter_file=str(tmp_path / f"f{t}"))
        assert stats.workers == t
        runs[t] = {name: (tmp_path / f"t{t}" / name).read_bytes() if pages is not None else None for name, pages in out.items()}
        runs[t]["filter"] = (tmp_path / f"f{t}").read_bytes()  # the shared-memory filter is saved by the parent
    assert runs[1] == runs[2] == runs[3]
    shuffled = [bff(files, out=f"s{k}", remove_type="old-both", workers=2, shuffle_files=5)[0] for k in (1, 2)]
    assert shuffled[0] == shuffled[1] and shuffled[0] != bff(files, out="s0", remove_type="old-both")[0]


def test_a_filter_file_carries_dedup_across_runs(bff, tmp_path):
    docs = _corpus(3, 200)
    filt = str(tmp_path / "filter.bin")
    one, _ = bff({"a.jsonl": docs[:100], "b.jsonl": docs[100:]}, out="one", remove_type="old-both")
    bff({"a.jsonl": docs[:100]}, inp="part_a", out="two", remove_type="old-both", bloom_filter_file=filt)
    two, _ = bff({"b.jsonl": docs[100:]}, inp="part_b", out="two", remove_type="old-both", bloom_filter_file=filt)
    assert two["b.jsonl"] == one["b.jsonl"]
    with pytest.raises(Exception, match="differs from the seed"):
        bff({"b.jsonl": docs[100:]}, inp="part_b", out="three", bloom_filter_file=filt, seed=5)
