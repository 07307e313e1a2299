"""The fast scorer for our Transformer: each distinct context runs once, its keys/values serve every
continuation that follows it (the choices of a multiple-choice item), and the vocabulary projection runs
only at the positions whose predictions are scored.

Exact in the math: with causal attention a context token's keys, values and hidden state do not depend
on what follows it, so the continuation pass attending to the cached context computes what a full
forward of context + continuation computes (up to float rounding of differently shaped products).
Contexts of a batch are right-padded (causal attention never looks right); continuations attend to
their own context's valid columns through an explicit mask and continue its rotary positions.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from dclm.eval.prompts import Row
from dclm.eval.score import RowScore, length_batches, stats_from_logprobs
from dclm.model.openlm import Transformer


class _ContextCache:
    """Keeps each layer's context keys/values (context pass); in the continuation pass, prepends the
    context's keys/values of each continuation row (`owner[r]` = its context's batch row)."""

    def __init__(self):
        self.k: dict[int, torch.Tensor] = {}
        self.v: dict[int, torch.Tensor] = {}
        self.owner: torch.Tensor | None = None

    def update(self, k, v, layer_idx, *args, **kwargs):
        if self.owner is None:
            self.k[layer_idx], self.v[layer_idx] = k, v
            return k, v
        ck, cv = self.k[layer_idx].index_select(0, self.owner), self.v[layer_idx].index_select(0, self.owner)
        return torch.cat([ck, k], dim=2), torch.cat([cv, v], dim=2)


def _hidden(model: Transformer, ids, positions, mask, cache) -> torch.Tensor:
    """The final-norm hidden states [B, T, D] (Transformer.forward without the output projection)."""
    x = model.tok_embeddings(ids)
    if model.args.post_embed_norm:
        x = model.post_embed_norm(x)
    for layer in model.layers:
        x = layer(x, positions, mask, cache)
    return model.norm(x)


def group_rows(rows: Sequence[Row], item_of_row: Sequence[int]) -> list[tuple[tuple[int, ...], list[int]]]:
    """(context, row indices) for each distinct context within an item, in first-seen order."""
    groups: dict[tuple[int, tuple[int, ...]], list[int]] = {}
    for i, (r, item) in enumerate(zip(rows, item_of_row)):
        groups.setdefault((item, r.context), []).append(i)
    return [(ctx, idx) for (_, ctx), idx in groups.items()]


@torch.inference_mode()
def score_shared_prefix(model: Transformer, rows: Sequence[Row], item_of_row: Sequence[int], batch_size: int,
                        max_tokens: int = 32768, pad_id: int = 0) -> list[RowScore]:
    dev = next(model.parameters()).device
    groups = group_rows(rows, item_of_row)
    if any(not ctx for ctx, _ in groups):
        from dclm.errors import DclmError

        raise DclmError("an item has an empty context: its first continuation token has nothing to follow")
    out: list[RowScore | None] = [None] * len(rows)
    for batch in length_batches([len(ctx) for ctx, _ in groups], batch_size, max_tokens):
        ctxs = [groups[g][0] for g in batch]
        Lc = len(ctxs[0])
        ids = torch.full((len(batch), Lc), pad_id, dtype=torch.long)
        for b, ctx in enumerate(ctxs):
            ids[b, :len(ctx)] = torch.tensor(ctx)
        ids = ids.to(dev)
        cache = _ContextCache()
        positions = torch.arange(Lc, device=dev).expand(len(batch), Lc)
        h_ctx = _hidden(model, ids, positions, None, cache)
        # rows of this batch, and the positions each one scores
        members = [(b, i) for b, g in enumerate(batch) for i in groups[g][1]]
        conts = [rows[i].continuation for _, i in members]
        Lk = max(len(c) for c in conts)
        # the first continuation token is predicted by the context's last token
        first = h_ctx[torch.tensor([b for b, _ in members], device=dev),
                      torch.tensor([len(ctxs[b]) - 1 for b, _ in members], device=dev)]
        rest = None
        if Lk > 1:
            R = len(members)
            cids = torch.full((R, Lk), pad_id, dtype=torch.long)
            for r, c in enumerate(conts):
                cids[r, :len(c)] = torch.tensor(c)
            owner = torch.tensor([b for b, _ in members], device=dev)
            ctx_len = torch.tensor([len(ctxs[b]) for b, _ in members], device=dev)
            cpos = ctx_len[:, None] + torch.arange(Lk, device=dev)[None, :]
            ctx_valid = torch.arange(Lc, device=dev)[None, :] < ctx_len[:, None]  # [R, Lc]
            causal = torch.ones(Lk, Lk, dtype=torch.bool, device=dev).tril()  # [Lk, Lk]
            mask = torch.cat([ctx_valid[:, None, :].expand(R, Lk, Lc), causal[None].expand(R, Lk, Lk)], dim=2)
            cache.owner = owner
            rest = _hidden(model, cids.to(dev), cpos, mask[:, None], cache)
        picked, targets, splits = [], [], []
        for r, c in enumerate(conts):
            picked.append(first[r:r + 1])
            if len(c) > 1:
                picked.append(rest[r, :len(c) - 1])
            targets.extend(c)
            splits.append(len(c))
        logits = model.output(torch.cat(picked)).float()
        scores = stats_from_logprobs(logits.log_softmax(-1), torch.tensor(targets, device=dev), splits)
        for (_, i), s in zip(members, scores):
            out[i] = s
    return out  # type: ignore[return-value]
