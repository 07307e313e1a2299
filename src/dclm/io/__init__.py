"""Reading and writing page shards: jsonl(.gz/.zst) and parquet, local paths and fsspec URLs."""

from dclm.io.pages import (
    PAGE_SUFFIXES,
    Shard,
    atomic_open,
    encode_pages,
    iter_pages,
    list_shards,
    read_pages,
    shard_suffix,
    write_bytes,
    write_pages,
)

__all__ = [
    "PAGE_SUFFIXES",
    "Shard",
    "atomic_open",
    "encode_pages",
    "iter_pages",
    "list_shards",
    "read_pages",
    "shard_suffix",
    "write_bytes",
    "write_pages",
]
