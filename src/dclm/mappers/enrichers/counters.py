"""DCLM's counting enrichers (baselines/mappers/enrichers/enrichers.py)."""

from __future__ import annotations

from dclm.mappers.core_utils import count_words, split_paragraphs
from dclm.mappers.registry import mapper

CONTENT = "text"


def line_counter(text: str, paragraph_end: str = "\n", remove_empty: bool = True) -> int:
    return len(split_paragraphs(text, paragraph_end, remove_empty))


@mapper
def line_counter_enricher(page: dict, paragraph_end: str = "\n", remove_empty: bool = True, key: str = "num_lines",
                          overwrite: bool = False) -> list[dict]:
    """Store the number of lines (or `paragraph_end`-separated paragraphs) under `key`."""
    assert overwrite or key not in page, f"cannot overwrite an existing key {key}"
    page[key] = line_counter(page[CONTENT], paragraph_end, remove_empty)
    return [page]


@mapper
def word_counter_enricher(page: dict, key: str = "word_count", overwrite: bool = False, ignore_punctuation=True,
                          **kwargs) -> list[dict]:
    """Store `len(split_words(text, ignore_punctuation=..., **kwargs))` (fastText tokens by default) under `key`."""
    assert overwrite or key not in page, f"cannot overwrite an existing key {key}"
    page[key] = count_words(page[CONTENT], ignore_punctuation=ignore_punctuation, **kwargs)
    return [page]
