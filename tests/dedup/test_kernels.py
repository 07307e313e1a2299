"""numba hashing, filter and decision kernels against the plain-Python definitions and twin."""

import random

import numpy as np
import pytest

from dclm.dedup.bff import batch, hashing, kernels, reference, segment
from dclm.dedup.bff.bloom import BloomFilter
from dclm.dedup.bff.reference import BloomTwin
from dclm.dedup.bff.segment import property_table, tokenize


def _pack(texts):
    raw = [t.encode() for t in texts]
    off = np.zeros(len(raw) + 1, dtype=np.int64)
    np.cumsum([len(r) for r in raw], out=off[1:])
    return np.frombuffer(b"".join(raw), dtype=np.uint8), off


TEXTS = ["one two three four five\nsix seven", "", "x\n\ny z", "solo", "α β γ δ ε ζ η θ"]


def _tokens(seeds):
    buf, off = _pack(TEXTS)
    return kernels.tokenize_docs(buf, off, property_table(), np.uint64(seeds.token))


def test_paragraph_and_document_units_equal_twin():
    seeds = hashing.Seeds.from_seed(3)
    th, ts, tp, dto, ps, dpo, db, _ = _tokens(seeds)
    for whole in (False, True):
        off, grams = kernels.paragraph_units(th, tp, dto, dpo, 3, 2, np.uint64(seeds.ngram), whole)
        want = []
        for text in TEXTS:
            raw = text.encode()
            cuts = [0, len(raw)] if whole else [0, *[i for i, c in enumerate(raw) if c == 10], len(raw)]
            for s, e in zip(cuts, cuts[1:]):
                toks = tokenize(raw[s:e].decode())
                wins = [toks[i:i + 3] for i in range(len(toks) - 2)] or ([toks] if len(toks) >= 2 else [])
                want.append([hashing.ngram_hash([hashing.token_hash(t, seeds) for t in w], seeds) for w in wins])
        got = [grams[off[u]:off[u + 1]].tolist() for u in range(len(off) - 1)]
        assert got == want


def test_document_windows_record_paragraphs():
    seeds = hashing.Seeds.from_seed(0)
    th, ts, tp, dto, ps, dpo, db, _ = _tokens(seeds)
    off, grams, first, last = kernels.document_windows(th, tp, dto, 3, np.uint64(seeds.ngram))
    d0 = slice(off[0], off[1])
    assert grams[d0].shape[0] == 5  # 7 tokens, windows of 3
    assert first[d0].tolist() == [0, 0, 0, 0, 0] and last[d0].tolist() == [0, 0, 0, 1, 1]


def test_filter_bits_equal_twin():
    seeds = hashing.Seeds.from_seed(5)
    bf = BloomFilter(97, 4, 5)
    twin = BloomTwin(bf.m_bits, 4, seeds)
    keys = [("a", "b"), ("c",), ("é", "🙂", "x")]
    hashes = np.array([hashing.ngram_hash([hashing.token_hash(t, seeds) for t in k], seeds) for k in keys], dtype=np.uint64)
    f = (bf.bits, np.uint64(bf.m_bits), 4, np.uint64(seeds.probe))
    assert not kernels.contains_many(*f, hashes).any()
    kernels.insert_many(*f, hashes[:2])
    for k in keys[:2]:
        twin.insert(k)
    assert bytes(bf.bits.view(np.uint8)) == bytes(twin.bits)
    assert kernels.contains_many(*f, hashes).tolist()[:2] == [True, True]
    assert twin.contains(keys[0])
    assert twin.contains(keys[2]) == bool(kernels.contains_many(*f, hashes)[2])


def test_whole_text_hash_is_a_one_token_ngram():
    seeds = hashing.Seeds.from_seed(9)
    buf, off = _pack(["same text", "other", ""])
    got = kernels.whole_text_hashes(buf, off, np.uint64(seeds.token), np.uint64(seeds.ngram)).tolist()
    assert got == [hashing.ngram_hash([hashing.token_hash(t, seeds)], seeds) for t in ["same text", "other", ""]]


def _hit_patterns(rng, n_docs, max_n):
    """Per document a token count and window hits in runs (Markov), some documents without windows."""
    docs = []
    for _ in range(n_docs):
        n_tok = int(rng.integers(0, 70))
        n_win = max(0, n_tok - max_n + 1)
        stay = rng.choice([0.5, 0.8, 0.95])
        hits, h = [], bool(rng.random() < 0.5)
        for _ in range(n_win):
            hits.append(h)
            if rng.random() > stay:
                h = not h
        docs.append((n_tok, hits))
    return docs


@pytest.mark.parametrize("max_n,seqlen,threshold", [(3, 5, 0.8), (1, 0, 0.8), (5, 8, 1.0), (3, 2, 0.5), (4, 12, 0.3),
                                                    (2, 40, 0.9)])
def test_substring_decisions_equal_twin(max_n, seqlen, threshold):
    rng = np.random.default_rng(max_n * 100 + seqlen)
    docs = _hit_patterns(rng, 80, max_n)
    seeds = hashing.Seeds.from_seed(1)
    bf = BloomFilter(1 << 18, 4, 1)
    f = (bf.bits, np.uint64(bf.m_bits), 4, np.uint64(seeds.probe))
    n_win = [len(h) for _, h in docs]
    grams = rng.integers(0, 2**63, sum(n_win), dtype=np.uint64)
    hits = np.concatenate([np.array(h, dtype=bool) for _, h in docs]) if grams.size else np.zeros(0, bool)
    kernels.insert_many(*f, grams[hits])
    before = kernels.contains_many(*f, grams)
    win_off = np.concatenate([[0], np.cumsum(n_win)]).astype(np.int64)
    tok_off = np.concatenate([[0], np.cumsum([n for n, _ in docs])]).astype(np.int64)
    r_off, removed, k_off, kept, contained = kernels.decide_substring(*f, win_off, grams, tok_off, max_n, seqlen,
                                                                      threshold, True)
    want_inserted = np.zeros(grams.shape[0], dtype=bool)
    for d, (n_tok, _) in enumerate(docs):
        got_removed = [tuple(x) for x in removed[r_off[d]:r_off[d + 1]].tolist()]
        got_kept = [tuple(x) for x in kept[k_off[d]:k_off[d + 1]].tolist()]
        if n_win[d] == 0:
            assert got_removed == got_kept == [] and contained[d] == 0
            continue
        doc_hits = before[win_off[d]:win_off[d + 1]].tolist()
        w_removed, w_kept, inserts, w_contained = reference.substring_plan(doc_hits, n_tok, max_n, seqlen, threshold)
        assert (got_removed, got_kept, int(contained[d])) == ([tuple(x) for x in w_removed],
                                                              [tuple(x) for x in w_kept], w_contained), d
        want_inserted[win_off[d] + np.asarray(inserts, dtype=np.int64)] = True
    assert removed.shape[0] > 0 and (kernels.contains_many(*f, grams) == (before | want_inserted)).all()


def test_white_space_rules_equal_twin():
    rng = random.Random(4)
    pool = [" ", "\t", "\n", "\r", "\u00a0", "\u3000", "\u2028", "\u1680", "\x85", "\x1c", "\u200b", "a", "é", "🙂"]
    for _ in range(2000):
        text = "".join(rng.choice(pool) for _ in range(rng.randrange(0, 8)))
        assert batch.is_blank(text) == segment.is_blank(text), repr(text)
        assert text.rstrip(batch.white_space()) == segment.rstrip_white_space(text), repr(text)
