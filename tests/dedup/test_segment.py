"""Word segmentation against uniseg (UAX #29 reference) and bff's whitespace rule."""

import random

import numpy as np
import pytest

from dclm.dedup.bff import hashing, kernels
from dclm.dedup.bff.segment import property_table, split_word_bounds, tokenize, tokenize_with_offsets

uniseg_words = pytest.importorskip("uniseg.wordbreak").words

POOL = list("abcXYZ019 .,:;'\"-_@/$\t\r\n") + [
    "\u00a0", "\u2003", "\u3000", "\u1680", "\x1c", "\x85", "\u2028", "\u202f",  # spaces, separators
    "\u05d0", "\u05d1", "\u30a2", "\u30a4", "\u4e2d", "\u0e01", "\u00e9", "\u00df",  # letters in scripts
    "\u0301", "\u200d", "\u200b", "\u00ad", "\u2060", "\ufe0f",  # Extend, ZWJ, Format
    "\U0001F600", "\U0001F468", "\u2764", "\U0001F1E6", "\U0001F1E8",  # emoji, regional indicators
    "\u2019", "\u066b", "\uff0e", "\u0660",  # MidNumLet/MidNum/Numeric variants
]

SAMPLES = [
    "Don't stop: 3.14, e.g. example.com — naïve café\r\nNew line",
    "日本語のテキスト。カタカナ ひらがな 中文",
    "👨‍👩‍👧 family 🇺🇸🇫🇷🇩🇪 flags; 👍🏽 ok",
    "a\u00a0b\u3000c\x1cd \t e\u2028f",
    "שלום\"ם עולם'ו",
    "  leading and trailing  \n\n",
]


def test_segments_match_uniseg_on_samples():
    for text in SAMPLES:
        assert split_word_bounds(text) == list(uniseg_words(text)), text


def test_segments_match_uniseg_on_random_strings():
    rng = random.Random(0)
    for _ in range(1500):
        text = "".join(rng.choice(POOL) for _ in range(rng.randrange(0, 30)))
        assert split_word_bounds(text) == list(uniseg_words(text)), repr(text)


def test_tokens_drop_only_white_space_segments():
    # U+001C is not White_Space (Python's isspace says it is): it stays a token, as in Rust
    assert tokenize("a\x1cb") == ["a", "\x1c", "b"]
    assert tokenize("a\u00a0b\u3000c") == ["a", "b", "c"]
    assert tokenize("Don't  stop, 3.14!") == ["Don't", "stop", ",", "3.14", "!"]
    assert tokenize("x \u0301y") == ["x", " \u0301", "y"]  # a space carrying a combining mark is not whitespace-only
    assert tokenize_with_offsets("é ü\r\nß") == [(0, "é"), (3, "ü"), (7, "ß")]


def _pack(texts):
    raw = [t.encode() for t in texts]
    off = np.zeros(len(raw) + 1, dtype=np.int64)
    np.cumsum([len(r) for r in raw], out=off[1:])
    return np.frombuffer(b"".join(raw), dtype=np.uint8), off


def test_numba_tokenizer_equals_python_twin():
    rng = random.Random(1)
    texts = SAMPLES + ["".join(rng.choice(POOL) for _ in range(rng.randrange(0, 60))) for _ in range(800)]
    seeds = hashing.Seeds.from_seed(7)
    buf, off = _pack(texts)
    th, ts, tp, dto, ps, dpo, db, pcp = kernels.tokenize_docs(buf, off, property_table(), np.uint64(seeds.token))
    for d, text in enumerate(texts):
        raw = text.encode()
        want = [(b, hashing.token_hash(tok, seeds), raw[:b].count(b"\n")) for b, tok in tokenize_with_offsets(text)]
        got = list(zip(ts[dto[d]:dto[d + 1]].tolist(), th[dto[d]:dto[d + 1]].tolist(), tp[dto[d]:dto[d + 1]].tolist()))
        assert got == want, repr(text)
        assert ps[dpo[d]:dpo[d + 1]].tolist() == [0] + [i for i, c in enumerate(raw) if c == 10]
        assert pcp[dpo[d]:dpo[d + 1]].tolist() == [0] + [i for i, c in enumerate(text) if c == "\n"]
        assert db[d] == len(raw)


def test_cjk_text_with_a_token_per_character_fits():
    text = "中" * 1000
    buf, off = _pack([text])
    th, *_ = kernels.tokenize_docs(buf, off, property_table(), np.uint64(1))
    assert len(th) == 1000


def test_property_table_cache_equals_fresh_build():
    from dclm.dedup.bff.segment import _build_property_table

    table = property_table()  # loaded from (or written to) the __pycache__ copy
    assert not table.flags.writeable
    assert np.array_equal(table, _build_property_table())
