"""The one reject log: every input record a stage could not use, with its reason.

Layout: `<stage output root>/_rejects/<input-relative path>.jsonl`, one JSON object per rejected record:
`{stage, step, file, line, reason, record}` — `step` is null where a stage has no steps, `line` the 1-based
line (or row) in `file` where known, `record` the raw line (a string) or the page (an object). A shard with
no rejects has no reject file; a rerun of a shard replaces its reject file whole.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field
from typing import Any

REJECTS_DIR = "_rejects"


def rejects_path(root: str, rel: str) -> str:
    return posixpath.join(root.rstrip("/"), REJECTS_DIR, f"{rel}.jsonl")


@dataclass
class RejectLog:
    """Collects one shard's rejects in memory (they are rare) and writes them atomically with `flush`."""

    root: str
    rel: str
    stage: str
    file: str
    records: list[dict] = field(default_factory=list)

    @property
    def path(self) -> str:
        return rejects_path(self.root, self.rel)

    def add(self, reason: str, record: Any, *, line: int | None = None, step: str | None = None) -> None:
        self.records.append({"stage": self.stage, "step": step, "file": self.file, "line": line,
                             "reason": reason, "record": record})

    def on_read_reject(self, line: int, reason: str, record: Any) -> None:
        """The `on_reject` callback of `dclm.io.iter_pages`."""
        self.add(reason, record, line=line)

    def __len__(self) -> int:
        return len(self.records)

    def flush(self) -> int:
        """Write the reject file (or remove a stale one when there are none); returns the count."""
        from dclm.io.pages import encode_jsonl, url_to_fs, write_bytes

        if self.records:
            write_bytes(self.path, encode_jsonl(self.records))
        else:
            fs, p = url_to_fs(self.path)
            if fs.exists(p):
                fs.rm(p)
        return len(self.records)


def read_rejects(root: str) -> list[dict]:
    """Every reject record under `root/_rejects`, files in sorted order (for reports and tests)."""
    import orjson

    from dclm.io.pages import url_to_fs

    fs, base = url_to_fs(posixpath.join(root.rstrip("/"), REJECTS_DIR))
    if not fs.exists(base):
        return []
    out = []
    for p in sorted(fs.find(base)):
        if p.endswith(".jsonl") and not posixpath.basename(p).startswith(".tmp-"):
            with fs.open(p, "rb") as f:
                out.extend(orjson.loads(line) for line in f.read().splitlines() if line.strip())
    return out
