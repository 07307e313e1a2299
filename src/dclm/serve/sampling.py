"""Next tokens for a decode batch whose rows each carry their own sampling parameters and generator.

Rows with equal parameters are filtered together with generate.sampling's functions (one sort per group,
not per row); each row then draws from its own seeded generator, so a seeded request samples the same
tokens whichever requests share its batch.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import torch

from dclm.generate.sampling import SamplingParams, apply_repetition_penalty, filter_top_k, filter_top_p


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
        group = apply_repetition_penalty(logits[idx], seen[idx], p.repetition_penalty)
        if p.greedy:
            for i, t in zip(members, group.argmax(-1).tolist()):
                out[i] = t
            continue
        group = filter_top_p(filter_top_k(group / p.temperature, p.top_k), p.top_p)
        probs = group.softmax(-1)
        for j, i in enumerate(members):
            out[i] = int(torch.multinomial(probs[j], 1, generator=generators[i]))
    return out
