"""numba kernels for bff, the fast path: tokenise + hash whole files, build n-gram units, check/insert the
Bloom filter and make every remove type's decisions.

Plain-Python twins, which share no decision code with this module: `segment.boundaries` (segmentation),
`hashing` (hash values and probe positions) and `reference` (decisions; used only by the tests). The tests
hold these kernels to the twins bit for bit.

A file's documents are concatenated into one UTF-8 byte buffer with offsets, so each stage is a
single call. Token arrays: `tok_hash` (uint64), `tok_start` (UTF-8 byte offset in its document) and
`tok_para` (paragraph index in its document; paragraph k > 0 starts at the k-th `\\n`).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from dclm.dedup.bff.segment import (
    ALETTER, CR, DQUOTE, EXTEND, EXTENDNUMLET, EXTPICT, FORMAT, HEBREW, KATAKANA, LF, MIDLETTER, MIDNUM,
    MIDNUMLET, NEWLINE, NUMERIC, RI, SQUOTE, WB_MASK, WHITE, WSEGSPACE, ZWJ,
)

_U33 = np.uint64(33)
_C1 = np.uint64(0xFF51AFD7ED558CCD)
_C2 = np.uint64(0xC4CEB9FE1A85EC53)
_FNV = np.uint64(0x100000001B3)
_ONE = np.uint64(1)


@njit(cache=True, inline="always")
def fmix64(h):
    h ^= h >> _U33
    h *= _C1
    h ^= h >> _U33
    h *= _C2
    h ^= h >> _U33
    return h


@njit(cache=True, inline="always")
def _ign(p):
    return p == EXTEND or p == FORMAT or p == ZWJ


@njit(cache=True, inline="always")
def _ah(p):
    return p == ALETTER or p == HEBREW


@njit(cache=True, inline="always")
def _midl(p):
    return p == MIDLETTER or p == MIDNUMLET or p == SQUOTE


@njit(cache=True, inline="always")
def _midn(p):
    return p == MIDNUM or p == MIDNUMLET or p == SQUOTE


@njit(cache=True)
def _is_break(a, b, prev, prev2, nb, ri_run, b_extpict):
    """UAX #29 WB3–WB999 between raw neighbours a|b with WB4-effective context prev2, prev | b, nb."""
    if a == CR and b == LF:
        return False
    if a == CR or a == LF or a == NEWLINE or b == CR or b == LF or b == NEWLINE:
        return True
    if a == ZWJ and b_extpict:
        return False
    if a == WSEGSPACE and b == WSEGSPACE:
        return False
    if _ign(b):
        return False
    if _ah(prev) and _ah(b):
        return False
    if _ah(prev) and _midl(b) and _ah(nb):
        return False
    if _ah(prev2) and _midl(prev) and _ah(b):
        return False
    if prev == HEBREW and b == SQUOTE:
        return False
    if prev == HEBREW and b == DQUOTE and nb == HEBREW:
        return False
    if prev2 == HEBREW and prev == DQUOTE and b == HEBREW:
        return False
    if prev == NUMERIC and b == NUMERIC:
        return False
    if _ah(prev) and b == NUMERIC:
        return False
    if prev == NUMERIC and _ah(b):
        return False
    if prev2 == NUMERIC and _midn(prev) and b == NUMERIC:
        return False
    if prev == NUMERIC and _midn(b) and nb == NUMERIC:
        return False
    if prev == KATAKANA and b == KATAKANA:
        return False
    if (_ah(prev) or prev == NUMERIC or prev == KATAKANA or prev == EXTENDNUMLET) and b == EXTENDNUMLET:
        return False
    if prev == EXTENDNUMLET and (_ah(b) or b == NUMERIC or b == KATAKANA):
        return False
    if prev == RI and b == RI and ri_run % 2 == 1:
        return False
    return True


@njit(cache=True, inline="always")
def _decode(buf, i):
    """(code point, length) of the UTF-8 sequence at byte i (input is valid UTF-8 from Python's encoder)."""
    b0 = np.int64(buf[i])
    if b0 < 0x80:
        return b0, 1
    if b0 < 0xE0:
        return ((b0 & 0x1F) << 6) | (np.int64(buf[i + 1]) & 0x3F), 2
    if b0 < 0xF0:
        return ((b0 & 0x0F) << 12) | ((np.int64(buf[i + 1]) & 0x3F) << 6) | (np.int64(buf[i + 2]) & 0x3F), 3
    return (((b0 & 0x07) << 18) | ((np.int64(buf[i + 1]) & 0x3F) << 12) | ((np.int64(buf[i + 2]) & 0x3F) << 6)
            | (np.int64(buf[i + 3]) & 0x3F)), 4


@njit(cache=True)
def _next_base(buf, table, j, e):
    """Word_Break of the first non-ignorable code point at or after byte j (WB4 lookahead), or -1."""
    while j < e:
        c, n = _decode(buf, j)
        w = table[c] & WB_MASK
        if not _ign(w):
            return w
        j += n
    return -1


def tokenize_docs(buf, doc_off, table, tok_seed):
    """Tokens of every document of a UTF-8 buffer (`doc_off` in bytes): (tok_hash, tok_start, tok_para,
    doc_tok_off, para_start, doc_para_off, doc_bytes, para_cp); paragraph starts are given in UTF-8 bytes
    (`para_start`) and code points (`para_cp`).

    Token arrays are sized for one token per two bytes and retried at one per byte.
    """
    out = _tokenize_docs(buf, doc_off, table, tok_seed, buf.shape[0] // 2 + 16)
    if out is None:
        out = _tokenize_docs(buf, doc_off, table, tok_seed, buf.shape[0] + 16)
    return out


@njit(cache=True)
def _tokenize_docs(buf, doc_off, table, tok_seed, cap):
    n_docs = doc_off.shape[0] - 1
    total = buf.shape[0]
    tok_hash = np.empty(cap, dtype=np.uint64)
    tok_start = np.empty(cap, dtype=np.int64)
    tok_para = np.empty(cap, dtype=np.int32)
    para_start = np.empty(total + n_docs + 1, dtype=np.int32)
    para_cp = np.empty(total + n_docs + 1, dtype=np.int32)
    doc_tok_off = np.zeros(n_docs + 1, dtype=np.int64)
    doc_para_off = np.zeros(n_docs + 1, dtype=np.int64)
    doc_bytes = np.zeros(n_docs, dtype=np.int64)
    nt = 0
    npara = 0
    for d in range(n_docs):
        s, e = doc_off[d], doc_off[d + 1]
        para_start[npara] = 0
        para_cp[npara] = 0
        npara += 1
        para = 0
        ncp = 0
        seg_start = 0
        h = tok_seed
        white = True
        prev = -1
        prev2 = -1
        ri_run = 0
        a = -1
        b = -1
        i = s
        while True:
            n = 0
            c = 0
            pr = 0
            if i == e:
                brk = i > s
            else:
                c, n = _decode(buf, i)
                pr = table[c]
                b = pr & WB_MASK
                if i == s:
                    brk = False
                    prev = b
                    ri_run = 1 if b == RI else 0
                elif _ah(a) and _ah(b):
                    brk = False  # WB5, the common case inside words
                    prev2 = prev
                    prev = b
                else:
                    nb = _next_base(buf, table, i + n, e) if (b == MIDLETTER or b == MIDNUMLET or b == SQUOTE
                                                              or b == MIDNUM or b == DQUOTE) else -1
                    brk = _is_break(a, b, prev, prev2, nb, ri_run, (pr & EXTPICT) != 0)
                    if brk or not _ign(b):
                        ri_run = ri_run + 1 if (b == RI and prev == RI) else (1 if b == RI else 0)
                        prev2 = prev
                        prev = b
            if brk:
                if not white:
                    if nt >= cap:
                        return None
                    tok_hash[nt] = fmix64(h)
                    tok_start[nt] = seg_start
                    tok_para[nt] = para
                    nt += 1
                h = tok_seed
                white = True
                seg_start = i - s
            if i == e:
                break
            if c == 10:
                para += 1
                para_start[npara] = i - s
                para_cp[npara] = ncp
                npara += 1
            h = (h ^ np.uint64(c)) * _FNV
            if (pr & WHITE) == 0:
                white = False
            a = b
            ncp += 1
            i += n
        doc_bytes[d] = e - s
        doc_tok_off[d + 1] = nt
        doc_para_off[d + 1] = npara
    return (tok_hash[:nt], tok_start[:nt], tok_para[:nt], doc_tok_off, para_start[:npara], doc_para_off, doc_bytes,
            para_cp[:npara])


@njit(cache=True)
def whole_text_hashes(buf, doc_off, tok_seed, ng_seed):
    """bff `exact` mode: each document's whole text hashed as a one-token n-gram."""
    n = doc_off.shape[0] - 1
    out = np.empty(n, dtype=np.uint64)
    for d in range(n):
        h = tok_seed
        i = doc_off[d]
        while i < doc_off[d + 1]:
            c, k = _decode(buf, i)
            h = (h ^ np.uint64(c)) * _FNV
            i += k
        out[d] = fmix64(((ng_seed ^ fmix64(h)) * _C2) ^ _ONE)  # `_ngram` of the single token
    return out


@njit(cache=True, inline="always")
def _ngram(tok_hash, start, length, ng_seed):
    h = ng_seed
    for j in range(start, start + length):
        h = (h ^ tok_hash[j]) * _C2
    return fmix64(h ^ np.uint64(length))


@njit(cache=True)
def paragraph_units(tok_hash, tok_para, doc_tok_off, doc_para_off, max_n, min_n, ng_seed, whole_doc):
    """bff's unit n-grams: windows of max_n tokens inside each paragraph (or the whole document when
    `whole_doc`); a unit with no full window but >= min_n tokens is one n-gram of all its tokens.

    Returns (unit_ng_off, ngrams); units are paragraphs in order (or one per document).
    """
    n_docs = doc_tok_off.shape[0] - 1
    n_units = n_docs if whole_doc else doc_para_off[n_docs]
    unit_ng_off = np.zeros(n_units + 1, dtype=np.int64)
    # pass 1: token ranges and n-gram counts per unit
    unit_tok = np.empty((n_units, 2), dtype=np.int64)
    for d in range(n_docs):
        t0, t1 = doc_tok_off[d], doc_tok_off[d + 1]
        if whole_doc:
            unit_tok[d, 0] = t0
            unit_tok[d, 1] = t1
            continue
        u0 = doc_para_off[d]
        for u in range(u0, doc_para_off[d + 1]):
            unit_tok[u, 0] = t0
            unit_tok[u, 1] = t0
        t = t0
        while t < t1:
            p = tok_para[t]
            s = t
            while t < t1 and tok_para[t] == p:
                t += 1
            unit_tok[u0 + p, 0] = s
            unit_tok[u0 + p, 1] = t
    total = 0
    for u in range(n_units):
        L = unit_tok[u, 1] - unit_tok[u, 0]
        c = L - max_n + 1 if L >= max_n else (1 if L >= min_n else 0)
        total += c
        unit_ng_off[u + 1] = total
    ngrams = np.empty(total, dtype=np.uint64)
    for u in range(n_units):
        s, e = unit_tok[u, 0], unit_tok[u, 1]
        L = e - s
        k = unit_ng_off[u]
        if L >= max_n:
            for w in range(L - max_n + 1):
                ngrams[k + w] = _ngram(tok_hash, s + w, max_n, ng_seed)
        elif L >= min_n:
            ngrams[k] = _ngram(tok_hash, s, L, ng_seed)
    return unit_ng_off, ngrams


@njit(cache=True)
def document_windows(tok_hash, tok_para, doc_tok_off, max_n, ng_seed):
    """All max_n windows of each document across paragraphs, with the paragraphs of their first and
    last tokens: (doc_ng_off, ngrams, first_para, last_para)."""
    n_docs = doc_tok_off.shape[0] - 1
    doc_ng_off = np.zeros(n_docs + 1, dtype=np.int64)
    total = 0
    for d in range(n_docs):
        L = doc_tok_off[d + 1] - doc_tok_off[d]
        total += L - max_n + 1 if L >= max_n else 0
        doc_ng_off[d + 1] = total
    ngrams = np.empty(total, dtype=np.uint64)
    first = np.empty(total, dtype=np.int32)
    last = np.empty(total, dtype=np.int32)
    for d in range(n_docs):
        s = doc_tok_off[d]
        k = doc_ng_off[d]
        for w in range(doc_ng_off[d + 1] - k):
            ngrams[k + w] = _ngram(tok_hash, s + w, max_n, ng_seed)
            first[k + w] = tok_para[s + w]
            last[k + w] = tok_para[s + w + max_n - 1]
    return doc_ng_off, ngrams, first, last


@njit(cache=True)
def short_doc_ngrams(tok_hash, doc_tok_off, max_n, min_n, ng_seed):
    """For `both` mode: the whole-document n-gram of documents with fewer than max_n but >= min_n
    tokens (flag, hash); other documents get flag 0."""
    n_docs = doc_tok_off.shape[0] - 1
    flag = np.zeros(n_docs, dtype=np.bool_)
    out = np.zeros(n_docs, dtype=np.uint64)
    for d in range(n_docs):
        L = doc_tok_off[d + 1] - doc_tok_off[d]
        if L < max_n and L >= min_n:
            flag[d] = True
            out[d] = _ngram(tok_hash, doc_tok_off[d], L, ng_seed)
    return flag, out


# ---------------------------------------------------------------- Bloom filter (uint64 words)


_M32 = np.uint64(0xFFFFFFFF)
_S32 = np.uint64(32)


@njit(cache=True, inline="always")
def _mulhi(a, b):
    """High 64 bits of the 128-bit product a·b: maps a uniform 64-bit a onto [0, b) without a division."""
    a_lo = a & _M32
    a_hi = a >> _S32
    b_lo = b & _M32
    b_hi = b >> _S32
    lo_lo = a_lo * b_lo
    hi_lo = a_hi * b_lo
    cross = (lo_lo >> _S32) + (hi_lo & _M32) + a_lo * b_hi
    return (hi_lo >> _S32) + (cross >> _S32) + a_hi * b_hi


@njit(cache=True, inline="always")
def _contains(bits, m_bits, k, probe_seed, h):
    # all k loads are independent (no early exit), so their cache misses overlap
    h2 = fmix64(h ^ probe_seed) | _ONE
    x = h
    acc = _ONE
    for _ in range(k):
        b = _mulhi(x, m_bits)
        acc &= bits[b >> np.uint64(6)] >> (b & np.uint64(63))
        x += h2
    return (acc & _ONE) != 0


@njit(cache=True, inline="always")
def _insert(bits, m_bits, k, probe_seed, h):
    h2 = fmix64(h ^ probe_seed) | _ONE
    x = h
    for _ in range(k):
        b = _mulhi(x, m_bits)
        bits[b >> np.uint64(6)] |= _ONE << (b & np.uint64(63))
        x += h2


@njit(cache=True)
def contains_many(bits, m_bits, k, probe_seed, hashes):
    out = np.empty(hashes.shape[0], dtype=np.bool_)
    for i in range(hashes.shape[0]):
        out[i] = _contains(bits, m_bits, k, probe_seed, hashes[i])
    return out


@njit(cache=True)
def insert_many(bits, m_bits, k, probe_seed, hashes):
    for i in range(hashes.shape[0]):
        _insert(bits, m_bits, k, probe_seed, hashes[i])


@njit(cache=True)
def decide_exact(bits, m_bits, k, probe_seed, hashes, update):
    """bff `exact` mode, in order: a document is a duplicate when its hash is in the filter, else inserted."""
    dup = np.zeros(hashes.shape[0], dtype=np.bool_)
    for i in range(hashes.shape[0]):
        if _contains(bits, m_bits, k, probe_seed, hashes[i]):
            dup[i] = True
        elif update:
            _insert(bits, m_bits, k, probe_seed, hashes[i])
    return dup


@njit(cache=True, inline="always")
def _count_contained(bits, m_bits, k, probe_seed, ngrams, s, e):
    """How many of ngrams[s:e] the filter holds."""
    c = 0
    for j in range(s, e):
        if _contains(bits, m_bits, k, probe_seed, ngrams[j]):
            c += 1
    return c


@njit(cache=True, inline="always")
def _insert_range(bits, m_bits, k, probe_seed, ngrams, s, e):
    for j in range(s, e):
        _insert(bits, m_bits, k, probe_seed, ngrams[j])


@njit(cache=True, inline="always")
def _decide_unit_range(bits, m_bits, k, probe_seed, unit_ng_off, ngrams, u0, u1, threshold, update,
                       contained, removed):
    """bff `process_line` for units u0..u1-1, in order: count contained n-grams, remove the unit when
    contained/total > threshold, otherwise insert its n-grams."""
    for u in range(u0, u1):
        s, e = unit_ng_off[u], unit_ng_off[u + 1]
        c = _count_contained(bits, m_bits, k, probe_seed, ngrams, s, e)
        contained[u] = c
        if e > s and c / (e - s) > threshold:
            removed[u] = True
        elif update:
            _insert_range(bits, m_bits, k, probe_seed, ngrams, s, e)


@njit(cache=True)
def decide_units(bits, m_bits, k, probe_seed, unit_ng_off, ngrams, threshold, update):
    """Every unit (paragraph or document) in order; returns (contained, removed)."""
    n = unit_ng_off.shape[0] - 1
    contained = np.zeros(n, dtype=np.int64)
    removed = np.zeros(n, dtype=np.bool_)
    _decide_unit_range(bits, m_bits, k, probe_seed, unit_ng_off, ngrams, 0, n, threshold, update, contained, removed)
    return contained, removed


@njit(cache=True)
def decide_naive_both(bits, m_bits, k, probe_seed, doc_ng_off, doc_ngrams, doc_para_off, para_ng_off, para_ngrams,
                      threshold, update):
    """Document check first (no insert); a surviving document then runs paragraph mode and afterwards
    inserts its document n-grams. Returns (doc_contained, doc_removed, para_contained, para_removed)."""
    n_docs = doc_ng_off.shape[0] - 1
    doc_contained = np.zeros(n_docs, dtype=np.int64)
    doc_removed = np.zeros(n_docs, dtype=np.bool_)
    n_para = para_ng_off.shape[0] - 1
    para_contained = np.zeros(n_para, dtype=np.int64)
    para_removed = np.zeros(n_para, dtype=np.bool_)
    for d in range(n_docs):
        s, e = doc_ng_off[d], doc_ng_off[d + 1]
        c = _count_contained(bits, m_bits, k, probe_seed, doc_ngrams, s, e)
        doc_contained[d] = c
        if e > s and c / (e - s) > threshold:
            doc_removed[d] = True
            continue
        _decide_unit_range(bits, m_bits, k, probe_seed, para_ng_off, para_ngrams, doc_para_off[d],
                           doc_para_off[d + 1], threshold, update, para_contained, para_removed)
        if update:
            _insert_range(bits, m_bits, k, probe_seed, doc_ngrams, s, e)
    return doc_contained, doc_removed, para_contained, para_removed


@njit(cache=True)
def decide_both(bits, m_bits, k, probe_seed, doc_ng_off, ngrams, first, last, short_flag, short_hash,
                doc_para_off, threshold, update):
    """`both` mode (DCLM `dedup/bff/src/main.rs`, with bff.py's paragraph fix): every check first; the
    document goes when contained/total >= threshold, else a paragraph goes when its own n-grams are
    >= threshold contained; then n-grams of surviving paragraphs, and cross-paragraph n-grams touching
    no removed paragraph, are inserted.
    Returns (doc_contained, doc_total, doc_removed, para_removed)."""
    n_docs = doc_ng_off.shape[0] - 1
    doc_contained = np.zeros(n_docs, dtype=np.int64)
    doc_total = np.zeros(n_docs, dtype=np.int64)
    doc_removed = np.zeros(n_docs, dtype=np.bool_)
    para_removed = np.zeros(doc_para_off[n_docs], dtype=np.bool_)
    for d in range(n_docs):
        s, e = doc_ng_off[d], doc_ng_off[d + 1]
        p0, p1 = doc_para_off[d], doc_para_off[d + 1]
        np_ = p1 - p0
        hit = np.zeros(e - s, dtype=np.bool_)
        pc = np.zeros(np_, dtype=np.int64)
        pt = np.zeros(np_, dtype=np.int64)
        c = 0
        for j in range(s, e):
            if _contains(bits, m_bits, k, probe_seed, ngrams[j]):
                hit[j - s] = True
                c += 1
            if first[j] == last[j]:
                pt[first[j]] += 1
                pc[first[j]] += hit[j - s]
        total = e - s
        short_hit = False
        if short_flag[d]:
            total += 1
            short_hit = _contains(bits, m_bits, k, probe_seed, short_hash[d])
            c += short_hit
        doc_contained[d] = c
        doc_total[d] = total
        if total == 0:
            continue
        if c / total >= threshold:
            doc_removed[d] = True
            continue
        removed_before = np.zeros(np_ + 1, dtype=np.int64)
        for p in range(np_):
            rem = pt[p] > 0 and pc[p] / pt[p] >= threshold
            para_removed[p0 + p] = rem
            removed_before[p + 1] = removed_before[p] + rem
        if not update:
            continue
        for j in range(s, e):
            f, l_ = first[j], last[j]
            if removed_before[l_ + 1] - removed_before[f] == 0:
                _insert(bits, m_bits, k, probe_seed, ngrams[j])
        if short_flag[d]:
            _insert(bits, m_bits, k, probe_seed, short_hash[d])
    return doc_contained, doc_total, doc_removed, para_removed


# ---------------------------------------------------------------- substring mode


@njit(cache=True)
def _merge_touching(iv, n, out):
    """bff `merge_intervals` on iv[:n] in the order given: an interval that starts at or before the end of
    the last merged one extends it (keeping that one's start). Returns the count written to `out`."""
    m = 0
    for i in range(n):
        s, e = iv[i, 0], iv[i, 1]
        if m > 0 and out[m - 1, 1] >= s:
            if e > out[m - 1, 1]:
                out[m - 1, 1] = e
        else:
            out[m, 0] = s
            out[m, 1] = e
            m += 1
    return m


@njit(cache=True)
def _sandwich(iv, n, forward, threshold, out):
    """bff `fuzzy_sandwich_intervals`: walking iv[:n] forwards (or backwards), the next interval joins the
    last group while the group's covered tokens stay >= threshold of its span."""
    m = 0
    covered = 0
    for t in range(n):
        i = t if forward else n - 1 - t
        s, e = iv[i, 0], iv[i, 1]
        if m > 0:
            ns = min(s, out[m - 1, 0])
            ne = max(e, out[m - 1, 1])
            nc = covered + e - s
            if nc >= (ne - ns) * threshold:
                out[m - 1, 0] = ns
                out[m - 1, 1] = ne
                covered = nc
                continue
        out[m, 0] = s
        out[m, 1] = e
        covered = e - s
        m += 1
    return m


@njit(cache=True)
def _merge_pair(u, nu, w, nw, out):
    """bff `merge_sorted_interval_pair`'s two-pointer step on u[:nu] and w[:nw], by (start, end); bff feeds
    it the backward groups in descending order, and so does `decide_substring`."""
    a = 0
    b = 0
    k = 0
    while a < nu and b < nw:
        if u[a, 0] < w[b, 0] or (u[a, 0] == w[b, 0] and u[a, 1] <= w[b, 1]):
            out[k, 0] = u[a, 0]
            out[k, 1] = u[a, 1]
            a += 1
        else:
            out[k, 0] = w[b, 0]
            out[k, 1] = w[b, 1]
            b += 1
        k += 1
    while a < nu:
        out[k, 0] = u[a, 0]
        out[k, 1] = u[a, 1]
        a += 1
        k += 1
    while b < nw:
        out[k, 0] = w[b, 0]
        out[k, 1] = w[b, 1]
        b += 1
        k += 1
    return k


@njit(cache=True)
def _room(a, used, need):
    """`a` with room for `need` more rows after `used` (doubled when short)."""
    if used + need <= a.shape[0]:
        return a
    b = np.empty((max(2 * a.shape[0], used + need), 2), dtype=np.int64)
    b[:used] = a[:used]
    return b


@njit(cache=True)
def decide_substring(bits, m_bits, k, probe_seed, win_off, ngrams, doc_tok_off, max_n, seqlen, threshold, update):
    """bff substring mode, document by document: check every window; runs of seen windows become token
    intervals, merged (and, below threshold 1, fuzzily joined in both directions); those of >= seqlen tokens
    are removed, and the windows that lie wholly in what is kept are inserted.

    Returns (removed_off, removed, kept_off, kept, contained): token intervals [start, end) per document.
    A document without windows gets none of either (its page stays as it is)."""
    n_docs = win_off.shape[0] - 1
    cap = win_off[n_docs] + n_docs
    removed = np.empty((cap, 2), dtype=np.int64)
    kept = np.empty((cap, 2), dtype=np.int64)
    removed_off = np.zeros(n_docs + 1, dtype=np.int64)
    kept_off = np.zeros(n_docs + 1, dtype=np.int64)
    contained = np.zeros(n_docs, dtype=np.int64)
    max_w = 0
    for d in range(n_docs):
        max_w = max(max_w, win_off[d + 1] - win_off[d])
    runs = np.empty((max_w + 1, 2), dtype=np.int64)
    iv = np.empty((2 * max_w + 2, 2), dtype=np.int64)
    fw = np.empty((max_w + 1, 2), dtype=np.int64)
    bw = np.empty((max_w + 1, 2), dtype=np.int64)
    pair = np.empty((2 * max_w + 2, 2), dtype=np.int64)
    nr_out = 0
    nk_out = 0
    for d in range(n_docs):
        s0 = win_off[d]
        n_win = win_off[d + 1] - s0
        n_tok = doc_tok_off[d + 1] - doc_tok_off[d]
        if n_win == 0:
            removed_off[d + 1] = nr_out
            kept_off[d + 1] = nk_out
            continue
        c = 0
        nr = 0
        for j in range(n_win):
            if _contains(bits, m_bits, k, probe_seed, ngrams[s0 + j]):
                c += 1
                if nr > 0 and runs[nr - 1, 1] == j:
                    runs[nr - 1, 1] = j + 1
                else:
                    runs[nr, 0] = j
                    runs[nr, 1] = j + 1
                    nr += 1
        contained[d] = c
        for r in range(nr):  # a run of seen windows [a, b) covers tokens [a, b - 1 + max_n)
            runs[r, 1] += max_n - 1
        m = _merge_touching(runs, nr, iv)
        if threshold < 1.0:
            nf = _sandwich(iv, m, True, threshold, fw)
            nb = _sandwich(iv, m, False, threshold, bw)
            npair = _merge_pair(fw, nf, bw, nb, pair)
            m = _merge_touching(pair, npair, iv)
        removed = _room(removed, nr_out, m)
        kept = _room(kept, nk_out, m + 1)
        q = 0
        for i in range(m):
            if iv[i, 1] - iv[i, 0] >= seqlen:
                removed[nr_out + q, 0] = iv[i, 0]
                removed[nr_out + q, 1] = iv[i, 1]
                q += 1
        # what is kept: the gaps between removed intervals (bff's `invert_intervals`)
        nk = 0
        if q == 0:
            kept[nk_out, 0] = 0
            kept[nk_out, 1] = n_tok
            nk = 1
        else:
            r0 = nr_out
            if removed[r0, 0] > 0:
                kept[nk_out, 0] = 0
                kept[nk_out, 1] = removed[r0, 0]
                nk += 1
            for i in range(q - 1):
                kept[nk_out + nk, 0] = removed[r0 + i, 1]
                kept[nk_out + nk, 1] = removed[r0 + i + 1, 0]
                nk += 1
            if removed[r0 + q - 1, 1] < n_tok:
                kept[nk_out + nk, 0] = removed[r0 + q - 1, 1]
                kept[nk_out + nk, 1] = n_tok
                nk += 1
        if update:
            for i in range(nk_out, nk_out + nk):
                for j in range(kept[i, 1] - kept[i, 0] - max_n + 1):
                    _insert(bits, m_bits, k, probe_seed, ngrams[s0 + kept[i, 0] + j])
        nr_out += q
        nk_out += nk
        removed_off[d + 1] = nr_out
        kept_off[d + 1] = nk_out
    return removed_off, removed[:nr_out], kept_off, kept[:nk_out], contained
