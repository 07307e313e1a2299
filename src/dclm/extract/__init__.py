"""WARC/WET to DCLM-Pool pages: `run_extract` (the `dclm extract` verb) and `extract_file` for one file.

The names are loaded on first use, so `dclm --help` does not import fsspec, fastwarc or resiliparse.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["ExtractOptions", "ExtractResult", "extract_file", "format_summary", "run_extract"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("dclm.extract.run"), name)
    raise AttributeError(f"module 'dclm.extract' has no attribute {name!r}")
