"""Next tokens for a decode batch whose rows each carry their own sampling parameters and generator.

Rows with equal parameters are filtered together (repetition penalty, temperature and top-k with
generate.sampling's functions, top-p by nucleus.sample_nucleus, which needs no sort); each row draws from
its own seeded generator, so a seeded request samples the same tokens whichever requests share its batch.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import torch

from dclm.generate.sampling import SamplingParams, apply_repetition_penalty, filter_top_k
from dclm.serve.nucleus import sample_nucleus


def _group_key(p: SamplingParams) -> tuple:
    if p.greedy:
        return (True, p.repetition_penalty)
    return (False, p.repetition_penalty, p.temperature, p.top_k, p.top_p)


def sample_rows(logits: torch.Tensor, seen: torch.Tensor, rows: Sequence[int], params: Sequence[SamplingParams],
                generators: Sequence[torch.Generator | None]) -> list[int]:
    """logits [N, V] and seen [N, V] for the batch; rows[i] picks the batch row of request i.
    Returns one token id per request, in order."""
    groups: dict[tuple, list[int]] = defaultdict(list)
    for i, p in enumerate(params):
        groups[_group_key(p)].append(i)
    out = [0] * len(rows)
    for members in groups.values():
        p = params[members[0]]
        idx = torch.tensor([rows[i] for i in members], device=logits.device)
        group = logits.index_select(0, idx)  # a copy: changed in place below
        if p.repetition_penalty != 1.0:
            group = apply_repetition_penalty(group, seen.index_select(0, idx), p.repetition_penalty)
        if p.greedy:
            for i, t in zip(members, group.argmax(-1).tolist()):
                out[i] = t
            continue
        probs = filter_top_k(group.div_(p.temperature), p.top_k).softmax(-1)
        for i, t in zip(members, sample_nucleus(probs, p.top_p, [generators[i] for i in members])):
            out[i] = t
    return out
