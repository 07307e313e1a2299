"""`dclm dedup bff`'s parameters: bff's flags (same names and defaults) plus a seed, a file-order shuffle and
the shared execution flags."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from dclm.runtime.config import ConfigError, arg, as_tuples
from dclm.runtime.jobs import Execution

REMOVE_TYPES = ("paragraph", "document", "both", "naive-both", "old-both", "substring", "exact")
# what an annotated old-both page keeps besides its text (bff drops every other field)
ANNOTATE_FIELDS = ("bff_duplicate_spans", "bff_contained_ngram_count", "id", "source", "text")


@dataclass(frozen=True, kw_only=True)
class BffConfig(Execution):
    """One bff run: every file under `inputs` checked against one Bloom filter in file and document order.

    `workers` (bff's `--threads`) forked processes share the filter of a run; with `total_shards` > 1 and no
    `shard_num`, every virtual shard runs as an independent job (its own filter) in the process pool or on Ray.
    """

    inputs: tuple[str, ...] = arg(metavar="PATH", help="input shard files or directories (searched recursively "
                                  "for .jsonl/.jsonl.gz/.jsonl.zst/.parquet)")
    output_directory: str = arg(metavar="DIR", help="where deduplicated shards go, mirroring input-relative paths")
    expected_ngram_count: int = arg(metavar="N", help="expected number of n-grams overall (sizes a new filter; "
                                    "ignored when bloom_filter_file exists)")
    fp_rate: float = arg(metavar="F", help="target per-n-gram false-positive rate of a new filter")
    min_ngram_size: int = arg(20, help="units with fewer tokens than this are never deduplicated; units with at "
                              "least this many but fewer than max_ngram_size tokens are one n-gram")
    max_ngram_size: int = arg(20, help="n-gram window in tokens (DCLM-Baseline used 13)")
    filtering_threshold: float = arg(0.8, help="a unit is removed when contained/total n-grams exceeds this")
    remove_type: Literal[REMOVE_TYPES] = arg("paragraph", help="what is removed: paragraphs, whole documents, both "
                                             "(see `dclm.dedup.bff`), old-both (DCLM-Baseline), substring spans, or "
                                             "exact whole-text duplicates")
    substr_seqlen: int = arg(50, help="substring mode: shortest duplicated run removed, in tokens")
    num_hashers: int = arg(0, help="hash functions per n-gram; 0 = optimal for the filter size")
    bloom_filter_file: str | None = arg(None, metavar="FILE", help="load the filter from FILE if it exists and save "
                                        "it there at the end (global dedup across runs; dclm's own format, not bff's)")
    update_bloom_filter: bool = arg(True, help="insert what survives (--no-update-bloom-filter: check only)")
    save_bloom_filter: bool = arg(True, help="write bloom_filter_file at the end")
    annotate: bool = arg(False, help="keep text intact and add bff_duplicate_spans (UTF-8 byte spans) and "
                         "bff_contained_ngram_count; old-both then keeps only id, source and text besides them, as "
                         "bff does")
    shard_num: int | None = arg(None, help="process only the files i with i % total_shards == shard_num (default: "
                                "every virtual shard, each with its own filter)", show_default=False)
    total_shards: int = arg(1, help="number of virtual shards of the sorted file list")
    seed: int | None = arg(None, help="hash seed of a new filter (none = 0; a loaded filter keeps its own)")
    shuffle_files: int | None = arg(None, metavar="SEED", help="process files in an order shuffled with SEED "
                                    "instead of sorted order (changes which copy survives)")

    def __post_init__(self):
        as_tuples(self, "inputs")
        if self.remove_type not in REMOVE_TYPES:
            raise ConfigError("remove_type", f"unknown {self.remove_type!r} (choose from {', '.join(REMOVE_TYPES)})")
        if self.max_ngram_size < 1:
            raise ConfigError("max_ngram_size", "must be >= 1")
        if self.min_ngram_size < 0:
            raise ConfigError("min_ngram_size", "must be >= 0")
        if self.total_shards < 1:
            raise ConfigError("total_shards", "must be >= 1")
        if self.shard_num is not None and not 0 <= self.shard_num < self.total_shards:
            raise ConfigError("shard_num", f"must be in [0, total_shards = {self.total_shards})")
        if self.workers < 0:
            raise ConfigError("workers", "must be >= 0 (0 = all cores)")
        if self.substr_seqlen < 0:
            raise ConfigError("substr_seqlen", "must be >= 0")
        if self.seed is not None and not 0 <= self.seed < 2**64:
            raise ConfigError("seed", "must be in [0, 2**64)")
        if self.bloom_filter_file and len(self.shard_indices) > 1:
            raise ConfigError("bloom_filter_file", "holds one filter, but every one of the total_shards shards has "
                              "its own; give shard_num to run one shard")

    @property
    def shard_indices(self) -> tuple[int, ...]:
        """The virtual shards this run processes, each with its own filter."""
        return tuple(range(self.total_shards)) if self.shard_num is None else (self.shard_num,)


@dataclass(frozen=True)
class SysreqConfig:
    """`dclm dedup bff sysreq`: the filter bff's formulas give for an n-gram count and false-positive rate."""

    expected_ngram_count: int = arg(metavar="N", help="expected number of n-grams")
    fp_rate: float = arg(metavar="F", help="target false-positive rate")
    num_hashers: int = arg(0, help="fixed hasher count; 0 = optimal")
