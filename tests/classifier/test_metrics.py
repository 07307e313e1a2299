import math
import random

import numpy as np
import pytest

from dclm.classifier.data import reservoir_sample
from dclm.classifier.metrics import precision_recall, roc_auc, roc_auc_pairs
from dclm.classifier.select import histogram, top_fraction_mask, top_fraction_mask_reference


@pytest.mark.parametrize("seed", range(5))
def test_roc_auc_matches_pairwise_twin_with_ties(seed):
    rng = random.Random(seed)
    scores = [round(rng.random(), 1) for _ in range(300)]  # many ties
    labels = [int(rng.random() < 0.3 + 0.4 * s) for s in scores]
    assert roc_auc(scores, labels) == pytest.approx(roc_auc_pairs(scores, labels), abs=1e-12)


def test_roc_auc_edges():
    assert roc_auc([0.1, 0.9], [0, 1]) == 1.0
    assert roc_auc([0.9, 0.1], [0, 1]) == 0.0
    assert roc_auc([0.5, 0.5], [0, 1]) == 0.5
    assert roc_auc([0.2, 0.3], [1, 1]) is None
    assert roc_auc_pairs([0.2, 0.3], [0, 0]) is None


def test_precision_recall():
    m = precision_recall([0.9, 0.6, 0.4, 0.1], [1, 0, 1, 0], 0.5)
    assert (m["precision"], m["recall"], m["accuracy"]) == (0.5, 0.5, 0.5)
    assert m["true_positives"] == 1 and m["false_positives"] == 1 and m["false_negatives"] == 1
    assert precision_recall([0.1], [1])["precision"] is None


def test_reservoir_sample_is_seeded_and_uniform():
    a = reservoir_sample(range(1000), 10, random.Random(5))
    assert a == reservoir_sample(range(1000), 10, random.Random(5))
    assert len(set(a)) == 10 and a != reservoir_sample(range(1000), 10, random.Random(6))
    assert reservoir_sample(range(3), 10, random.Random(0)) == [0, 1, 2]
    counts = np.zeros(20)
    for s in range(2000):
        for x in reservoir_sample(range(20), 5, random.Random(s)):
            counts[x] += 1
    assert counts.min() > 400 and counts.max() < 600  # each item expected 500 times


@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.25, 0.5, 1.0])
def test_top_fraction_mask_matches_twin(fraction):
    rng = random.Random(11)
    scores = [None if rng.random() < 0.05 else round(rng.random(), 2) for _ in range(503)]
    arr = np.array([math.nan if s is None else s for s in scores])
    keep, cut = top_fraction_mask(arr, fraction)
    assert keep.tolist() == top_fraction_mask_reference(scores, fraction)
    n_valid = sum(s is not None for s in scores)
    assert abs(int(keep.sum()) - fraction * n_valid) <= 1
    if keep.any():
        assert cut == arr[keep].min()
        assert (arr[~keep & ~np.isnan(arr)] <= cut).all()


def test_top_fraction_ties_broken_by_input_order():
    keep, cut = top_fraction_mask(np.array([0.5, 0.9, 0.5, 0.5, 0.1]), 0.4)
    assert keep.tolist() == [True, True, False, False, False] and cut == 0.5


def test_histogram_clips_fasttext_overshoot():
    h = histogram(np.array([-1e-5, 0.0, 0.5, 1.00001]), 4)
    assert [b["count"] for b in h] == [2, 0, 1, 1]
