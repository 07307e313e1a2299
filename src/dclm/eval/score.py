"""Scoring token rows: per continuation token, the cross-entropy and whether the argmax is the target.

Three interchangeable scorers, all returning one RowScore per Row:
- `score_padded`: llm-foundry's path (every row padded to max_seq_len, the full-vocabulary logits of every
  position, F.cross_entropy over the continuation). The plain twin and the benchmark's reference.
- `score_batched`: rows sorted by length and padded only to their batch's longest; any model.
- `score_shared_prefix` (in prefix.py): our Transformer; each distinct context of an item runs once and its
  keys/values serve all of its continuations, and the output layer runs only where a prediction is scored.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from dclm.eval.prompts import Row

# (ids [B, T], attention mask [B, T]) -> float logits [B, T, V]
Forward = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class RowScore:
    mean_ce: float  # natural-log cross-entropy averaged over continuation tokens
    ce_sum: float
    pred_ids: tuple[int, ...]  # argmax at each continuation position
    exact: bool  # every argmax equals its target (LM accuracy)


def forward_for(model) -> Forward:
    """A Forward for our Transformer (right padding needs no mask: causal attention never sees it) or a
    transformers causal LM (given the attention mask)."""
    from dclm.model.openlm import Transformer

    if isinstance(model, Transformer):
        return lambda ids, mask: model(ids)
    return lambda ids, mask: model(input_ids=ids, attention_mask=mask).logits.float()


def _device(model) -> torch.device:
    return next(model.parameters()).device


@torch.inference_mode()
def score_padded(model, rows: Sequence[Row], max_seq_len: int, batch_size: int, pad_id: int = 0) -> list[RowScore]:
    """llm-foundry 0.9.0's path: each row right-padded to max_seq_len, `batch_size` rows a forward."""
    forward, dev = forward_for(model), _device(model)
    out: list[RowScore] = []
    for start in range(0, len(rows), batch_size):
        chunk = rows[start:start + batch_size]
        ids = torch.full((len(chunk), max_seq_len), pad_id, dtype=torch.long)
        for i, r in enumerate(chunk):
            seq = r.context + r.continuation
            ids[i, :len(seq)] = torch.tensor(seq)
        ids = ids.to(dev)
        logits = forward(ids, ids != pad_id)
        for i, r in enumerate(chunk):
            span = torch.arange(len(r.context), len(r.context) + len(r.continuation), device=dev)
            tok_logits = logits[i].index_select(0, span - 1)
            target = ids[i].index_select(0, span)
            ce = F.cross_entropy(tok_logits, target, reduction="none")
            pred = tok_logits.argmax(-1)
            out.append(RowScore(float(ce.mean()), float(ce.sum()), tuple(pred.tolist()), bool((pred == target).all())))
    return out


def length_batches(lengths: Sequence[int], batch_size: int, max_tokens: int) -> list[list[int]]:
    """Indices sorted by length (longest first), cut into batches of at most `batch_size` rows and at most
    `max_tokens` padded tokens."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    batches: list[list[int]] = []
    for i in order:
        if batches and len(batches[-1]) < batch_size and lengths[batches[-1][0]] * (len(batches[-1]) + 1) <= max_tokens:
            batches[-1].append(i)
        else:
            batches.append([i])
    return batches


def stats_from_logprobs(logprobs: torch.Tensor, targets: torch.Tensor, splits: Sequence[int]) -> list[RowScore]:
    """RowScores from log-probabilities [N, V] at N scored positions, `splits` positions per row in order."""
    ce = -logprobs.gather(1, targets[:, None])[:, 0]
    hit = logprobs.argmax(-1)
    out, at = [], 0
    ce_l, hit_l, tgt_l = ce.tolist(), hit.tolist(), targets.tolist()
    for n in splits:
        c = ce_l[at:at + n]
        p = hit_l[at:at + n]
        # the mean in float32 as F.cross_entropy takes it, so ties and near-ties fall as in llm-foundry
        mean = float(ce[at:at + n].mean())
        out.append(RowScore(mean, float(sum(c)), tuple(p), p == tgt_l[at:at + n]))
        at += n
    return out


@torch.inference_mode()
def score_batched(model, rows: Sequence[Row], batch_size: int, max_tokens: int = 32768, pad_id: int = 0) -> list[RowScore]:
    """Length-sorted batches padded to their own longest row; log-softmax only at scored positions."""
    forward, dev = forward_for(model), _device(model)
    lengths = [len(r.context) + len(r.continuation) for r in rows]
    out: list[RowScore | None] = [None] * len(rows)
    for batch in length_batches(lengths, batch_size, max_tokens):
        T = lengths[batch[0]]
        ids = torch.full((len(batch), T), pad_id, dtype=torch.long)
        mask = torch.zeros((len(batch), T), dtype=torch.long)
        rows_idx, pos_idx, targets = [], [], []
        for b, i in enumerate(batch):
            r = rows[i]
            seq = r.context + r.continuation
            ids[b, :len(seq)] = torch.tensor(seq)
            mask[b, :len(seq)] = 1
            for j in range(len(r.continuation)):
                rows_idx.append(b)
                pos_idx.append(len(r.context) + j - 1)
            targets.extend(r.continuation)
        logits = forward(ids.to(dev), mask.to(dev))
        picked = logits[torch.tensor(rows_idx, device=dev), torch.tensor(pos_idx, device=dev)].float()
        scores = stats_from_logprobs(picked.log_softmax(-1), torch.tensor(targets, device=dev),
                                     [len(rows[i].continuation) for i in batch])
        for i, s in zip(batch, scores):
            out[i] = s
    return out  # type: ignore[return-value]
