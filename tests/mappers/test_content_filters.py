import random
from collections import Counter

import pytest

from dclm.mappers import get
from dclm.mappers.core_utils import split_paragraphs, split_words
from dclm.mappers.filters.content_filters import (
    alphabetic_word_ratio_filter,
    alphanumeric_char_ratio_filter,
    bullet_count_filter,
    ellipsis_count_filter,
    github_extension_filter,
    line_length_filter,
    massive_web_repetition_filters,
    page_length_filter,
    repetition_filter,
    stop_word_filter,
    substring_filter,
    symbol_ratio_filter,
    word_length_filter,
    word_removal_ratio_filter,
)
from dclm.mappers.filters.repetition import (
    NgramIndex,
    all_repeated_fraction,
    all_repeated_fraction_reference,
    most_common_fraction,
    most_common_fraction_reference,
)


def P(text, **kw):
    return {"text": text, **kw}


def kept(fn, page, *a, **kw) -> bool:
    out = fn(page, *a, **kw)
    assert out in ([], [page])
    return bool(out)


def test_github_extension_filter():
    assert kept(github_extension_filter, {"filename": "script.py"})
    assert kept(github_extension_filter, {"filename": "Makefile"})
    assert kept(github_extension_filter, {"file_name": "a.rs"}, filename_key="file_name")
    assert not kept(github_extension_filter, {"filename": "notes.txt"})
    assert not kept(github_extension_filter, {"text": "no filename"})
    assert kept(github_extension_filter, {"filename": "notes.txt"}, allowed_extensions=[".txt", ".md"])
    assert not kept(github_extension_filter, {"filename": "a.py"}, allowed_extensions=[".txt"])


def test_line_length_filter():
    assert not kept(line_length_filter, P("a" * 1001 + "\nshort"), max_length=1000)
    assert not kept(line_length_filter, P(("a" * 200 + "\n") * 5), length_type="avg", max_length=100)
    assert kept(line_length_filter, P("a" * 100 + "\nShort line"), length_type="avg", max_length=100)
    assert not kept(line_length_filter, P(""))
    with pytest.raises(ValueError):
        line_length_filter(P("x"), length_type="median")


def test_alphanumeric_char_ratio_filter():
    assert not kept(alphanumeric_char_ratio_filter, P(""))
    assert kept(alphanumeric_char_ratio_filter, P("Hello 123!"), 0.25)
    assert not kept(alphanumeric_char_ratio_filter, P("!@#$%"), 0.25)
    assert not kept(alphanumeric_char_ratio_filter, P("    "), 0.25)
    assert kept(alphanumeric_char_ratio_filter, P("abcd"), 1.0)
    # the regex count equals DCLM's per-character isalnum count, Unicode included
    for text in ["_a_½²é日 \u0301x!", "e.g. 3.14", "Ⅻ①"]:
        n = sum(c.isalnum() for c in text)
        assert kept(alphanumeric_char_ratio_filter, P(text), n / len(text))
        assert not kept(alphanumeric_char_ratio_filter, P(text), n / len(text) + 1e-9)


def test_repetition_filter_lines_and_paragraphs():
    assert repetition_filter(P(""), "line", 1) == []
    assert repetition_filter(P(""), 2, 0.99) == []
    page = P("Hello, World.")
    assert kept(repetition_filter, page, "line", 0.0, count_characters=False)
    page = P("Hello\nHello\n\n\n\nHello")  # empty lines are ignored
    assert kept(repetition_filter, page, "line", 1, count_characters=False)
    assert not kept(repetition_filter, page, "line", 0.99, count_characters=False)
    page = P("Hello, World.\nHello, World.\n\nHello")
    assert kept(repetition_filter, page, "line", 2 / 3 + 1e-2, count_characters=False)
    assert not kept(repetition_filter, page, "line", 2 / 3 - 1e-2, count_characters=False)
    assert kept(repetition_filter, page, "line", 26 / 31 + 1e-2)
    assert not kept(repetition_filter, page, "line", 26 / 31 - 1e-2)
    page = P("Hello, World.\n\nHello, World.\n\nHello, World.\nHello")
    assert kept(repetition_filter, page, "paragraph", 2 / 3 + 1e-2, count_characters=False)
    assert not kept(repetition_filter, page, "paragraph", 2 / 3 - 1e-2, count_characters=False)
    assert kept(repetition_filter, page, "paragraph", 26 / 45 + 1e-2)
    assert not kept(repetition_filter, page, "paragraph", 26 / 45 - 1e-2)
    assert repetition_filter(P("  \n \n"), "line", 1.0) == []  # no segments: drop
    assert kept(repetition_filter, P("A\na"), "line", 0.0, ignore_case=False)
    assert not kept(repetition_filter, P("A\na"), "line", 0.0, ignore_case=True)


def test_repetition_filter_ngrams():
    page = P("hello")
    assert kept(repetition_filter, page, 2, 0.0) and kept(repetition_filter, page, 5, 0.0)
    page = P("hello world hello world hello world")
    for n in (2, 3, 4):
        assert not kept(repetition_filter, page, n, 0.99)
    page = P("hello      world hello apple.... world hello\n world hello")  # punctuation and spaces ignored
    assert kept(repetition_filter, page, 2, 30 / 40 + 1e-2)
    assert not kept(repetition_filter, page, 2, 30 / 40 - 1e-2)
    assert kept(repetition_filter, page, 3, 30 / 40 + 1e-2)
    assert not kept(repetition_filter, page, 3, 30 / 40 - 1e-2)
    assert kept(repetition_filter, page, 4, 0)
    for text in ("a b a b a b ab cd ab cd ab cd abc def abc def", "a b a b a b abc def abc def ab cd ab cd ab cd"):
        # ties for the most common 2-gram: the longest one counts
        assert kept(repetition_filter, P(text), 2, 12 / 30 + 1e-2)
        assert not kept(repetition_filter, P(text), 2, 12 / 30 - 1e-2)
    page = P("hello world hello\n world hello. apple world hello world hello world hello world")
    assert kept(repetition_filter, page, 5, 60 / 65 + 1e-2)
    assert not kept(repetition_filter, page, 5, 60 / 65 - 1e-2)
    with pytest.raises(ValueError):
        repetition_filter(P("a b " * 6), 11, 0.5)
    with pytest.raises(ValueError):
        repetition_filter(P("a b a b"), 2, 0.5, ngram_char_ratio="median")
    assert kept(repetition_filter, P("a b c d"), 2, 0.5, ngram_char_ratio="median")  # no repeat: kept first
    assert kept(repetition_filter, P("a b c a b"), 11, 0.1)  # fewer words than n: kept before the n check
    with pytest.raises(AssertionError):
        repetition_filter(P("x"), "sentence", 0.5)


def _random_words(rng: random.Random) -> list[str]:
    vocab = ["a", "bb", "ccc", "dddd", "e", "ff", "ggggg", "hhhhhhh", "it's", "日本"][:rng.choice([2, 3, 5, 10])]
    return [rng.choice(vocab) for _ in range(rng.randrange(0, 80))]


def test_ngram_kernels_equal_plain_twins():
    rng = random.Random(0)
    for trial in range(400):
        words = _random_words(rng)
        index = NgramIndex(words)
        order = list(range(1, 12))
        if trial % 2:
            rng.shuffle(order)  # out-of-order requests rebuild correctly
        for n in order:
            assert most_common_fraction(index, n) == most_common_fraction_reference(words, n)
            assert all_repeated_fraction(index, n) == all_repeated_fraction_reference(words, n)


def test_ngram_kernels_on_generated_pages(web_pages):
    for p in web_pages[:60]:
        words = split_words(p["text"], model="uniseg", ignore_punctuation=True)
        index = NgramIndex(words)
        for n in range(2, 11):
            assert most_common_fraction(index, n) == most_common_fraction_reference(words, n)
            assert all_repeated_fraction(index, n) == all_repeated_fraction_reference(words, n)


def _gopher_reference(text: str) -> bool:
    """DCLM's cascade written plainly (keep = True)."""
    def seg_fraction(sep, count_chars):
        segs = split_paragraphs(text, sep)
        if len(segs) <= 1:
            return None if segs else 2.0
        c = Counter(segs)
        if count_chars:
            return sum(len(s) * k for s, k in c.items() if k > 1) / sum(len(s) for s in segs)
        return sum(k for k in c.values() if k > 1) / len(segs)
    if text == "":
        return False
    for sep, mx, chars in (("\n", 0.3, False), ("\n\n", 0.3, False), ("\n", 0.2, True), ("\n\n", 0.2, True)):
        f = seg_fraction(sep, chars)
        if f is not None and f > mx:
            return False
    words = split_words(text, model="uniseg", ignore_punctuation=True)
    for n, mx in ((2, .2), (3, .18), (4, .16)):
        f = most_common_fraction_reference(words, n)
        if f is not None and f > mx:
            return False
    for n, mx in ((5, .15), (6, .14), (7, .13), (8, .12), (9, .11), (10, .10)):
        f = all_repeated_fraction_reference(words, n)
        if f is not None and f > mx:
            return False
    return True


def test_massive_web_repetition_filters(web_pages):
    page = P("This is a complex sentence with unique words.\n Here is another one.")
    assert kept(massive_web_repetition_filters, page)
    assert not kept(massive_web_repetition_filters, P("Repeat repeat repeat repeat."))
    assert massive_web_repetition_filters(P("")) == []
    with pytest.raises(TypeError):
        massive_web_repetition_filters(P(None))
    removed = 0
    for p in web_pages:
        ours = bool(massive_web_repetition_filters(dict(p)))
        assert ours == _gopher_reference(p["text"])
        removed += not ours
    assert removed > 0


def test_massive_web_skip_paragraph():
    text = "one two three four\n\nfive six seven\n\none two three four\n\nnine ten eleven twelve"
    assert not kept(massive_web_repetition_filters, P(text))
    assert repetition_filter(P(text), "paragraph", 0.3, count_characters=False) == []


def test_page_length_filter():
    for unit in ("word", "sentence", "line", "paragraph", "char"):
        assert page_length_filter(P(""), unit, 1) == []
    page = P("Hello world. This is a test.")
    assert not kept(page_length_filter, page, "word", 7)
    assert kept(page_length_filter, page, "word", 6)
    assert not kept(page_length_filter, page, "sentence", 3)
    assert kept(page_length_filter, page, "sentence", 2)
    assert not kept(page_length_filter, page, "char", 29)
    assert kept(page_length_filter, page, "char", 28)
    page = P("Hello world. \n\n\n \n\n\n This is a test.")
    assert kept(page_length_filter, page, "word", 6, ignore_punctuation=True)
    assert not kept(page_length_filter, page, "word", 7, ignore_punctuation=True)
    assert kept(page_length_filter, page, "line", 2) and not kept(page_length_filter, page, "line", 3)
    assert kept(page_length_filter, page, "paragraph", 2) and not kept(page_length_filter, page, "paragraph", 3)
    assert not kept(page_length_filter, P("a b c"), "word", max_length=2)
    assert kept(page_length_filter, P("a b c"), "word", 3, 3)  # both bounds inclusive
    # the recipe's form: fastText tokens starting alphanumeric
    text = "Hello, world!\n-- 42 items... (yes) _under"
    assert kept(page_length_filter, P(text), "word", 4, 4, ignore_punctuation=True)
    with pytest.raises(ValueError):
        page_length_filter(P("x"), "token")


def test_substring_filter_unescaped_items():
    f = substring_filter(banlist="lorem ipsum")
    assert f(P("Some Lorem Ipsum text")) == []
    assert kept(f, P("clean text"))
    dots = substring_filter(banlist=["a.c"])  # not escaped: "." is a wildcard, as in DCLM
    assert dots(P("xabcx")) == []
    pre = substring_filter(banlist=["hello"], location="prefix")
    assert pre(P("Hello there")) == [] and kept(pre, P("oh hello"))
    suf = substring_filter(banlist=["end"], location="suffix")
    assert suf(P("the END")) == [] and kept(suf, P("end it"))
    cs = substring_filter(banlist=["Word"], case_sensitive=True)
    assert kept(cs, P("word")) and cs(P("Word")) == []
    ex = substring_filter(banlist=["ass"], exact_word=True)
    assert kept(ex, P("a class act")) and ex(P("an ass.")) == []
    with pytest.raises(ValueError):
        substring_filter(banlist="x", location="middle")


def test_substring_filter_from_file(tmp_path, reference_dir):
    f = substring_filter(banlist_from_fname=str(reference_dir / "banlists" / "ldnoobw.txt"), exact_word=True)
    assert kept(f, P("A perfectly ordinary sentence about gardening."))


def test_bullet_and_ellipsis_filters():
    text = "• one\n* two\n- three\n● four\nplain"
    assert kept(bullet_count_filter, P(text), 0.8)
    assert not kept(bullet_count_filter, P(text), 0.79)
    text = "a...\nb. . .\nc\u2026\nd\n\n   \ne"
    assert kept(ellipsis_count_filter, P(text), 3 / 5)
    assert not kept(ellipsis_count_filter, P(text), 3 / 5 - 1e-3)
    assert kept(ellipsis_count_filter, P(""))  # no lines: 0 > 0 is false


def test_stop_word_filter():
    assert not kept(stop_word_filter, P("The cat"))
    assert kept(stop_word_filter, P("The cat and the dog"))
    assert not kept(stop_word_filter, P("the, and."))  # attached punctuation prevents a match
    assert not kept(stop_word_filter, P("the the the"), count_unique=True)
    assert kept(stop_word_filter, P("THE dog TO"), count_unique=True)
    assert not kept(stop_word_filter, P("the and with"), min_stop_word=4)


def test_word_length_filter():
    assert not kept(word_length_filter, P(""))
    assert kept(word_length_filter, P("abc abcd abcde"), 4, 4)
    assert not kept(word_length_filter, P("ab abc"), 3)
    assert not kept(word_length_filter, P("abcdefghijk"), 3, 10)


def test_symbol_ratio_filter():
    assert not kept(symbol_ratio_filter, P(""))
    text = "one two three four five six seven eight nine #ten"
    assert kept(symbol_ratio_filter, P(text), 0.1)
    assert not kept(symbol_ratio_filter, P(text + "..."), 0.1)
    # "...." holds one non-overlapping "...": 1 symbol / 3 words
    assert symbol_ratio_filter(P("a .... b"), 0.33) == [] and kept(symbol_ratio_filter, P("a .... b"), 0.34)


def test_word_removal_ratio_filter():
    page = P("one two three four five six seven eight nine ten", prev=20)
    assert not kept(word_removal_ratio_filter, page, "prev")
    assert kept(word_removal_ratio_filter, page, "prev", max_removed_ratio=0.5)
    assert kept(word_removal_ratio_filter, P("x", prev=20, new=19), "prev", "new")
    assert not kept(word_removal_ratio_filter, P("x", prev=0), "prev")
    with pytest.raises(AssertionError):
        word_removal_ratio_filter(P("x"), "prev")
    assert kept(word_removal_ratio_filter, P("a b, c", prev=3), "prev", model="uniseg")


def test_alphabetic_word_ratio_filter():
    assert not kept(alphabetic_word_ratio_filter, P(""))
    assert kept(alphabetic_word_ratio_filter, P("abc 123 def ghi jkl"), 0.2)
    assert not kept(alphabetic_word_ratio_filter, P("abc 123 456 ghi"), 0.2)
    assert kept(alphabetic_word_ratio_filter, P("é1 ½ x"), 1 / 3)  # ½ is numeric, not alphabetic
    assert not kept(alphabetic_word_ratio_filter, P("é1 ½ x"), 0.3)


def test_alphabetic_word_ratio_fast_path_equals_plain(web_pages):
    rng = random.Random(2)
    texts = [p["text"] for p in web_pages] + [
        " ".join(rng.choice(["a1", "12", "--", "x", "$5", "3.1", "é", "1é", "_", "—", "’s", "1\u00a02", "x\u2003—", "½"])
                 for _ in range(rng.randrange(1, 30)))
        for _ in range(300)]
    for t in texts:
        words = t.split()
        if not words:
            continue
        ratio = sum(1 for w in words if not any(c.isalpha() for c in w)) / len(words)
        assert kept(alphabetic_word_ratio_filter, P(t), ratio)
        if ratio > 0:
            assert not kept(alphabetic_word_ratio_filter, P(t), ratio - 1e-9)


def test_alphabetic_characters_to_tokens_filter_offline_error():
    from dclm.errors import DclmError

    with pytest.raises(DclmError):
        get("alphabetic_characters_to_tokens_filter")(tokenizer_name="/nonexistent/tokenizer")


def test_registered_with_dclm_names():
    for name in ("massive_web_repetition_filters", "page_length_filter", "substring_filter", "word_removal_ratio_filter"):
        assert callable(get(name))
