"""Gopher n-gram repetition measures over a word list: numba kernels (`repetition_kernels.py`) and their
plain-Python twins.

Words become integer ids; the ids ("ranks") of the n-grams are built from those of the (n-1)-grams by
grouping the pairs (previous n-gram rank, next word id) in a hash table that compares the pairs exactly
(a hash only picks the slot), so each longer n costs one O(N) pass. The kernels return integers (counts, character
sums); the fractions are formed in Python exactly as DCLM forms them, so the floats are identical.
"""

from __future__ import annotations

from collections import Counter

import numpy as np


def _kernels():
    from dclm.mappers.filters import repetition_kernels

    return repetition_kernels


class NgramIndex:
    """Exact n-gram ranks for one word list, built incrementally (n = 1, 2, 3, ...)."""

    def __init__(self, words: list[str]):
        vocab = {w: i for i, w in enumerate(dict.fromkeys(words))}
        self.n_words = len(words)
        self.ids = np.fromiter(map(vocab.__getitem__, words), dtype=np.int64, count=len(words))
        self.vocab_size = max(len(vocab), 1)
        self.cum_len = np.zeros(len(words) + 1, dtype=np.int64)
        np.cumsum(np.fromiter(map(len, words), dtype=np.int64, count=len(words)), out=self.cum_len[1:])
        self.total_chars = int(self.cum_len[-1])
        self._restart()

    def _restart(self) -> None:
        self._n = 1
        self._rank = self.ids
        self._counts = np.bincount(self.ids)

    def grams(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """(rank per n-gram position, count per rank) for the n-grams of the word list (n >= 1)."""
        if n < self._n:
            self._restart()
        while self._n < n:
            m = len(self._rank) - 1
            if m <= 0:
                self._rank = self._counts = np.zeros(0, dtype=np.int64)
            elif len(self._counts) == len(self._rank):  # all distinct: so are the longer n-grams
                self._rank = np.arange(m, dtype=np.int64)
                self._counts = np.ones(m, dtype=np.int64)
            else:
                self._rank, self._counts = _kernels().next_ranks(self._rank, self.ids, self._n + 1, self.vocab_size)
            self._n += 1
        return self._rank, self._counts

    def max_count(self, n: int) -> int:
        """The count of the most common n-gram (0 when there are no n-grams)."""
        counts = self.grams(n)[1]
        return int(counts.max()) if len(counts) else 0


def most_common_fraction(index: NgramIndex, n: int) -> float | None:
    """Chars of the most common n-gram (the longest among ties) x its count / all word chars;
    None when there are no n-grams or none repeats."""
    rank, counts = index.grams(n)
    if len(rank) == 0 or counts.max() == 1:
        return None
    top, longest = _kernels().most_common(rank, counts, index.cum_len, n)
    return int(longest) * int(top) / index.total_chars


def all_repeated_fraction(index: NgramIndex, n: int) -> float | None:
    """Chars of the words covered by any n-gram occurring more than once / all word chars;
    None when there are no n-grams or none repeats."""
    rank, counts = index.grams(n)
    if len(rank) == 0 or counts.max() == 1:
        return None
    return int(_kernels().repeated_chars(rank, counts, index.cum_len, n)) / index.total_chars


# ---------------------------------------------------------------- plain-Python twins (DCLM's algorithm)


def _ngrams(words: list[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]


def most_common_fraction_reference(words: list[str], n: int) -> float | None:
    grams = _ngrams(words, n)
    if not grams:
        return None
    counts = Counter(grams)
    top = max(counts.values())
    if top == 1:
        return None
    longest = max(sum(len(w) for w in g) for g, c in counts.items() if c == top)
    return longest * top / sum(len(w) for w in words)


def all_repeated_fraction_reference(words: list[str], n: int) -> float | None:
    grams = _ngrams(words, n)
    if not grams:
        return None
    counts = Counter(grams)
    if max(counts.values()) == 1:
        return None
    covered: set[int] = set()
    for i, g in enumerate(grams):
        if counts[g] > 1:
            covered.update(range(i, i + n))
    return sum(len(words[i]) for i in covered) / sum(len(w) for w in words)
