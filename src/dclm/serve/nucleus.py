"""Top-p (nucleus) sampling without sorting the vocabulary: draw from the whole distribution, redraw until
the token is in the nucleus.

A token is in the nucleus when the tokens strictly more likely than it hold less than p of the mass (the
rule of generate.sampling.filter_top_p, which sorts and keeps tokens while the mass before them is below p;
this module's plain twin, compared in tests/serve/test_nucleus.py). Redrawing from the full distribution until
the draw lands in the nucleus gives exactly the nucleus distribution, renormalised. A draw is accepted with
probability = the nucleus mass >= p, so a row takes on average fewer than 1/p draws, each one inverse-CDF
lookup and one pass over the vocabulary, where the twin sorts the whole vocabulary of every row and then
asks torch.multinomial for one sample. On a 50k vocabulary, for 16 rows, that took about five times the
decode step of a 20m model on the project's 2-core CPU, so sampling, not the model, capped the throughput
of a large decode batch.

A small top-p over a flat distribution makes the nucleus mass, and so the acceptance rate, small: rows still
rejected after `_ROUNDS` draws sort after all (their nucleus is then a sorted prefix, drawn from by
inverse CDF with the same generator), which bounds the cost at a few passes and one sort per row.

Ties across the boundary differ from the twin only in which of the equally likely tokens survive: the twin
keeps those its (unstable) sort puts first, the rejection path keeps all of them.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

_ROUNDS = 4  # rejection draws before a row falls back to sorting (P(fallback) <= (1 - top_p) ** 4 per row)


def sample_nucleus(probs: torch.Tensor, top_p: float, generators: Sequence[torch.Generator | None]) -> list[int]:
    """One token per row of probs [n, V] (rows sum to 1), from the row's top-p nucleus; row i's uniform
    draws come from generators[i] only, so a row's token does not depend on the other rows."""
    n, V = probs.shape
    cum = probs.cumsum(-1)
    out = [0] * n
    pending = list(range(n))
    for _ in range(_ROUNDS):
        if not pending:
            break
        rows = torch.tensor(pending, device=probs.device)
        u = torch.stack([torch.rand((), generator=generators[i], device=probs.device) for i in pending])
        whole = len(pending) == n  # the first round (and usually the only one): no row copies
        p_rows = probs if whole else probs.index_select(0, rows)
        c_rows = cum if whole else cum.index_select(0, rows)
        tok = torch.searchsorted(c_rows, (u * c_rows[:, -1])[:, None], right=True)[:, 0].clamp_(max=V - 1)
        if top_p >= 1.0:
            accepted = [True] * len(pending)
        else:
            p_tok = p_rows.gather(1, tok[:, None])
            above = torch.where(p_rows > p_tok, p_rows, 0.0).sum(-1)  # mass strictly more likely than the draw
            accepted = (above < top_p).tolist()
        still = []
        for i, t, ok in zip(pending, tok.tolist(), accepted):
            if ok:
                out[i] = t
            else:
                still.append(i)
        pending = still
    if pending:
        rows = torch.tensor(pending, device=probs.device)
        u = torch.stack([torch.rand((), generator=generators[i], device=probs.device) for i in pending])
        sorted_p, order = probs.index_select(0, rows).sort(-1, descending=True)
        keep = (sorted_p.cumsum(-1) - sorted_p) < top_p  # the mass before each token is below p
        keep[:, 0] = True
        c = (sorted_p * keep).cumsum(-1)
        pick = torch.searchsorted(c, (u * c[:, -1])[:, None], right=True).clamp_(max=V - 1)
        for i, t in zip(pending, order.gather(1, pick)[:, 0].tolist()):
            out[i] = t
    return out
