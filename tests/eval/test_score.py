"""The scorers and the judging rules, against log-probabilities the test computes itself (one full forward
per row, float64 log-softmax)."""

import random

import pytest
import torch

from dclm.eval.answers import final_answer, is_correct, normalize_answer
from dclm.eval.prefix import score_shared_prefix
from dclm.eval.prompts import Row
from dclm.eval.runner import _lowest
from dclm.eval.score import score_batched, score_padded


@torch.no_grad()
def reference(model, row):
    seq = torch.tensor([row.context + row.continuation])
    logp = model(seq)[0].double().log_softmax(-1)
    pos = range(len(row.context) - 1, len(seq[0]) - 1)
    ce = [-float(logp[p, seq[0, p + 1]]) for p in pos]
    argmax = [int(logp[p].argmax()) for p in pos]
    return sum(ce) / len(ce), sum(ce), argmax


def _items(seed=0):
    """MC-like items: 3 items, a shared context each, continuations of 1-4 tokens; one item with a choice
    whose context was trimmed differently (so it cannot share)."""
    g = random.Random(seed)
    rows, owner = [], []
    for item in range(3):
        ctx = tuple(g.randrange(1, 512) for _ in range(5 + 7 * item))
        for c in range(4):
            cont = tuple(g.randrange(1, 512) for _ in range(1 + (c + item) % 4))
            rows.append(Row(ctx if (item, c) != (2, 3) else ctx[2:], cont))
            owner.append(item)
    return rows, owner


@pytest.mark.parametrize("scorer", ["shared_prefix", "batched", "padded"])
def test_scorers_match_independent_log_probs(tiny_model, scorer):
    rows, owner = _items()
    if scorer == "shared_prefix":
        got = score_shared_prefix(tiny_model, rows, owner, batch_size=2)
    elif scorer == "batched":
        got = score_batched(tiny_model, rows, batch_size=3)
    else:
        got = score_padded(tiny_model, rows, max_seq_len=40, batch_size=2)
    for row, s in zip(rows, got):
        mean, total, argmax = reference(tiny_model, row)
        assert s.mean_ce == pytest.approx(mean, abs=1e-4)
        assert s.ce_sum == pytest.approx(total, abs=1e-3)
        assert list(s.pred_ids) == argmax
        assert s.exact == (argmax == list(row.continuation))


def test_multiple_choice_and_lm_decisions(tiny_model):
    rows, owner = _items(1)
    got = score_shared_prefix(tiny_model, rows, owner, batch_size=8)
    for item in range(3):
        idx = [i for i, o in enumerate(owner) if o == item]
        means = [reference(tiny_model, rows[i])[0] for i in idx]
        assert _lowest([got[i].mean_ce for i in idx]) == means.index(min(means))
    # an LM item is correct exactly when every continuation token is the argmax: build one that is
    ctx = (5, 6, 7)
    seq = list(ctx)
    for _ in range(3):
        seq.append(int(tiny_model(torch.tensor([seq]))[0, -1].argmax()))
    right, wrong = Row(ctx, tuple(seq[3:])), Row(ctx, tuple(seq[3:5]) + ((seq[5] + 1) % 512,))
    s = score_shared_prefix(tiny_model, [right, wrong], [0, 1], batch_size=4)
    assert s[0].exact and not s[1].exact


def test_ties_go_to_the_first_choice():
    assert _lowest([1.0, 0.5, 0.5]) == 1 and _lowest([2.0, 2.0]) == 0


def test_greedy_generation_matches_a_plain_loop(tiny_model, word_tok):
    from dclm.eval.greedy import generate_ours

    prompts = [[3, 4, 5, 6], [9, 8], [1, 2, 3, 4, 5, 6, 7]]
    got = generate_ours(tiny_model, prompts, 5, word_tok, stops=[], batch_size=2, eos_id=0)
    for p, ids in zip(prompts, got):
        seq = list(p)
        for _ in range(5):
            t = int(tiny_model(torch.tensor([seq]))[0, -1].argmax())
            if t == 0:
                break
            seq.append(t)
        assert ids == seq[len(p):]


def test_answer_judging():
    assert normalize_answer("The  Onion_skins, Inc.") == "onion skins inc"
    assert normalize_answer("‘Quoted’ an apple´s `x`") == "quoted apple s x"
    out = "Paris is big.\n\nQ: next question"
    assert final_answer(out, ["\n\n", "Q:"], "") == "Paris is big."
    assert final_answer("3 and 3 make 6. #### 6 #### 7\nQ: more", ["Q:"], " #### ") == "7\n"
    assert is_correct(normalize_answer(" Paris, France"), ["paris"])
    assert not is_correct("lyon", ["Paris", "City of Light"])
    assert is_correct("anything", ["The"])  # an alias that normalises to "" matches everything
