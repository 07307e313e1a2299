"""Greedy generation for generation tasks, one result per prompt as if decoded alone.

llm-foundry generates a batch until every row has met EOS or some stop string, or max_new_tokens; then it
cuts each decoded output at its first stop string. A row's text before its first stop string does not
change after that string appears, so stopping each row as soon as its decoded text holds a stop string
(or it emits EOS) gives the same judged answer, batched or not.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from dclm.eval.answers import decode_generated


def _stopper(tokenizer, stops: Sequence[str]):
    stops = [s for s in stops if s]

    def check(row: int, ids: list[int]) -> int | None:
        if stops and any(s in decode_generated(tokenizer, ids) for s in stops):
            return len(ids)  # keep everything: the answer is cut at the stop string afterwards
        return None

    return check


def generate_ours(model, prompts: Sequence[Sequence[int]], max_new_tokens: int, tokenizer, stops: Sequence[str],
                  batch_size: int, eos_id: int = 0) -> list[list[int]]:
    """Our Transformer through dclm.generate's static-cache decoder (left padding with per-row positions)."""
    from dclm.generate.engine import Decoder
    from dclm.generate.sampling import SamplingParams

    decoder = Decoder(model)
    params = SamplingParams.greedy_decoding(max_new_tokens=max_new_tokens, eos_id=eos_id)
    out: list[list[int] | None] = [None] * len(prompts)
    order = sorted(range(len(prompts)), key=lambda i: (-len(prompts[i]), i))
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        done = decoder.generate([prompts[i] for i in idx], params, stop_check=_stopper(tokenizer, stops), pad_id=eos_id)
        for i, c in zip(idx, done):
            out[i] = c.ids
    return out  # type: ignore[return-value]


@torch.inference_mode()
def generate_hf(model, prompts: Sequence[Sequence[int]], max_new_tokens: int, batch_size: int,
                eos_id: int = 0, pad_id: int = 0) -> list[list[int]]:
    """A transformers causal LM through its own generate(), left-padded with an attention mask."""
    dev = next(model.parameters()).device
    out: list[list[int] | None] = [None] * len(prompts)
    order = sorted(range(len(prompts)), key=lambda i: (-len(prompts[i]), i))
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        P = len(prompts[idx[0]])
        ids = torch.full((len(idx), P), pad_id, dtype=torch.long)
        mask = torch.zeros((len(idx), P), dtype=torch.long)
        for b, i in enumerate(idx):
            ids[b, P - len(prompts[i]):] = torch.tensor(list(prompts[i]))
            mask[b, P - len(prompts[i]):] = 1
        gen = model.generate(input_ids=ids.to(dev), attention_mask=mask.to(dev), max_new_tokens=max_new_tokens,
                             do_sample=False, eos_token_id=eos_id, pad_token_id=pad_id)
        for b, i in enumerate(idx):
            new = gen[b, P:].tolist()
            out[i] = new[:new.index(eos_id)] if eos_id in new else new
    return out  # type: ignore[return-value]
