"""UAX #29 word segmentation as bff tokenises: `split_word_bounds` minus segments made only of White_Space.

bff (Rust `unicode-segmentation`) splits text at Unicode word boundaries and drops every segment whose
characters are all `char::is_whitespace` (the Unicode White_Space property: unlike Python's
`str.isspace` it excludes U+001C–U+001F). Punctuation segments stay tokens; matching is case-sensitive.

The boundary rules (WB1–WB999 of UAX #29) run as a small state machine over code points, in numba
(`kernels.tokenize_docs`) and in plain Python here (`tokenize`, the twin the tests compare against).
Both read one property table, built once per process from the `regex` module's Unicode data
(`\\p{Word_Break=…}`, `\\p{Extended_Pictographic}`, `\\p{White_Space}`), so the Unicode version is that of
the installed `regex`; Rust's crate pins its own (differences are limited to newly assigned characters).
"""

from __future__ import annotations

import functools
import importlib.util
import os

import numpy as np

from dclm.errors import DclmError

# Word_Break values; bit 5 flags Extended_Pictographic and bit 6 White_Space in the table.
OTHER, CR, LF, NEWLINE, EXTEND, ZWJ, RI, FORMAT, KATAKANA, HEBREW, ALETTER = range(11)
SQUOTE, DQUOTE, MIDNUMLET, MIDLETTER, MIDNUM, NUMERIC, EXTENDNUMLET, WSEGSPACE = range(11, 19)
EXTPICT = 32
WHITE = 64
WB_MASK = 31

_WB_NAMES = {
    CR: "CR", LF: "LF", NEWLINE: "Newline", EXTEND: "Extend", ZWJ: "ZWJ", RI: "Regional_Indicator",
    FORMAT: "Format", KATAKANA: "Katakana", HEBREW: "Hebrew_Letter", ALETTER: "ALetter",
    SQUOTE: "Single_Quote", DQUOTE: "Double_Quote", MIDNUMLET: "MidNumLet", MIDLETTER: "MidLetter",
    MIDNUM: "MidNum", NUMERIC: "Numeric", EXTENDNUMLET: "ExtendNumLet", WSEGSPACE: "WSegSpace",
}


_TABLE_LAYOUT = 1  # bump when the table's bit layout or value numbering changes


@functools.lru_cache(maxsize=1)
def property_table() -> np.ndarray:
    """uint8[0x110000]: Word_Break value | EXTPICT | WHITE for every code point, read-only.

    Building it takes about 0.1 s, a tenth of a small `dclm dedup bff` run, so it is cached in the
    package's `__pycache__` keyed by the installed `regex` build (whose Unicode data it holds); an unwritable or
    damaged cache only means building it again."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "__pycache__",
                        f"word_break_table-{_regex_build()}-{_TABLE_LAYOUT}.npy")
    try:
        table = np.load(path, allow_pickle=False)
        if table.dtype != np.uint8 or table.shape != (0x110000,):
            raise ValueError(path)
    except (OSError, ValueError):
        table = _build_property_table()
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            tmp = f"{path}.{os.getpid()}.tmp"
            with open(tmp, "wb") as f:
                np.save(f, table, allow_pickle=False)
            os.replace(tmp, path)
        except OSError:
            pass
    table.setflags(write=False)
    return table


def _regex_build() -> str:
    """Identifies the installed `regex` build (its compiled module holds the Unicode data) without the
    ~35 ms of importing it: the size and mtime of that module's file."""
    spec = importlib.util.find_spec("regex")
    if spec is None or not spec.submodule_search_locations:
        raise DclmError("the `regex` package is missing; pip install regex")
    folder = spec.submodule_search_locations[0]
    compiled = sorted(n for n in os.listdir(folder) if n.startswith("_regex.") and not n.endswith(".py"))
    if not compiled:
        raise DclmError(f"the `regex` package in {folder} has no compiled module; reinstall regex")
    st = os.stat(os.path.join(folder, compiled[0]))
    return f"{st.st_size}-{st.st_mtime_ns}"


def _build_property_table() -> np.ndarray:
    import regex

    every = np.arange(0x110000, dtype=np.uint32).tobytes().decode("utf-32-le", "surrogatepass")
    table = np.zeros(0x110000, dtype=np.uint8)
    for value, name in _WB_NAMES.items():
        for m in regex.finditer(r"\p{Word_Break=%s}+" % name, every):
            table[m.start():m.end()] = value
    for m in regex.finditer(r"\p{Extended_Pictographic}+", every):
        table[m.start():m.end()] |= EXTPICT
    for m in regex.finditer(r"\p{White_Space}+", every):
        table[m.start():m.end()] |= WHITE
    return table


def _ignorable(p: int) -> bool:
    return p == EXTEND or p == FORMAT or p == ZWJ


def _ahletter(p: int) -> bool:
    return p == ALETTER or p == HEBREW


def _midletterq(p: int) -> bool:
    return p == MIDLETTER or p == MIDNUMLET or p == SQUOTE


def _midnumq(p: int) -> bool:
    return p == MIDNUM or p == MIDNUMLET or p == SQUOTE


def boundaries(text: str) -> list[int]:
    """Code-point offsets of every word boundary in `text` (0 and len included), UAX #29 WB1–WB999."""
    table = property_table()
    n = len(text)
    if n == 0:
        return [0]
    props = [int(table[ord(c)]) for c in text]
    wb = [p & WB_MASK for p in props]
    # next_base[i]: Word_Break of the first non-ignorable code point after i (WB4 lookahead)
    next_base = [-1] * n
    nxt = -1
    for i in range(n - 1, -1, -1):
        next_base[i] = nxt
        if not _ignorable(wb[i]):
            nxt = wb[i]
    out = [0]
    prev, prev2, ri_run = wb[0], -1, 1 if wb[0] == RI else 0
    for i in range(1, n):
        a, b = wb[i - 1], wb[i]
        if a == CR and b == LF:
            brk = False
        elif a in (CR, LF, NEWLINE) or b in (CR, LF, NEWLINE):
            brk = True
        elif a == ZWJ and props[i] & EXTPICT:
            brk = False
        elif a == WSEGSPACE and b == WSEGSPACE:
            brk = False
        elif _ignorable(b):
            brk = False
        else:
            nb = next_base[i]
            brk = not (
                (_ahletter(prev) and _ahletter(b))
                or (_ahletter(prev) and _midletterq(b) and _ahletter(nb))
                or (_ahletter(prev2) and _midletterq(prev) and _ahletter(b))
                or (prev == HEBREW and b == SQUOTE)
                or (prev == HEBREW and b == DQUOTE and nb == HEBREW)
                or (prev2 == HEBREW and prev == DQUOTE and b == HEBREW)
                or (prev == NUMERIC and b == NUMERIC)
                or (_ahletter(prev) and b == NUMERIC)
                or (prev == NUMERIC and _ahletter(b))
                or (prev2 == NUMERIC and _midnumq(prev) and b == NUMERIC)
                or (prev == NUMERIC and _midnumq(b) and nb == NUMERIC)
                or (prev == KATAKANA and b == KATAKANA)
                or ((_ahletter(prev) or prev in (NUMERIC, KATAKANA, EXTENDNUMLET)) and b == EXTENDNUMLET)
                or (prev == EXTENDNUMLET and (_ahletter(b) or b in (NUMERIC, KATAKANA)))
                or (prev == RI and b == RI and ri_run % 2 == 1)
            )
        if brk:
            out.append(i)
        if _ignorable(b) and not brk:
            continue  # WB4: absorbed into the preceding character
        ri_run = ri_run + 1 if (b == RI and prev == RI) else (1 if b == RI else 0)
        prev2, prev = prev, b
    out.append(n)
    return out


def is_white_space(segment: str) -> bool:
    """True if every character has the Unicode White_Space property (Rust `char::is_whitespace`)."""
    table = property_table()
    return all(table[ord(c)] & WHITE for c in segment)


def split_word_bounds(text: str) -> list[str]:
    """Every UAX #29 word segment of `text`, whitespace runs included (Rust `split_word_bounds`)."""
    b = boundaries(text)
    return [text[s:e] for s, e in zip(b, b[1:]) if e > s]


def tokenize(text: str) -> list[str]:
    """bff's tokens: the word segments that are not made only of White_Space characters."""
    return [seg for seg in split_word_bounds(text) if not is_white_space(seg)]


def tokenize_with_offsets(text: str) -> list[tuple[int, str]]:
    """bff's tokens with the UTF-8 byte offset where each starts (Rust `split_word_bound_indices`)."""
    out = []
    b = boundaries(text)
    byte = 0
    for s, e in zip(b, b[1:]):
        seg = text[s:e]
        if not is_white_space(seg):
            out.append((byte, seg))
        byte += len(seg.encode("utf-8", "surrogatepass"))
    return out


def rstrip_white_space(text: str) -> str:
    """`text` without trailing White_Space characters (Rust `str::trim_end`)."""
    table = property_table()
    end = len(text)
    while end and table[ord(text[end - 1])] & WHITE:
        end -= 1
    return text[:end]


def is_blank(text: str) -> bool:
    """Rust `text.trim().is_empty()`: the text is empty or only White_Space."""
    return is_white_space(text)
