"""The sort-free nucleus sampler against its plain twin, generate.sampling.filter_top_p + softmax."""

import pytest
import torch

from dclm.generate.sampling import filter_top_p
from dclm.serve.nucleus import sample_nucleus


def _twin_probs(logits, p):
    return filter_top_p(logits[None], p)[0].softmax(-1)


@pytest.mark.parametrize("top_p,scale", [(0.3, 2.0), (0.8, 2.0), (0.95, 2.0), (1.0, 2.0), (0.05, 0.1)])
def test_draws_follow_the_twins_nucleus_distribution(top_p, scale):
    """(0.05, 0.1): a small nucleus of a flat distribution, where most rows take the sorting fallback."""
    torch.manual_seed(0)
    logits = torch.randn(40) * scale
    want = _twin_probs(logits, top_p)
    n = 20000
    probs = logits.softmax(-1)[None].expand(n, -1).contiguous()
    gens = [torch.Generator().manual_seed(7)] * n  # one stream: every row a fresh draw
    got = torch.bincount(torch.tensor(sample_nucleus(probs, top_p, gens)), minlength=40).double() / n
    assert got[want == 0].sum() == 0  # nothing outside the nucleus, ever
    assert (got - want.double()).abs().max() < 0.015


def test_edge_cases_match_the_twin():
    peaked = torch.tensor([8.0, 0.0, 0.0, -1.0])  # the top token alone holds more than p
    g = [torch.Generator().manual_seed(1)] * 50
    assert set(sample_nucleus(peaked.softmax(-1)[None].expand(50, -1), 0.9, g)) == {0}
    assert _twin_probs(peaked, 0.9).nonzero().flatten().tolist() == [0]
    masked = torch.tensor([0.0, float("-inf"), 1.0, float("-inf")]).softmax(-1)  # top-k left zeros
    g = [torch.Generator().manual_seed(2)] * 200
    assert set(sample_nucleus(masked[None].expand(200, -1), 1.0, g)) == {0, 2}


def test_a_row_depends_only_on_its_own_generator():
    torch.manual_seed(1)
    probs = torch.randn(6, 300).softmax(-1)
    alone = sample_nucleus(probs[2:3], 0.9, [torch.Generator().manual_seed(5)])
    crowd = sample_nucleus(probs, 0.9, [torch.Generator().manual_seed(s) for s in (9, 8, 5, 7, 6, 4)])
    assert crowd[2] == alone[0]
