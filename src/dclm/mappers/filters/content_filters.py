"""DCLM's content filters (baselines/mappers/filters/content_filters.py): same names, parameters, results.

Faster than DCLM's only where the result cannot change: regexes compiled once, the n-gram repetition
measures vectorised (`repetition.py`, with plain twins), word counts without building token lists.
"""

from __future__ import annotations

import re
from collections import Counter
from itertools import filterfalse, repeat
from typing import Callable

from dclm.assets import resolve_asset
from dclm.errors import DclmError
from dclm.mappers.core_utils import count_words, split_paragraphs, split_sentences, split_words
from dclm.mappers.filters.repetition import NgramIndex, all_repeated_fraction, most_common_fraction
from dclm.mappers.registry import factory_function, mapper

CONTENT = "text"

# RedPajama v1's GitHub extension list (as DCLM uses it)
RPJ_GITHUB_EXTENSIONS = (".asm", ".bat", ".cmd", ".c", ".h", ".cs", ".cpp", ".hpp", ".c++", ".h++", ".cc", ".hh",
                         ".C", ".H", ".cmake", ".css", ".dockerfile", ".f90", ".f", ".f03", ".f08", ".f77", ".f95",
                         ".for", ".fpp", ".go", ".hs", ".html", ".java", ".js", ".jl", ".lua", ".md", ".markdown",
                         ".php", ".php3", ".php4", ".php5", ".phps", ".phpt", ".pl", ".pm", ".pod", ".perl", ".ps1",
                         ".psd1", ".psm1", ".py", ".rb", ".rs", ".sql", ".scala", ".sh", ".bash", ".command", ".zsh",
                         ".ts", ".tsx", ".tex", ".vb", "Dockerfile", "Makefile", ".xml", ".rst", ".m", ".smali")

_ALNUM = re.compile(r"[^\W_]")  # exactly the characters for which str.isalnum() is true
_ASCII_NON_LETTERS = "".join(chr(i) for i in range(128) if not chr(i).isalpha())
_BULLETS = ("●", "•", "*", "-")
_ELLIPSES = ("...", ". . .", "\u2026")
_SYMBOLS = ("#", "...", ". . .", "\u2026")
_STOP_WORDS = frozenset({"the", "be", "to", "of", "and", "that", "have", "with"})
# Gopher's thresholds, in the order massive_web_repetition_filters applies them
_GOPHER_NGRAM_MAX = ((2, 0.20), (3, 0.18), (4, 0.16), (5, 0.15), (6, 0.14), (7, 0.13), (8, 0.12), (9, 0.11), (10, 0.10))


@mapper
def github_extension_filter(page: dict, filename_key: str = "filename", allowed_extensions=None) -> list[dict]:
    """Keep files whose name ends with an allowed extension (RedPajama's list by default); no name: drop."""
    if allowed_extensions is None:
        allowed_extensions = RPJ_GITHUB_EXTENSIONS
    elif isinstance(allowed_extensions, list):
        allowed_extensions = tuple(allowed_extensions)
    return [page] if page.get(filename_key, "").endswith(allowed_extensions) else []


@mapper
def line_length_filter(page: dict, length_type: str = "max", max_length=1000) -> list[dict]:
    """Drop when the max (or mean) `splitlines()` line length exceeds `max_length`; empty text: drop."""
    text = page[CONTENT]
    if not text:
        return []
    lines = text.splitlines()
    if length_type == "max":
        line_length = max(len(line) for line in lines)
    elif length_type == "avg":
        line_length = sum(len(line) for line in lines) / len(lines)
    else:
        raise ValueError("length_type must be one of {max, avg}")
    return [] if line_length > max_length else [page]


@mapper
def alphanumeric_char_ratio_filter(page: dict, max_alnum_ratio=0.25) -> list[dict]:
    """Drop when the fraction of alphanumeric characters is *below* `max_alnum_ratio` (a minimum, despite
    the name); empty text: drop."""
    text = page[CONTENT]
    if text == "":
        return []
    return [] if len(_ALNUM.findall(text)) / len(text) < max_alnum_ratio else [page]


@mapper
@factory_function
def alphabetic_characters_to_tokens_filter(tokenizer_name: str = "EleutherAI/pythia-6.9b-deduped") -> Callable:
    """RedPajama's GitHub rule: drop when alphabetic characters per HF-tokenizer token is below `max_ratio`
    (a parameter of the returned filter, default 1.5)."""
    try:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(tokenizer_name)
    except Exception as e:
        raise DclmError(f"alphabetic_characters_to_tokens_filter: cannot load tokenizer {tokenizer_name!r}: {e}") from None

    def filter_fn(page: dict, max_ratio=1.5) -> list[dict]:
        text = page[CONTENT]
        if text == "":
            return []
        num_alpha = sum(1 for c in text if c.isalpha())
        return [] if num_alpha / len(tokenizer.tokenize(text)) < max_ratio else [page]

    return filter_fn


@mapper
def massive_web_repetition_filters(page: dict, skip_paragraph=False) -> list[dict]:
    """Gopher's repetition cascade (line/paragraph duplicate counts and chars, top 2-4-gram, duplicated
    5-10-gram chars); the first failing check drops the page. Splits are shared between the checks."""
    cache: dict = {}
    checks = [("line", 0.3, False), ("paragraph", 0.3, False), ("line", 0.2, True), ("paragraph", 0.2, True)]
    for granularity, max_fraction, count_chars in checks:
        if skip_paragraph and granularity == "paragraph":
            continue
        if not repetition_filter(page, granularity, max_fraction, count_characters=count_chars, cache=cache):
            return []
    for n, max_fraction in _GOPHER_NGRAM_MAX:
        if not repetition_filter(page, n, max_fraction, cache=cache):
            return []
    return [page]


@mapper
def repetition_filter(page: dict, granularity, max_fraction: float, count_characters: bool = True,
                      ngram_char_ratio: str | None = None, ignore_case: bool = False, cache: dict | None = None) -> list[dict]:
    """Drop when the repeated fraction at `granularity` ('line', 'paragraph' or an n-gram size) exceeds
    `max_fraction` (Gopher's measures, DCLM's `baselines/mappers/filters/content_filters.py`)."""
    if page[CONTENT] == "":
        return []
    if cache is None:
        cache = {}
    text = page[CONTENT].lower() if ignore_case else page[CONTENT]

    if isinstance(granularity, str):
        assert granularity in ("line", "paragraph"), "granularity must be either 'line', 'paragraph', or an int"
        if granularity not in cache:
            cache[granularity] = split_paragraphs(text, paragraph_end="\n\n" if granularity == "paragraph" else "\n")
        segments = cache[granularity]
        if len(segments) == 1:
            return [page]
        if len(segments) == 0:
            return []
        if granularity + "/count" not in cache:
            cache[granularity + "/chars"] = sum(len(s) for s in segments)
            cache[granularity + "/count"] = Counter(segments)
        total_chars = cache[granularity + "/chars"]
        segment_counts = cache[granularity + "/count"]
        if count_characters:
            fraction = sum(len(s) * c for s, c in segment_counts.items() if c > 1) / total_chars
        else:
            fraction = sum(c for c in segment_counts.values() if c > 1) / len(segments)
        return [] if fraction > max_fraction else [page]

    if isinstance(granularity, int):
        if "words/index" not in cache:
            cache["words/index"] = NgramIndex(split_words(text, ignore_punctuation=True, model="uniseg"))
        index: NgramIndex = cache["words/index"]
        if granularity < 1 or index.n_words < granularity:  # no n-grams
            return [page]
        if ngram_char_ratio is None:
            if granularity in (2, 3, 4):
                ngram_char_ratio = "most_common"
            elif 5 <= granularity <= 10:
                ngram_char_ratio = "all"
            else:
                raise ValueError("For n-gram counts, if ngram_char_ratio is not given, the granularity must be one of {2,3,4,5,6,7,8,9,10}")
        if index.max_count(granularity) == 1:
            return [page]
        if ngram_char_ratio == "most_common":
            fraction = most_common_fraction(index, granularity)
        elif ngram_char_ratio == "all":
            fraction = all_repeated_fraction(index, granularity)
        else:
            raise ValueError("For n-gram counts, ngram_char_ratio must one of {None, 'most_common', 'all'}")
        return [] if fraction > max_fraction else [page]

    raise ValueError("granularity must be either 'line', 'paragraph', or an int")


@mapper
def page_length_filter(page: dict, length_type: str, min_length: int = 1, max_length: int = float("inf"), **kwargs) -> list[dict]:
    """Keep when `min_length <= length <= max_length`, length counted in chars, words (`split_words(**kwargs)`,
    fastText tokens by default), sentences, lines or paragraphs."""
    text = page[CONTENT]
    if length_type == "word":
        length = count_words(text, **kwargs)
    elif length_type == "sentence":
        length = len(split_sentences(text, **kwargs))
    elif length_type == "line":
        length = len(split_paragraphs(text, paragraph_end="\n", **kwargs))
    elif length_type == "paragraph":
        length = len(split_paragraphs(text, paragraph_end="\n\n", **kwargs))
    elif length_type == "char":
        length = len(text)
    else:
        raise ValueError("length_type needs to be one of {word, sentence, line, paragraph}")
    return [] if length < min_length or length > max_length else [page]


def read_banlist(path: str) -> list[str]:
    """A banlist file's lines (`splitlines`, as DCLM reads it); the path is resolved as an asset."""
    with open(resolve_asset(path), encoding="utf-8") as f:
        return f.read().splitlines()


@mapper
@factory_function
def substring_filter(banlist=None, banlist_from_fname: str | None = None, location: str = "any",
                     case_sensitive=False, exact_word=False) -> Callable:
    """Drop pages where any banlist item matches (items are regex fragments, *not* escaped, as in DCLM);
    `exact_word` wraps the alternation in `\\b`, `prefix`/`suffix` anchor it at the start/end of the text."""
    if location not in {"any", "prefix", "suffix"}:
        raise ValueError("location must be one of {any, prefix, suffix}")
    if banlist_from_fname is not None:
        banlist = read_banlist(banlist_from_fname)
    elif isinstance(banlist, str):
        banlist = [banlist]
    if banlist is None:
        raise DclmError("substring_filter needs banlist or banlist_from_fname")
    banlist = banlist if case_sensitive else [b.lower() for b in banlist]
    pattern = f"(?:{'|'.join(banlist)})"
    if exact_word:
        pattern = rf"\b{pattern}\b"
    if location == "prefix":
        pattern = rf"^{pattern}"
    elif location == "suffix":
        pattern = rf"{pattern}$"
    search = re.compile(pattern).search

    def filter_fn(page: dict) -> list[dict]:
        text = page[CONTENT] if case_sensitive else page[CONTENT].lower()
        return [] if search(text) else [page]

    return filter_fn


@mapper
def bullet_count_filter(page: dict, max_bullet_start_ratio: float = 0.9) -> list[dict]:
    """Drop when more than `max_bullet_start_ratio` of the non-empty stripped lines start with ●, •, * or -."""
    lines = split_paragraphs(page[CONTENT], paragraph_end="\n")
    bullets = sum(1 for line in lines if line.startswith(_BULLETS))
    return [] if bullets > max_bullet_start_ratio * len(lines) else [page]


@mapper
def ellipsis_count_filter(page: dict, max_ellipsis_end_ratio: float = 0.3) -> list[dict]:
    """Drop when more than `max_ellipsis_end_ratio` of the non-empty stripped lines end with ..., . . . or …"""
    lines = split_paragraphs(page[CONTENT], paragraph_end="\n")
    ellipses = sum(1 for line in lines if line.endswith(_ELLIPSES))
    return [] if ellipses > max_ellipsis_end_ratio * len(lines) else [page]


@mapper
def stop_word_filter(page: dict, count_unique: bool = False, min_stop_word: int = 2) -> list[dict]:
    """Keep once `min_stop_word` whitespace words (or distinct ones) are in {the, be, to, of, and, that,
    have, with} after lowercasing (attached punctuation prevents a match)."""
    if count_unique:
        seen = set()
        for word in page[CONTENT].split():
            w = word.lower()
            if w in _STOP_WORDS:
                seen.add(w)
                if len(seen) >= min_stop_word:
                    return [page]
        return []
    count = 0
    for word in page[CONTENT].split():
        if word.lower() in _STOP_WORDS:
            count += 1
            if count >= min_stop_word:
                return [page]
    return []


@mapper
def word_length_filter(page: dict, min_length: int = 0, max_length: int = float("inf")) -> list[dict]:
    """Keep when the mean length of the whitespace words lies in [min_length, max_length]; no words: drop."""
    words = page[CONTENT].split()
    if not words:
        return []
    mean = sum(map(len, words)) / len(words)
    return [] if mean < min_length or mean > max_length else [page]


@mapper
def symbol_ratio_filter(page: dict, max_symbol_to_word_ratio: float = 0.1) -> list[dict]:
    """Drop when (#, ..., . . . and … occurrences) / whitespace words exceeds the ratio, or there are no words."""
    text = page[CONTENT]
    symbols = sum(text.count(s) for s in _SYMBOLS)
    words = len(text.split())
    return [] if words == 0 or symbols / words > max_symbol_to_word_ratio else [page]


@mapper
def word_removal_ratio_filter(page: dict, prev_word_count_key: str, new_word_count_key: str | None = None,
                              max_removed_ratio: float = 0.05, ignore_punctuation=True, **kwargs) -> list[dict]:
    """Drop when more than `max_removed_ratio` of the words counted earlier (`prev_word_count_key`) are gone;
    the current count is `new_word_count_key` if present, else recounted with `split_words(**kwargs)`."""
    assert prev_word_count_key in page, f"'{prev_word_count_key}' key must exist in the page dictionary"
    prev = page[prev_word_count_key]
    if prev == 0:
        return []
    if new_word_count_key and new_word_count_key in page:
        new = page[new_word_count_key]
    else:
        new = count_words(page[CONTENT], ignore_punctuation=ignore_punctuation, **kwargs)
    return [] if (prev - new) / prev > max_removed_ratio else [page]


@mapper
def alphabetic_word_ratio_filter(page: dict, max_ratio: float = 0.2) -> list[dict]:
    """Drop when more than `max_ratio` of the whitespace words contain no alphabetic character; no words: drop."""
    words = page[CONTENT].split()
    if not words:
        return []
    # An ASCII word has a letter exactly when stripping every ASCII non-letter leaves something; words with
    # a non-ASCII character are judged by DCLM's per-character test instead.
    has_alpha = sum(map(bool, map(str.strip, words, repeat(_ASCII_NON_LETTERS, len(words)))))
    if not page[CONTENT].isascii():
        for w in filterfalse(str.isascii, words):
            has_alpha += any(c.isalpha() for c in w) - bool(w.strip(_ASCII_NON_LETTERS))
    non_alpha = len(words) - has_alpha
    return [page] if non_alpha / len(words) <= max_ratio else []
