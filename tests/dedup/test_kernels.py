"""numba hashing and filter kernels against the plain-Python definitions."""

import numpy as np

from dclm.dedup.bff import hashing, kernels
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
