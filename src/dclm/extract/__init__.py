"""WARC/WET to DCLM-Pool pages: `run_extract` (the `dclm extract` verb) and `extract_file` for one file.

The names are loaded on first use, so `dclm --help` does not import fsspec, fastwarc or resiliparse.
"""

from dclm.lazy import lazy_exports

__all__ = ["ExtractConfig", "ExtractResult", "extract_file", "format_summary", "run_extract"]
__getattr__ = lazy_exports(__name__, {**dict.fromkeys(__all__, "dclm.extract.run"), "ExtractConfig": "dclm.extract.config"})
