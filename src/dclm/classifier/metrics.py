"""Held-out metrics for a binary classifier: precision / recall at a cut, and ROC-AUC.

`roc_auc` is the Mann-Whitney statistic over average ranks (ties count one half), in numpy;
`roc_auc_pairs` is its plain-Python twin over every (positive, negative) pair, used by the tests.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def roc_auc(scores: Sequence[float], labels: Sequence[int]) -> float | None:
    """Area under the ROC curve of `scores` for `labels` (1 = positive); None when a class is missing."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels, dtype=bool)
    n_pos = int(y.sum())
    n_neg = int(y.size - n_pos)
    if n_pos == 0 or n_neg == 0:
        return None
    uniq, inverse, counts = np.unique(s, return_inverse=True, return_counts=True)
    # the average 1-based rank of each distinct value: ranks first..last share their mean
    last = np.cumsum(counts)
    avg_rank = last - (counts - 1) / 2.0
    rank_sum = float(avg_rank[inverse][y].sum())
    return (rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


def roc_auc_pairs(scores: Sequence[float], labels: Sequence[int]) -> float | None:
    pos = [s for s, y in zip(scores, labels) if y]
    neg = [s for s, y in zip(scores, labels) if not y]
    if not pos or not neg:
        return None
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def precision_recall(scores: Sequence[float], labels: Sequence[int], threshold: float = 0.5) -> dict:
    """Precision, recall, F1 and accuracy of `score >= threshold` as the positive prediction."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels, dtype=bool)
    pred = s >= threshold
    tp = int((pred & y).sum())
    fp = int((pred & ~y).sum())
    fn = int((~pred & y).sum())
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / (tp + fn) if tp + fn else None
    f1 = 2 * precision * recall / (precision + recall) if precision and recall else None
    return {
        "threshold": threshold,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "accuracy": float((pred == y).mean()) if y.size else None,
        "true_positives": tp,
        "false_positives": fp,
        "false_negatives": fn,
    }
