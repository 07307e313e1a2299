"""Training examples from page shards: every page with text, or a seeded uniform sample of them.

Sampling is reservoir sampling (Algorithm R) over the shards in sorted order, so a pool of any size is
read once in constant memory and the same seed always picks the same pages.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Iterable, Iterator

from dclm.io import iter_pages, list_shards
from dclm.classifier.model import preprocess


@dataclass
class ExampleSet:
    """The texts of one class and how they were obtained (for the model card)."""

    texts: list[str]
    sources: list[str]
    shards: int = 0
    pages_read: int = 0
    bad_lines: int = 0
    no_text: int = 0
    empty_text: int = 0
    eligible: int = 0
    sample_size: int | None = None
    first_problems: list[str] = field(default_factory=list)

    def summary(self) -> dict:
        return {
            "sources": self.sources,
            "shards": self.shards,
            "pages_read": self.pages_read,
            "bad_lines": self.bad_lines,
            "pages_without_text": self.no_text,
            "pages_with_empty_text": self.empty_text,
            "eligible_pages": self.eligible,
            "sampled": self.sample_size is not None,
            "examples": len(self.texts),
        }


def _eligible_texts(inputs: Iterable[str], text_key: str, stats: ExampleSet) -> Iterator[str]:
    # each input listed on its own, so shards with the same relative path under two inputs are all read
    by_url = {shard.url: shard for inp in inputs for shard in list_shards([inp])}
    shards = sorted(by_url.values(), key=lambda s: s.url)
    stats.shards = len(shards)
    for shard in shards:
        def on_reject(lineno: int, reason: str, raw, url=shard.url) -> None:
            stats.bad_lines += 1
            if len(stats.first_problems) < 5:
                stats.first_problems.append(f"{url}:{lineno}: {reason}")

        for page in iter_pages(shard.url, on_reject=on_reject, text_key=None):
            stats.pages_read += 1
            text = page.get(text_key)
            if not isinstance(text, str):
                stats.no_text += 1
                continue
            if not preprocess(text):
                stats.empty_text += 1
                continue
            stats.eligible += 1
            yield text


def reservoir_sample(items: Iterable, k: int, rng: random.Random) -> list:
    """A uniform sample of `k` items (all of them if fewer), in one pass (Algorithm R)."""
    sample: list = []
    for i, item in enumerate(items):
        if i < k:
            sample.append(item)
        else:
            j = rng.randrange(i + 1)
            if j < k:
                sample[j] = item
    return sample


def load_examples(inputs: list[str], text_key: str = "text", limit: int | None = None, seed: int = 42,
                  salt: str = "") -> ExampleSet:
    """Texts of every page with a non-empty `text_key` under `inputs`; with `limit`, a seeded uniform sample."""
    stats = ExampleSet(texts=[], sources=list(inputs))
    texts = _eligible_texts(inputs, text_key, stats)
    if limit is None:
        stats.texts = list(texts)
    else:
        stats.sample_size = limit
        stats.texts = reservoir_sample(texts, limit, random.Random(f"{seed}/{salt}"))
    return stats
