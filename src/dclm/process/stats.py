"""Per-shard stats files (JSONL, DCLM's record layout) and reject files; both rewritten atomically."""

from __future__ import annotations

import orjson
import fsspec

from dclm.io.pages import atomic_open, dumps_page


def read_jsonl_records(url: str) -> list[dict]:
    """Records of a small JSONL file written by us; a missing file gives []."""
    fs, path = fsspec.core.url_to_fs(url)
    if not fs.exists(path):
        return []
    with fs.open(path, "rb") as f:
        data = f.read()
    out = []
    for line in data.splitlines():
        if line.strip():
            out.append(orjson.loads(line))
    return out


def write_jsonl_records(url: str, records: list[dict]) -> None:
    with atomic_open(url, "wb") as f:
        f.write(b"".join(dumps_page(r) + b"\n" for r in records))


def remove_if_exists(url: str) -> None:
    fs, path = fsspec.core.url_to_fs(url)
    if fs.exists(path):
        fs.rm(path)


def truncate_to_commit(records: list[dict], committed_through: int) -> list[dict]:
    """Records up to and including the commit that covers exactly `committed_through` steps ([] for 0)."""
    if committed_through == 0:
        return []
    for i in range(len(records) - 1, -1, -1):
        r = records[i]
        if r.get("name") == "commit" and r.get("committed_through") == committed_through:
            return records[: i + 1]
    return []
