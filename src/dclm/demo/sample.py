"""The embedded sample: seeded web-like pages in DCLM-Pool layout, written as page shards."""

from __future__ import annotations

import os
import random

from dclm.io import write_pages


def plant_duplicates(pages: list[dict], fraction: float, seed: int) -> int:
    """Make `fraction` of the pages re-publish an earlier page's text (as syndicated and mirrored pages do on
    the web), half verbatim and half with a line of their own added; returns how many were planted."""
    rng = random.Random(f"duplicates:{seed}")
    targets = sorted(rng.sample(range(1, len(pages)), int(fraction * (len(pages) - 1)))) if len(pages) > 1 else []
    for i in targets:
        text = pages[rng.randrange(i)]["text"]
        if rng.random() < 0.5:
            text += f"\nThis story was shared by reader number {rng.randrange(10_000)}."
        pages[i]["text"] = text
    return len(targets)


def write_sample_shards(directory: str, n_pages: int = 3000, n_shards: int = 4, seed: int = 0,
                        suffix: str = ".jsonl.zst", duplicate_fraction: float = 0.0) -> list[str]:
    """Generate `n_pages` pages with `dclm.demo.webpages` (optionally planting duplicates) and split them
    round-robin into `n_shards` shards."""
    from dclm.demo.webpages import generate_pages

    pages = generate_pages(n_pages, seed=seed)
    if duplicate_fraction:
        plant_duplicates(pages, duplicate_fraction, seed)
    paths = []
    for s in range(n_shards):
        path = os.path.join(directory, f"shard_{s:05d}{suffix}")
        write_pages(path, pages[s::n_shards])
        paths.append(path)
    return paths
