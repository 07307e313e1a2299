"""The one progress display of every verb: a tqdm bar on stderr, off with `progress=False` or when quiet."""

from __future__ import annotations

from typing import Any


def progress_bar(total: float | None = None, *, desc: str, unit: str = "it", enabled: bool = True, **kwargs: Any):
    """A tqdm bar (also a context manager); `enabled=False` gives a silent one with the same methods."""
    from tqdm import tqdm

    scale = unit in ("B", "tok")
    return tqdm(total=total, desc=desc, unit=unit, unit_scale=scale, unit_divisor=1024 if unit == "B" else 1000,
                disable=not enabled, dynamic_ncols=True, **kwargs)


def progress_write(message: str) -> None:
    """Print a line above any running bar."""
    from tqdm import tqdm

    tqdm.write(message)
