"""Training examples: packed plain-text pages, or prompt/response records with the prompt masked out."""

from __future__ import annotations

from pathlib import Path

from dclm.errors import DclmError

IGNORE = -100  # label of tokens that carry no loss (transformers' / our OpenLMForCausalLM's ignore_index)


def read_records(paths: tuple[str, ...]) -> list[dict]:
    """{'text': ...} pages and {'prompt', 'response'} records, in sorted file order."""
    from dclm.io.pages import iter_pages, shard_suffix

    records: list[dict] = []
    for path in sorted(paths):
        p = Path(path)
        if not p.is_file():
            raise DclmError(f"training data not found: {p}")
        if shard_suffix(path) is None:  # a plain-text file is one page
            records.append({"text": p.read_text(encoding="utf-8")})
            continue

        def reject(lineno, reason, raw, path=path):
            raise DclmError(f"{path}:{lineno}: {reason}")

        for n, rec in enumerate(iter_pages(path, on_reject=reject, text_key=None), 1):
            if isinstance(rec.get("prompt"), str) and isinstance(rec.get("response"), str):
                records.append({"prompt": rec["prompt"], "response": rec["response"]})
            elif isinstance(rec.get("text"), str):
                records.append({"text": rec["text"]})
            else:
                raise DclmError(f"{path}:{n}: needs a 'text' string or 'prompt' and 'response' strings")
    if not records:
        raise DclmError("no training records in " + ", ".join(paths))
    return records


def build_examples(records: list[dict], tokenizer, max_seq_len: int, eos_id: int = 0) -> list[tuple[list[int], list[int]]]:
    """(input ids, labels) pairs. Pages are joined with <|endoftext|> and cut into max_seq_len blocks
    (the DCLM pretraining layout); a record is prompt + response + <|endoftext|>, truncated, loss only on
    the response and the end token."""
    examples: list[tuple[list[int], list[int]]] = []
    stream: list[int] = []
    for rec in records:
        if "text" in rec:
            stream += tokenizer.encode(rec["text"]) + [eos_id]
            continue
        prompt = tokenizer.encode(rec["prompt"])
        response = tokenizer.encode(rec["response"]) + [eos_id]
        ids = (prompt + response)[:max_seq_len]
        labels = ([IGNORE] * len(prompt) + response)[:max_seq_len]
        if any(t != IGNORE for t in labels[1:]):
            examples.append((ids, labels))
    for start in range(0, len(stream) - 1, max_seq_len):
        block = stream[start : start + max_seq_len]
        if len(block) > 1:
            examples.append((block, list(block)))
    return examples


def collate(batch: list[tuple[list[int], list[int]]], pad_id: int = 0):
    """Right-padded [B, T] ids and labels; causal attention keeps real tokens blind to the padding."""
    import torch

    width = max(len(ids) for ids, _ in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), IGNORE, dtype=torch.long)
    for i, (x, y) in enumerate(batch):
        ids[i, : len(x)] = torch.tensor(x)
        labels[i, : len(y)] = torch.tensor(y)
    return ids, labels
