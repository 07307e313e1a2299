"""What the experiment measures on each arm's model: held-out perplexity, the ICL suite, sample generations."""

from __future__ import annotations

import math
from pathlib import Path


def heldout_texts(paths: list[str]) -> list[str]:
    """Every page's text under `paths` (page shards or .txt files, one document per file), in sorted order."""
    from dclm.io import iter_pages, list_shards

    texts = []
    for p in paths:
        if Path(p).is_file() and p.endswith(".txt"):
            texts.append(Path(p).read_text(encoding="utf-8"))
            continue
        for shard in list_shards(p):
            texts.extend(page["text"] for page in iter_pages(shard.url) if isinstance(page.get("text"), str))
    return texts


def perplexity(model_dir: str, texts: list[str], seq_len: int, batch: int = 8) -> dict:
    """exp(mean next-token CE) over the texts, each followed by EOT and all concatenated, cut into contexts of
    seq_len + 1 tokens (the tail shorter than a context is dropped), as the training data are built."""
    import torch

    from dclm.model.checkpoint import load_model
    from dclm.tokenize.tokenizer import load_encoder

    encoder = load_encoder(str(Path(model_dir) / "tokenizer.json"), download=False)
    ids: list[int] = []
    for doc in encoder.encode(texts):
        ids.extend(doc)
        ids.append(0)
    n = len(ids) // (seq_len + 1)
    if n == 0:
        return {"perplexity": None, "tokens": 0, "contexts": 0}
    contexts = torch.tensor(ids[: n * (seq_len + 1)]).view(n, seq_len + 1)
    model = load_model(model_dir)
    total = 0.0
    with torch.no_grad():
        for i in range(0, n, batch):
            x = contexts[i:i + batch]
            logits = model(x[:, :-1])
            total += torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1),
                                                       reduction="sum").item()
    mean = total / (n * seq_len)
    return {"perplexity": math.exp(mean), "mean_ce": mean, "tokens": n * seq_len, "contexts": n}


def samples(model_dir: str, prompts: list[str], seed: int, max_new_tokens: int = 24) -> list[dict]:
    from dclm.generate.engine import generate_text
    from dclm.generate.sampling import SamplingParams
    from dclm.generate.tokenizer import load_tokenizer
    from dclm.model.checkpoint import load_model

    out = generate_text(load_model(model_dir), load_tokenizer(model_dir), prompts,
                        SamplingParams(max_new_tokens=max_new_tokens, seed=seed, greedy=True))
    return [{"prompt": p, "text": o.text} for p, o in zip(prompts, out)]


def icl(model_dir: str, suite: str, data_dir: str, output: str, limit: int | None, progress: bool) -> dict:
    """The ICL suite on whatever task files `data_dir` holds (missing ones listed; aggregates N/A as DCLM)."""
    from dclm.eval.runner import EvalConfig, run

    r = run(EvalConfig(tasks=suite, data_dir=data_dir, output=output, model=model_dir, limit=limit,
                       device="cpu", dtype="fp32", progress=progress))
    return {"icl": r.doc.get("eval_metrics", {}).get("icl", {}), "missing": sorted(r.missing),
            "core": r.doc.get("Core"), "extended": r.doc.get("Extended"), "eval_json": r.output}
