"""Plain-Python twin of bff's per-document decisions, one function per remove type; used only by the tests.

It reads like bff's `process_line*` functions and works on any membership structure with
`contains(key)` / `insert(key)`, where a key is a tuple of tokens: `SetFilter` (exact, no false
positives) or `BloomTwin` (the same bit positions as the numba path, computed by `hashing`). It shares no
decision code with the fast path (`kernels`, routed by `batch`): tokens come from the plain tokeniser in
`segment`, paragraphs from the text, hashes from `hashing`. `run_bff` must produce the same output as
`process_page` here; the tests (tests/dedup/test_equivalence.py) hold it to that for every remove type.

Where this differs from bff (on purpose, see the `dclm.dedup.bff` package docstring): `both` assigns n-grams to the
paragraph that contains them (bff's paragraph cursor never advances) and `naive-both` inserts a
surviving document's n-grams after its paragraph pass (bff inserts them before, so every paragraph then
finds itself in the filter).
"""

from __future__ import annotations

from typing import Protocol

from dclm.dedup.bff import hashing
from dclm.dedup.bff.config import ANNOTATE_FIELDS
from dclm.dedup.bff.segment import is_blank, rstrip_white_space, tokenize, tokenize_with_offsets


class Membership(Protocol):
    def contains(self, key: tuple[str, ...]) -> bool: ...
    def insert(self, key: tuple[str, ...]) -> None: ...


class SetFilter:
    """Exact membership: a Python set of token tuples."""

    def __init__(self):
        self.items: set[tuple[str, ...]] = set()

    def contains(self, key):
        return key in self.items

    def insert(self, key):
        self.items.add(key)


class BloomTwin:
    """The numba filter's bit positions computed in Python (bits in a bytearray)."""

    def __init__(self, m_bits: int, k: int, seeds: hashing.Seeds):
        self.m_bits, self.k, self.seeds = m_bits, k, seeds
        self.bits = bytearray((m_bits + 7) // 8)

    def _probes(self, key):
        h = hashing.ngram_hash([hashing.token_hash(t, self.seeds) for t in key], self.seeds)
        return hashing.probes(h, self.k, self.m_bits, self.seeds)

    def contains(self, key):
        return all(self.bits[b >> 3] >> (b & 7) & 1 for b in self._probes(key))

    def insert(self, key):
        for b in self._probes(key):
            self.bits[b >> 3] |= 1 << (b & 7)


def paragraph_windows(text: str, whole: bool = False) -> list[tuple[int, int]]:
    """bff's units as UTF-8 byte spans: [0, first \\n), [\\n1, \\n2), ..., [last \\n, len)."""
    raw = text.encode("utf-8", "surrogatepass")
    cuts = [0, len(raw)] if whole else [0, *[i for i, c in enumerate(raw) if c == 10], len(raw)]
    return list(zip(cuts, cuts[1:]))


def _slice(raw: bytes, s: int, e: int) -> str:
    return raw[s:e].decode("utf-8", "surrogatepass")


def unit_ngrams(tokens: list[str], min_n: int, max_n: int) -> list[tuple[str, ...]]:
    """Windows of max_n tokens; a unit without one but with >= min_n tokens is one n-gram of them all."""
    grams = [tuple(tokens[i:i + max_n]) for i in range(len(tokens) - max_n + 1)]
    if not grams and len(tokens) >= min_n:
        grams = [tuple(tokens)]
    return grams


def _units_pass(text, filt, min_n, max_n, threshold, update, whole):
    """bff `process_line` core: (removed byte spans, total contained n-grams, total n-grams)."""
    raw = text.encode("utf-8", "surrogatepass")
    spans, contained_total, total = [], 0, 0
    for s, e in paragraph_windows(text, whole):
        grams = unit_ngrams(tokenize(_slice(raw, s, e)), min_n, max_n)
        contained = sum(filt.contains(g) for g in grams)
        contained_total += contained
        total += len(grams)
        if grams and contained / len(grams) > threshold:
            spans.append([s, e])
        elif update:
            for g in grams:
                filt.insert(g)
    return spans, contained_total, total


def _cut(text: str, spans: list[list[int]]) -> str:
    raw = text.encode("utf-8", "surrogatepass")
    out, last = [], 0
    for s, e in spans:
        out.append(raw[last:s])
        last = e
    out.append(raw[last:])
    return b"".join(out).decode("utf-8", "surrogatepass")


def _units_mode(page, filt, min_n, max_n, threshold, update, annotate, whole):
    text = page["text"]
    spans, contained, _ = _units_pass(text, filt, min_n, max_n, threshold, update, whole)
    out = dict(page)
    if annotate:
        out["bff_duplicate_spans"] = spans
        out["bff_contained_ngram_count"] = contained
    else:
        out["text"] = _cut(text, spans)
    return out


def _naive_both(page, filt, min_n, max_n, threshold, update, annotate):
    text = page["text"]
    grams = unit_ngrams(tokenize(text), min_n, max_n)
    contained = sum(filt.contains(g) for g in grams)
    if grams and contained / len(grams) > threshold:
        out = dict(page)
        if annotate:
            out["bff_duplicate_spans"] = [[0, len(text.encode("utf-8", "surrogatepass"))]]
            out["bff_contained_ngram_count"] = contained
        else:
            out["text"] = ""
        return out
    out = _units_mode(page, filt, min_n, max_n, threshold, update, annotate, whole=False)
    if update:
        for g in grams:
            filt.insert(g)
    return out


def _old_both(page, filt, min_n, max_n, threshold, update, annotate):
    text = page["text"]
    spans, contained, total = _units_pass(text, filt, min_n, max_n, threshold, update, whole=False)
    out = dict(page)
    if annotate:
        out["bff_duplicate_spans"] = spans
        out["bff_contained_ngram_count"] = contained
        return {k: v for k, v in out.items() if k in ANNOTATE_FIELDS}
    new_text = _cut(text, spans)
    if total and contained / total > threshold:
        new_text = ""
    out["text"] = new_text
    out["bff_contained_ngram_count_before_dedupe"] = contained
    return out


def _both(page, filt, min_n, max_n, threshold, update, annotate):
    text = page["text"]
    raw = text.encode("utf-8", "surrogatepass")
    windows = paragraph_windows(text)
    para_of = lambda byte: sum(1 for s, _ in windows[1:] if s < byte)  # noqa: E731
    toks = tokenize_with_offsets(text)
    grams = []  # (key, first paragraph, last paragraph)
    for i in range(len(toks) - max_n + 1):
        grams.append((tuple(t for _, t in toks[i:i + max_n]), para_of(toks[i][0]), para_of(toks[i + max_n - 1][0])))
    if not grams and len(toks) >= min_n:
        grams.append((tuple(t for _, t in toks), 0, len(windows) - 1))
        short = True
    else:
        short = False
    if not grams:
        return dict(page)
    hits = [filt.contains(g) for g, _, _ in grams]
    contained = sum(hits)
    out = dict(page)
    if contained / len(grams) >= threshold:
        if annotate:
            out["bff_duplicate_spans"] = [[0, len(raw)]]
            out["bff_contained_ngram_count"] = contained
        else:
            out["text"] = ""
        return out
    removed = []
    for p in range(len(windows)):
        mine = [h for (g, f, l_), h in zip(grams, hits) if f == l_ == p and not short]
        removed.append(bool(mine) and sum(mine) / len(mine) >= threshold)
    if update:
        for g, f, l_ in grams:
            if not any(removed[f:l_ + 1]):
                filt.insert(g)
    if annotate:
        out["bff_duplicate_spans"] = [list(w) for w, r in zip(windows, removed) if r]
        out["bff_contained_ngram_count"] = contained
    else:
        kept = b"".join(raw[s:e] for (s, e), r in zip(windows, removed) if not r)
        out["text"] = rstrip_white_space(kept.decode("utf-8", "surrogatepass"))
    return out


def merge_intervals(v: list[tuple[int, int]], already_sorted: bool) -> list[tuple[int, int]]:
    """bff `merge_intervals`: union of overlapping or touching intervals, assuming start order."""
    if not already_sorted:
        v = sorted(v, key=lambda x: x[0])
    merged: list[tuple[int, int]] = []
    for s, e in v:
        if merged and merged[-1][1] >= s:
            old_s, old_e = merged.pop()
            merged.append((old_s, max(e, old_e)))
        else:
            merged.append((s, e))
    return merged


def merge_sorted_interval_pair(u, w):
    """bff `merge_sorted_interval_pair` (it is called with the backward pass in descending order; kept)."""
    v, ui, wi = [], 0, 0
    while ui < len(u) and wi < len(w):
        (us, ue), (ws, we) = u[ui], w[wi]
        if us < ws or (us == ws and ue <= we):
            v.append(u[ui])
            ui += 1
        else:
            v.append(w[wi])
            wi += 1
    v.extend(u[ui:])
    v.extend(w[wi:])
    return merge_intervals(v, True)


def invert_intervals(v, max_len):
    """(intervals, gaps) over [0, max_len)."""
    if not v:
        return v, [(0, max_len)]
    inv = []
    if v[0][0] > 0:
        inv.append((0, v[0][0]))
    for (_, e0), (s1, _) in zip(v, v[1:]):
        inv.append((e0, s1))
    if v[-1][1] < max_len:
        inv.append((v[-1][1], max_len))
    return v, inv


def fuzzy_sandwich_intervals(v, forward: bool, threshold: float):
    """bff's greedy merge of neighbouring intervals while covered/span >= threshold, in one direction."""
    out: list[tuple[int, int, int]] = []
    for s, e in (v if forward else reversed(v)):
        if not out:
            out.append((s, e, e - s))
            continue
        cs, ce, cw = out[-1]
        new = (min(s, cs), max(e, ce), cw + e - s)
        if new[2] >= (new[1] - new[0]) * threshold:
            out[-1] = new
        else:
            out.append((s, e, e - s))
    return [(a, b) for a, b, _ in out]


def substring_plan(hits: list[bool], n_tokens: int, max_n: int, seqlen: int, threshold: float):
    """bff substring mode on one document's window hits: (removed token intervals, kept token intervals,
    indices of windows to insert, contained count)."""
    ranges: list[tuple[int, int]] = []
    for idx, hit in enumerate(hits):
        if not hit:
            continue
        if ranges and ranges[-1][1] == idx:
            ranges[-1] = (ranges[-1][0], idx + 1)
        else:
            ranges.append((idx, idx + 1))
    intervals = merge_intervals([(s, e + max_n - 1) for s, e in ranges], True)
    if threshold < 1.0:
        intervals = merge_sorted_interval_pair(fuzzy_sandwich_intervals(intervals, True, threshold),
                                               fuzzy_sandwich_intervals(intervals, False, threshold))
    intervals = [(s, e) for s, e in intervals if e - s >= seqlen]
    removed, kept = invert_intervals(intervals, n_tokens)
    inserts = [s + j for s, e in kept for j in range(max(0, e - s - max_n + 1))]
    return removed, kept, inserts, sum(hits)


def substring_output(page: dict, text: str, starts: list[int], removed, kept, contained: int, annotate: bool) -> dict:
    """Build bff's substring-mode output from token intervals; `starts` are token byte offsets."""
    raw = text.encode("utf-8", "surrogatepass")
    bounds = [*starts, len(raw)]
    out = dict(page)
    if annotate:
        out["bff_duplicate_spans"] = [[bounds[s], bounds[e]] for s, e in removed]
        out["bff_contained_ngram_count"] = contained
    else:
        kept_text = b"".join(raw[bounds[s]:bounds[e]] for s, e in kept).decode("utf-8", "surrogatepass")
        out["text"] = rstrip_white_space(kept_text)
    return out


def _substring(page, filt, max_n, threshold, update, annotate, seqlen):
    text = page["text"]
    toks = tokenize_with_offsets(text)
    grams = [tuple(t for _, t in toks[i:i + max_n]) for i in range(len(toks) - max_n + 1)]
    if not grams:
        return dict(page)
    hits = [filt.contains(g) for g in grams]
    removed, kept, inserts, contained = substring_plan(hits, len(toks), max_n, seqlen, threshold)
    if update:
        for i in inserts:
            filt.insert(grams[i])
    return substring_output(page, text, [b for b, _ in toks], removed, kept, contained, annotate)


def _exact(page, filt, update, annotate):
    key = (page["text"],)
    out = dict(page)
    if filt.contains(key):
        if annotate:
            out["bff_exact_duplicate"] = True
        else:
            out["text"] = ""
    elif update:
        filt.insert(key)
    return out


def process_page(page: dict, filt: Membership, remove_type: str, min_n: int, max_n: int, threshold: float,
                 substr_seqlen: int = 50, update: bool = True, annotate: bool = False) -> dict | None:
    """bff's output for one page (None when it is omitted because its text trims to empty)."""
    if remove_type in ("paragraph", "document"):
        out = _units_mode(page, filt, min_n, max_n, threshold, update, annotate, whole=remove_type == "document")
    elif remove_type == "naive-both":
        out = _naive_both(page, filt, min_n, max_n, threshold, update, annotate)
    elif remove_type == "old-both":
        out = _old_both(page, filt, min_n, max_n, threshold, update, annotate)
    elif remove_type == "both":
        out = _both(page, filt, min_n, max_n, threshold, update, annotate)
    elif remove_type == "substring":
        out = _substring(page, filt, max_n, threshold, update, annotate, substr_seqlen)
    elif remove_type == "exact":
        out = _exact(page, filt, update, annotate)
    else:
        raise ValueError(f"unknown remove type {remove_type!r}")
    return None if is_blank(out["text"]) else out
