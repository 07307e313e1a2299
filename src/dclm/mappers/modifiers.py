"""DCLM's general modifiers (baselines/mappers/modifiers.py): same names, parameters and results.

A modifier edits `page['text']` and returns `[page]`, or `[]` when the text it leaves is empty. The line
modifiers count characters on ASCII lines with C-level `bytes.translate` and fall back to DCLM's per-character
test otherwise (the `_reference` twins are DCLM's loops; the tests compare both).
"""

from __future__ import annotations

import bisect
import re
import warnings
from typing import Callable

from retrie.retrie import Blacklist

from dclm.assets import resolve_asset
from dclm.mappers.core_utils import split_paragraphs, split_words
from dclm.mappers.registry import factory_function, mapper


CONTENT = "text"
URL = "url"

_UPPER_ASCII = bytes(range(ord("A"), ord("Z") + 1))
_DIGIT_ASCII = b"0123456789"
_WORD = re.compile(r"\S+")
_BLANK_LINE = re.compile(r"(?:\A|\n)[^\S\n]+(?=\n|\Z)")  # a non-empty line of whitespace only


@mapper
def move_url_modifier(page: dict) -> list[dict]:
    """Set `url` from the WARC header `metadata['WARC-Target-URI']`."""
    page[URL] = page["metadata"]["WARC-Target-URI"]
    return [page]


@mapper
def key_name_modifier(page: dict, old_key: str = "content", new_key: str = "text", allow_overwrite: bool = False) -> list[dict]:
    """Rename `old_key` to `new_key`; no-op when `old_key` is absent; refuses to clobber unless allowed."""
    if old_key not in page:
        return [page]
    if new_key in page and not allow_overwrite:
        warnings.warn(f"{new_key} is already in the page but allow_overwrite is set to False.")  # DCLM's UserWarning, same text
        return [page]
    page[new_key] = page.pop(old_key)
    return [page]


@mapper
def html_content_extraction_modifier(page: dict) -> list[dict]:
    """Replace HTML in `text` by justext's paragraphs (empty stoplist, so nothing is judged boilerplate) joined
    with blank lines; a parse error or no paragraphs drops the page."""
    import justext
    from lxml.etree import ParserError

    try:
        paragraphs = justext.justext(page[CONTENT], ())
    except ParserError:
        return []
    if not paragraphs:
        return []
    page[CONTENT] = "\n\n".join(p.text for p in paragraphs)
    return [page]


@mapper
@factory_function
def substring_line_modifier(banlist, case_sensitive=False, location="any", max_length=None,
                            remove_substring_only=False) -> Callable:
    """Remove lines (of at most `max_length` whitespace words) matching a banlist item, or with
    `remove_substring_only` just the match (a line left blank is dropped). Items are regex fragments, *not*
    escaped (so "Read more..." has wildcard dots, as in DCLM). The result is stripped."""
    assert location in {"prefix", "suffix", "any"}
    if isinstance(banlist, str):
        banlist = [banlist]
    banlist = banlist if case_sensitive else [b.lower() for b in banlist]
    pattern = f"(?:{'|'.join(banlist)})"
    if location == "prefix":
        pattern = rf"^{pattern}\s?"
    elif location == "suffix":
        pattern = rf"\s?{pattern}$"
    else:
        pattern = rf"\s?{pattern}"
    regex = re.compile(pattern) if case_sensitive else re.compile(pattern, re.I)
    sub, search = regex.sub, regex.search
    # A line can only match if the bare alternation matches somewhere in the text (with ^/$ at line ends).
    # That holds unless an item uses text-level anchors or lookarounds, where the probe is not used.
    # With `remove_substring_only`, DCLM also drops every non-empty whitespace-only line, match or not.
    core = f"(?:{'|'.join(banlist)})"
    probe = None
    if not any(tok in core for tok in ("(?", "\\A", "\\Z")):
        probe = re.compile(core, re.M if case_sensitive else re.M | re.I).search
    blank_line = _BLANK_LINE.search if remove_substring_only else None

    def modify(page: dict) -> list[dict]:
        if probe is not None and not probe(page[CONTENT]) and not (blank_line and blank_line(page[CONTENT])):
            new_doc = page[CONTENT].strip()
            if new_doc == "":
                return []
            page[CONTENT] = new_doc
            return [page]
        out = []
        for line in page[CONTENT].split("\n"):
            if max_length is None or len(line.split()) <= max_length:
                if remove_substring_only:
                    new = sub("", line)
                    if line and (not new or new.isspace()):
                        continue
                    line = new
                elif search(line):
                    continue
            out.append(line)
        new_doc = "\n".join(out).strip()
        if new_doc == "":
            return []
        page[CONTENT] = new_doc
        return [page]

    return modify


@mapper
@factory_function
def punctuation_line_modifier(remove_ellipses=False) -> Callable:
    """Keep empty lines and lines ending in . ! ? " or … (plus trailing whitespace); with `remove_ellipses`,
    lines ending in ... or … are removed too."""
    punct = re.compile(r'[.!?"\u2026]\s*$').search
    ellipsis = re.compile(r"(?:\.\.\.|\u2026)\s*$").search

    def modify(page: dict) -> list[dict]:
        lines = [line for line in page[CONTENT].split("\n") if punct(line) or not line]
        if remove_ellipses:
            lines = [line for line in lines if not ellipsis(line)]
        new_doc = "\n".join(lines)
        if new_doc == "":
            return []
        page[CONTENT] = new_doc
        return [page]

    return modify


@mapper
def line_length_modifier(page: dict, min_length=0, max_length=float("inf")) -> list[dict]:
    """Keep lines with `min_length <= whitespace words <= max_length`, and exactly-empty lines; not stripped."""
    lines = [line for line in page[CONTENT].split("\n") if min_length <= len(line.split()) <= max_length or not line]
    new_doc = "\n".join(lines)
    if new_doc == "":
        return []
    page[CONTENT] = new_doc
    return [page]


@mapper
def word_length_modifier(page: dict, max_length=1000, **kwargs) -> list[dict]:
    """Remove lines containing a word (by `split_words(**kwargs)`) longer than `max_length` characters."""
    lines = [line for line in page[CONTENT].split("\n") if all(len(w) <= max_length for w in split_words(line, **kwargs))]
    new_doc = "\n".join(lines)
    if new_doc == "":
        return []
    page[CONTENT] = new_doc
    return [page]


def _count_upper(line: str) -> int:
    if line.isascii():
        b = line.encode("ascii")
        return len(b) - len(b.translate(None, _UPPER_ASCII))
    return sum(map(str.isupper, line))


def _count_digits(line: str) -> int:
    if line.isascii():
        b = line.encode("ascii")
        return len(b) - len(b.translate(None, _DIGIT_ASCII))
    return sum(map(str.isdigit, line))


def _ratio_line_modifier(page: dict, max_ratio: float, count: Callable[[str], int]) -> list[dict]:
    lines = [line for line in page[CONTENT].split("\n") if not line or count(line) / len(line) <= max_ratio]
    new_doc = "\n".join(lines).strip()
    if new_doc == "":
        return []
    page[CONTENT] = new_doc
    return [page]


@mapper
def uppercase_ratio_line_modifier(page: dict, max_ratio=0.5) -> list[dict]:
    """Remove non-empty lines whose fraction of uppercase characters exceeds `max_ratio`; result stripped."""
    return _ratio_line_modifier(page, max_ratio, _count_upper)


@mapper
def numeric_ratio_line_modifier(page: dict, max_ratio=1.0) -> list[dict]:
    """Remove non-empty lines whose fraction of digit characters exceeds `max_ratio` (RefinedWeb's
    all-digit rule is `max_ratio: 0.999999`); result stripped."""
    return _ratio_line_modifier(page, max_ratio, _count_digits)


@mapper
@factory_function
def citation_removal_modifier() -> Callable:
    """Delete wiki citation marks: `[12]`, `[]`, `[edit]`, `[citation needed]`."""
    citation = re.compile(r"\[\d*\]|\[edit\]|\[citation needed\]")

    def modify(page: dict) -> list[dict]:
        new_doc = citation.sub("", page[CONTENT])
        if new_doc == "":
            return []
        page[CONTENT] = new_doc
        return [page]

    return modify




def sub_in_words(regex: re.Pattern, probe: re.Pattern, text: str) -> str:
    """`regex.sub("", text)` for a regex whose matches are some leading whitespace plus non-whitespace (as
    DCLM's URL regexes are) and always contain a match of `probe`: only the words holding a probe match,
    each with the whitespace before it, can change, and each such region is rewritten on its own. A match
    never spans two words, and a region starts where the previous word ended, so the left-to-right scan
    over the whole text finds exactly the matches found region by region."""
    hits = [m.start() for m in probe.finditer(text)]
    if not hits:
        return text
    words = [(m.start(), m.end()) for m in _WORD.finditer(text)]
    starts = [start for start, _ in words]
    out, pos, last = [], 0, -1
    for h in hits:
        i = bisect.bisect_right(starts, h) - 1  # the word holding the hit (a probe match starts with non-space)
        if i == last:
            continue
        last = i
        region_start = words[i - 1][1] if i > 0 else 0
        out.append(text[pos:region_start])
        out.append(regex.sub("", text[region_start:words[i][1]]))
        pos = words[i][1]
    out.append(text[pos:])
    return "".join(out)


@mapper
@factory_function
def url_removal_modifier(tlds_filepath="baselines/mappers/iana_tlds.txt") -> Callable:
    """Delete URLs from the text, as DCLM does, quirk included: URLs ending in a known TLD are removed only
    when the text *starts* with a TLD-like string (`re.match` of the case-insensitive TLD trie, e.g. text
    starting "The" passes because of `.th`); IPv4-style URLs are always removed."""
    with open(resolve_asset(tlds_filepath), encoding="utf-8") as f:
        tlds = [re.escape(tld) for tld in f.read().splitlines()]
    tlds_regex = Blacklist(tlds, match_substrings=True).compiled
    url_regex = re.compile(rf"\s{{0,10}}(?:((https?|ftp)://))?[-a-zA-Z0-9@:%._\+~#=]{{1,256}}\.({tlds_regex.pattern})\b"
                           r"([-a-zA-Z0-9()@:%_\+.~#?&//=]*)")
    ipv4_regex = re.compile(r"\s{0,10}\b((https?|ftp)://)?(?:[0-2]?[0-9]{1,2}\.){3}[0-2]?[0-9]{1,2}[-a-zA-Z0-9()@:%_\+.~#?&//=]*")
    gate = tlds_regex.match
    # every match of each regex contains a match of its probe (a cheap scan)
    url_probe = re.compile(rf"\.(?:{tlds_regex.pattern})\b")
    ip_probe = re.compile(r"[0-9]\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]")

    def modify(page: dict) -> list[dict]:
        text = page[CONTENT]
        if gate(text):
            text = sub_in_words(url_regex, url_probe, text)
        text = sub_in_words(ipv4_regex, ip_probe, text)
        page[CONTENT] = text
        if text == "":
            return []
        return [page]

    return modify


@mapper
@factory_function
def counter_line_modifier() -> Callable:
    """Remove lines that are social counters ("12 likes", "1.2k views", ...); result stripped."""
    counter = re.compile(r"^\W*\d(?:,|\.|\d)*(?:K|k|M|m|B|b)?\s+(?:likes|shares|comments|retweets|reposts|quotes|"
                         r"bookmarks|upvotes|downvotes|downloads|views|followers)\W*$").match
    keywords = ("likes", "shares", "comments", "retweets", "reposts", "quotes", "bookmarks", "upvotes", "downvotes",
                "downloads", "views", "followers")

    def modify(page: dict) -> list[dict]:
        text = page[CONTENT]
        low = text.lower()  # lowercasing never creates or removes a newline, so its lines are the lines lowered
        if any(k in low for k in keywords):
            text = "\n".join(line for line, line_low in zip(text.split("\n"), low.split("\n")) if not counter(line_low))
        new_doc = text.strip()
        if new_doc == "":
            return []
        page[CONTENT] = new_doc
        return [page]

    return modify


@mapper
def within_page_dedup(page: dict, granularity: str = "line", normalize=True, **kwargs) -> list[dict]:
    """Keep only the first occurrence of each line/paragraph (compared stripped and lowercased when
    `normalize`; empty units always kept), joined back with the same separator. Never drops the page."""
    if granularity == "line":
        sep = "\n"
    elif granularity == "paragraph":
        sep = "\n\n"
    else:
        raise ValueError(f"granularity must be 'line' or 'paragraph', got {granularity!r}")
    units = split_paragraphs(page[CONTENT], paragraph_end=sep, remove_empty=False, **kwargs)
    seen: set[str] = set()
    kept = []
    for unit in units:
        key = unit.strip().lower() if normalize else unit
        if key not in seen or not key:
            kept.append(unit)
            seen.add(key)
    page[CONTENT] = sep.join(kept)
    return [page]


@mapper
@factory_function
def newline_removal_modifier(max_consecutive=2) -> Callable:
    """Collapse runs of more than `max_consecutive` newlines to exactly `max_consecutive`."""
    pattern = re.compile(r"\n{%d,}" % (max_consecutive + 1))
    replacement = "\n" * max_consecutive
    needle = "\n" * (max_consecutive + 1)

    def modify(page: dict) -> list[dict]:
        if needle in page[CONTENT]:
            page[CONTENT] = pattern.sub(replacement, page[CONTENT])
        return [page]

    return modify


@mapper
def split_lines_modifier(page: dict, delimiter="\n") -> list[dict]:
    """Turn `text` into a list of lines (for line-level exact_dedup); an empty text drops the page."""
    content = page[CONTENT]
    if isinstance(content, list):
        return [page]
    if isinstance(content, str):
        if len(content) == 0:
            return []
        page[CONTENT] = content.split(delimiter)
        return [page]
    raise TypeError(f"text must be a str or list, not {type(content).__name__}")


@mapper
def join_lines_modifier(page: dict, delimiter="\n") -> list[dict]:
    """Join a list-valued `text` back into a string; an empty list drops the page."""
    content = page[CONTENT]
    if isinstance(content, str):
        return [page]
    if isinstance(content, list):
        if len(content) == 0:
            return []
        page[CONTENT] = delimiter.join(content)
        return [page]
    raise TypeError(f"text must be a str or list, not {type(content).__name__}")
