"""numba kernels for fastText supervised prediction (the fast path of `dclm.classifier.model.hq_probs`).

They redo, for a softmax model without subword n-grams (DCLM's quality classifiers), what fastText's C++
`FastText::predictLine` does for one line, with the same float32 arithmetic in the same order, so the
probabilities are bit-identical (tests/classifier/test_kernels.py compares them with fastText's own
`predict`, the plain twin, on seeded random texts and edge cases):
  - tokens are runs of bytes other than ' ', '\\n', '\\r', '\\t', '\\v', '\\f', '\\0' (`Dictionary::readWord`);
    the line's final newline is the end-of-sentence token `</s>`, and a literal `</s>` ends the line;
  - a token starting with the label prefix is not a word; a word is hashed with fastText's FNV-1a over signed
    bytes, found in the vocabulary (its row is added when in vocabulary) and its hash kept for word n-grams
    (`Dictionary::getLine`, `addWordNgrams`: h = h * 116049371 + next hash over sign-extended 32-bit hashes,
    row nwords + h % bucket);
  - the hidden vector is the float32 sum of the rows in that order times float32(1 / count)
    (`DenseMatrix::averageRowsToVector`), each output is a sequential float32 dot product, then softmax
    (`SoftmaxLoss::computeOutput`), log(p + 1e-5) in double (`std_log`), the last maximum, and exp back in float
    (`Loss::findKBest`, `FastText::predictLine`).
A text the kernel cannot decide the way fastText would (no row at all, a NaN output) gets status 1 and is
left to fastText itself by the caller.
"""

import math

import numpy as np
from numba import njit

from dclm.prefetch import prefetch

EOS = b"</s>"
_FNV_OFFSET = np.uint32(2166136261)
_FNV_PRIME = np.uint32(16777619)
_NGRAM_MUL = np.uint64(116049371)
_M32 = np.uint64(0xFFFFFFFF)
# rows are ~400 bytes scattered over a matrix of hundreds of MB: asking for a row this many rows ahead hides
# most of the memory latency, which otherwise dominates (a hint only: it changes no value)
PREFETCH_AHEAD = 8


@njit(cache=True, inline="always")
def _prefetch_row(wi, row):
    for col in range(0, wi.shape[1], 16):  # one 64-byte line holds 16 float32
        prefetch(wi, row, col)


@njit(cache=True, inline="always")
def is_space(c) -> bool:
    """A fastText token separator (`Dictionary::readWord`)."""
    return c == 32 or c == 10 or c == 13 or c == 9 or c == 11 or c == 12 or c == 0


@njit(cache=True, inline="always")
def fnv_step(h, byte):
    """One byte of fastText's FNV-1a (`Dictionary::hash`): the byte as a signed char, sign-extended to 32 bits."""
    b = np.int64(byte)
    if b >= 128:
        b -= 256
    return np.uint32((np.uint64(h) ^ (np.uint64(b) & _M32)) * np.uint64(_FNV_PRIME) & _M32)


@njit(cache=True)
def fnv(buf, start, end) -> np.uint32:
    h = _FNV_OFFSET
    for i in range(start, end):
        h = fnv_step(h, buf[i])
    return h


@njit(cache=True)
def build_table(vocab: np.ndarray, offsets: np.ndarray):
    """(open-addressing table of word ids keyed by FNV hash, the words' hashes) for the vocabulary given as
    concatenated bytes with `offsets` (n + 1 entries)."""
    n = len(offsets) - 1
    size = 16
    while size < 2 * n:
        size *= 2
    table = np.full(size, -1, dtype=np.int32)
    hashes = np.empty(n, dtype=np.uint32)
    mask = size - 1
    for w in range(n):
        h = fnv(vocab, offsets[w], offsets[w + 1])
        hashes[w] = h
        slot = np.int64(h) & mask
        while table[slot] != -1:
            slot = (slot + 1) & mask
        table[slot] = w
    return table, hashes


@njit(cache=True)
def lookup(buf, start, end, h, table, hashes, vocab, offsets) -> int:
    """The id of the word buf[start:end] (hash h) in `build_table`'s table, or -1."""
    mask = len(table) - 1
    slot = np.int64(h) & mask
    length = end - start
    while True:
        w = table[slot]
        if w == -1:
            return -1
        if hashes[w] == h and offsets[w + 1] - offsets[w] == length:
            o = offsets[w]
            same = True
            for k in range(length):
                if vocab[o + k] != buf[start + k]:
                    same = False
                    break
            if same:
                return w
        slot = (slot + 1) & mask


@njit(cache=True)
def has_prefix(buf, start, end, prefix) -> bool:
    if end - start < len(prefix):
        return False
    for k in range(len(prefix)):
        if buf[start + k] != prefix[k]:
            return False
    return True


@njit(cache=True)
def is_eos(buf, start, end) -> bool:
    return end - start == 4 and buf[start] == 60 and buf[start + 1] == 47 and buf[start + 2] == 115 and buf[start + 3] == 62


@njit(cache=True, inline="always")
def longest_line(starts, ends) -> int:
    """The longest of the lines buf[starts[k]:ends[k]], in bytes (0 for none): sizes the per-line buffers."""
    longest = 0
    for k in range(len(starts)):
        longest = max(longest, ends[k] - starts[k])
    return longest


@njit(cache=True, inline="always")
def next_word(buf, i, end):
    """(start, stop) of the next token of buf[i:end] (fastText's `Dictionary::readWord` separators); start is
    end when none is left."""
    while i < end and is_space(buf[i]):
        i += 1
    j = i
    while j < end and not is_space(buf[j]):
        j += 1
    return i, j


@njit(cache=True)
def line_rows(buf, start, end, table, hashes, vocab, offsets, label, eos_id, eos_hash, nwords, bucket, ngrams, rows):
    """Fill `rows` with the input rows of one line (the bytes buf[start:end] plus the final newline) in
    fastText's order; returns how many (rows must hold 2 * ngrams * tokens + 2)."""
    nrows = 0
    word_hashes = np.empty(end - start + 1, dtype=np.uint32)
    nh = 0
    i = start
    ended = False
    while i < end:
        i, j = next_word(buf, i, end)
        if i >= end:
            break
        if not has_prefix(buf, i, j, label):
            h = fnv(buf, i, j)
            w = lookup(buf, i, j, h, table, hashes, vocab, offsets)
            if w >= 0:
                rows[nrows] = w
                nrows += 1
            word_hashes[nh] = h
            nh += 1
        if is_eos(buf, i, j):
            ended = True
            break
        i = j
    if not ended:
        if eos_id >= 0:
            rows[nrows] = eos_id
            nrows += 1
        word_hashes[nh] = eos_hash
        nh += 1
    for a in range(nh):
        # the hashes are int32 in fastText, widened to uint64 with sign extension
        h = np.uint64(np.int64(np.int32(word_hashes[a])))
        for b in range(a + 1, min(nh, a + ngrams)):
            h = h * _NGRAM_MUL + np.uint64(np.int64(np.int32(word_hashes[b])))
            rows[nrows] = nwords + np.int64(h % np.uint64(bucket))
            nrows += 1
    return nrows


@njit(cache=True)
def predict_lines(buf, starts, ends, table, hashes, vocab, offsets, label, eos_id, eos_hash, nwords, bucket, ngrams,
                  wi, wo):
    """Top-1 (label index, probability as float32, status) for each line buf[starts[k]:ends[k]]."""
    n = len(starts)
    dim = wi.shape[1]
    nlabels = wo.shape[0]
    best = np.zeros(n, dtype=np.int32)
    probs = np.zeros(n, dtype=np.float32)
    status = np.zeros(n, dtype=np.int8)
    longest = longest_line(starts, ends)
    rows = np.empty(2 * max(ngrams, 1) * (longest + 2) + 2, dtype=np.int64)
    hidden = np.empty(dim, dtype=np.float32)
    out = np.empty(nlabels, dtype=np.float32)
    for k in range(n):
        nrows = line_rows(buf, starts[k], ends[k], table, hashes, vocab, offsets, label, eos_id, eos_hash,
                          nwords, bucket, ngrams, rows)
        if nrows == 0:
            status[k] = 1
            continue
        for d in range(dim):
            hidden[d] = np.float32(0.0)
        for r in range(min(PREFETCH_AHEAD, nrows)):
            _prefetch_row(wi, rows[r])
        for r in range(nrows):
            if r + PREFETCH_AHEAD < nrows:
                _prefetch_row(wi, rows[r + PREFETCH_AHEAD])
            row = rows[r]
            for d in range(dim):
                hidden[d] += wi[row, d]
        scale = np.float32(1.0 / nrows)
        for d in range(dim):
            hidden[d] *= scale
        nan = False
        for c in range(nlabels):
            acc = np.float32(0.0)
            for d in range(dim):
                acc += wo[c, d] * hidden[d]
            if math.isnan(acc):
                nan = True
            out[c] = acc
        if nan:
            status[k] = 1
            continue
        top = out[0]
        for c in range(nlabels):
            if not (out[c] < top):
                top = out[c]
        z = np.float32(0.0)
        for c in range(nlabels):
            # loss.cc calls the unqualified (double) exp here; std::exp(float) differs in the last bit at times
            out[c] = np.float32(math.exp(np.float64(out[c] - top)))
            z += out[c]
        for c in range(nlabels):
            out[c] /= z
        b = 0
        blog = np.float32(0.0)
        for c in range(nlabels):
            lg = np.float32(math.log(np.float64(out[c]) + 1e-5))
            if c == 0 or not (lg < blog):
                b = c
                blog = lg
        best[k] = b
        probs[k] = math.exp(blog)
    return best, probs, status
