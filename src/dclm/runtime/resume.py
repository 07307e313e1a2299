"""Done-marker resume, digest-checked: a unit of work is skipped only if it finished with this very config
and these very inputs.

A marker `<root>/_done/<rel>.json` is written atomically after a unit's outputs, holding the digest of
everything that decides those outputs (the stage's config fields that matter, the tool version where it
changes bytes, and each input's fingerprint: size + modification time or etag) and the unit's stats. A
changed config or input gives another digest, so the unit runs again; a crash before the marker leaves the
unit unfinished.
"""

from __future__ import annotations

import hashlib
import posixpath
from typing import Any

import orjson

DONE_DIR = "_done"


def marker_path(root: str, rel: str) -> str:
    return posixpath.join(root.rstrip("/"), DONE_DIR, f"{rel}.json")


def input_fingerprint(url: str) -> dict[str, Any]:
    """What identifies an input file's content cheaply: its size and mtime (or etag/version on object stores)."""
    from dclm.io.pages import url_to_fs

    fs, path = url_to_fs(url)
    info = fs.info(path)
    out = {"url": url, "size": info.get("size")}
    for key in ("mtime", "LastModified", "last_modified", "ETag", "etag", "version_id", "generation"):
        if info.get(key) is not None:
            out[key] = str(info[key])
    return out


def digest(*parts: Any) -> str:
    """A stable sha256 of JSON-able parts (dataclasses via dclm.runtime.config.to_dict)."""
    from dclm.runtime.config import to_dict

    blob = orjson.dumps([to_dict(p) for p in parts], option=orjson.OPT_SORT_KEYS | orjson.OPT_SERIALIZE_NUMPY)
    return hashlib.sha256(blob).hexdigest()


def read_marker(root: str, rel: str) -> dict | None:
    from dclm.io.pages import url_to_fs

    fs, p = url_to_fs(marker_path(root, rel))
    if not fs.exists(p):
        return None
    try:
        with fs.open(p, "rb") as f:
            return orjson.loads(f.read())
    except orjson.JSONDecodeError:
        return None


def is_done(root: str, rel: str, unit_digest: str) -> dict | None:
    """The stats recorded by a finished unit with this digest, else None."""
    m = read_marker(root, rel)
    return m.get("stats", {}) if m and m.get("digest") == unit_digest else None


def mark_done(root: str, rel: str, unit_digest: str, stats: dict[str, Any] | None = None) -> None:
    from dclm.io.pages import write_bytes

    write_bytes(marker_path(root, rel), orjson.dumps({"digest": unit_digest, "stats": stats or {}},
                                                     option=orjson.OPT_SORT_KEYS | orjson.OPT_SERIALIZE_NUMPY))


def clear_marker(root: str, rel: str) -> None:
    from dclm.io.pages import url_to_fs

    fs, p = url_to_fs(marker_path(root, rel))
    if fs.exists(p):
        fs.rm(p)
