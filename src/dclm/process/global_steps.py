"""Global steps: functions that need every shard at once. DCLM has one, `exact_dedup` (DCLM's `baselines/core/processor.py` and `ray_processing/dedup_jsonl.py`)."""

from __future__ import annotations

GLOBAL_ARGS: dict[str, tuple[str, ...]] = {
    "exact_dedup": ("content_key", "normalize", "selection_key", "selection_normalize", "selection_reverse"),
}


def run_global_step(func: str, kwargs: dict, pages_by_shard: list[list[dict]]) -> tuple[list[list[dict]], dict]:
    """Apply global step `func` to all shards' pages; returns new pages per shard and run-level stats."""
    if func == "exact_dedup":
        from dclm.dedup.exact import exact_dedup_pages

        return exact_dedup_pages(pages_by_shard, **kwargs)
    raise ValueError(f"not a global step: {func}")
