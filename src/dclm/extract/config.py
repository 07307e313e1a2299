"""`dclm extract`'s parameters (kept apart from run.py so that building the CLI imports nothing heavy)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from dclm.extract.extractors import EXTRACTORS
from dclm.runtime.config import ConfigError, arg, as_tuples
from dclm.runtime.jobs import Execution

DEFAULT_MAX_RECORD_BYTES = 16 << 20
COMPRESSIONS = {"zst": ".jsonl.zst", "gz": ".jsonl.gz", "none": ".jsonl"}


@dataclass(frozen=True, kw_only=True)
class ExtractConfig(Execution):
    """`dclm extract`: every WARC/WET file under `inputs` to one page shard under `output`."""

    inputs: tuple[str, ...] = arg(flag="--input", help="WARC/WET files (.warc, .warc.gz, .warc.wet.gz, ...) or "
                                  "directories to walk (sorted)")
    output: str = arg(help="output directory (local path or fsspec URL)")
    extractor: Literal[EXTRACTORS] = arg(
        "resiliparse", help="HTML to text: resiliparse main content (DCLM-Pool), trafilatura, or justext (all "
        "paragraphs, as DCLM's html_content_extraction_modifier)")
    max_record_bytes: int = arg(DEFAULT_MAX_RECORD_BYTES, metavar="N", help="skip (and count) records, or "
                                "decompressed payloads, larger than N bytes")
    compression: Literal[tuple(COMPRESSIONS)] = arg("zst", help="output shard compression: .jsonl.zst, .jsonl.gz "
                                                     "or plain .jsonl")
    overwrite: bool = arg(False, help="redo files whose output already exists")

    def __post_init__(self):
        as_tuples(self, "inputs")
        if self.compression not in COMPRESSIONS:
            raise ConfigError("compression", f"unknown {self.compression!r}; choose one of {', '.join(COMPRESSIONS)}")
        if self.max_record_bytes <= 0:
            raise ConfigError("max_record_bytes", "must be positive")
        from dclm.extract.extractors import get_extractor

        get_extractor(self.extractor)  # fail early on an unknown name or a missing extra
