"""numba kernels of `repetition.py` (imported on first use, so loading the mapper catalogue stays light)."""

import numpy as np
from numba import njit


@njit(cache=True)
def next_ranks(prev: np.ndarray, ids: np.ndarray, n: int, vocab: int):
    """Ranks (labels in order of first occurrence) and per-rank counts of the n-grams, given the ranks of
    the (n-1)-grams: the pairs (previous rank, next word id) are grouped in an open-addressing hash table
    that compares the pairs exactly."""
    m = len(prev) - 1
    size = 16
    while size < 2 * m:
        size *= 2
    mask = size - 1
    keys = np.full(size, -1, dtype=np.int64)
    labels = np.empty(size, dtype=np.int64)
    rank = np.empty(m, dtype=np.int64)
    counts = np.zeros(m, dtype=np.int64)
    g = 0
    for i in range(m):
        key = prev[i] * vocab + ids[n - 1 + i]
        h = ((key * 0x9E3779B1) ^ (key >> 15)) & mask
        while True:
            k = keys[h]
            if k == key:
                r = labels[h]
                rank[i] = r
                counts[r] += 1
                break
            if k == -1:
                keys[h] = key
                labels[h] = g
                rank[i] = g
                counts[g] = 1
                g += 1
                break
            h = (h + 1) & mask
    return rank, counts[:g]


@njit(cache=True)
def most_common(rank: np.ndarray, counts: np.ndarray, cum_len: np.ndarray, n: int):
    """(top count, longest char length among the n-grams with that count)."""
    top = counts.max()
    longest = 0
    for i in range(len(rank)):
        if counts[rank[i]] == top:
            length = cum_len[i + n] - cum_len[i]
            if length > longest:
                longest = length
    return top, longest


@njit(cache=True)
def repeated_chars(rank: np.ndarray, counts: np.ndarray, cum_len: np.ndarray, n: int) -> int:
    """Characters of the words covered by an n-gram that occurs more than once (each word counted once)."""
    covered_to = 0
    chars = 0
    for i in range(len(rank)):
        if counts[rank[i]] > 1:
            start = max(i, covered_to)
            if i + n > start:
                chars += cum_len[i + n] - cum_len[start]
                covered_to = i + n
    return chars
