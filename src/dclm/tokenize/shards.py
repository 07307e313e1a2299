"""Token shards, one writer for two views.

open_lm view: webdataset tars `shard_XXXXXXXX.tar`, one member `<shard:08>_<index:08>.json.gz` per context,
each the gzip of the JSON list of `seqlen` ints (what tokshuf-rs writes, with deterministic keys instead
of uuids), listed in `manifest.jsonl` as `{"shard": "shard_XXXXXXXX", "num_sequences": N}`.

Native view: `shard_XXXXXXXX.bin`, the same contexts in the same order as a raw little-endian
uint16 (vocab <= 65536) or uint32 array of shape (N, seqlen), described by `index.json`; `TokenShards`
memory-maps them for a trainer.
"""

from __future__ import annotations

import gzip
import json
import os
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import orjson

from dclm.errors import DclmError
from dclm.io import atomic_open

INDEX_NAME = "index.json"
MANIFEST_NAME = "manifest.jsonl"
FORMAT = "dclm-tokens-v1"
GZIP_LEVEL = 3  # members are tiny; level 3 is ~3x faster than 6 for ~5% more bytes


def shard_name(k: int) -> str:
    return f"shard_{k:08d}"


def token_dtype(vocab_size: int) -> np.dtype:
    return np.dtype("<u2") if vocab_size <= 1 << 16 else np.dtype("<u4")


def bytes_view(a: np.ndarray) -> memoryview:
    """The bytes of a C-contiguous array without copying them."""
    return memoryview(np.ascontiguousarray(a)).cast("B")


def _gzip(data: bytes) -> bytes:
    c = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)  # wbits 31: gzip container, mtime 0
    return c.compress(data) + c.flush()


def _ustar_header(name: str, size: int) -> bytes:
    """The 512-byte USTAR header tarfile writes for a regular file with mode 0644, mtime 0, uid/gid 0."""
    h = bytearray(512)
    h[0:len(name)] = name.encode()
    h[100:108] = b"0000644\0"
    h[108:116] = b"0000000\0"
    h[116:124] = b"0000000\0"
    h[124:136] = b"%011o\0" % size
    h[136:148] = b"00000000000\0"
    h[148:156] = b" " * 8
    h[156:157] = b"0"
    h[257:265] = b"ustar\x0000"
    h[148:155] = b"%06o\0" % sum(h)
    return bytes(h)


def write_tar(f, contexts: np.ndarray, shard: int) -> None:
    """Stream the webdataset tar of `contexts` (shape (n, seqlen)) to `f`: byte for byte what `tarfile`
    (USTAR) writes, built directly because tarfile's per-member overhead rivals the gzip itself."""
    written = 0
    for i, row in enumerate(contexts):
        data = _gzip(orjson.dumps(row, option=orjson.OPT_SERIALIZE_NUMPY))
        pad = -len(data) % 512
        f.write(_ustar_header(f"{shard:08d}_{i:08d}.json.gz", len(data)) + data + b"\0" * pad)
        written += 512 + len(data) + pad
    written += 1024
    f.write(b"\0" * (1024 + (-written % tarfile.RECORDSIZE)))


def write_shard(directory: str, shard: int, contexts: np.ndarray, dtype: np.dtype) -> dict:
    """Write both views of one shard atomically; returns its manifest row plus byte sizes."""
    name = shard_name(shard)
    native = np.ascontiguousarray(contexts, dtype=dtype)
    with atomic_open(os.path.join(directory, name + ".bin"), "wb") as f:
        f.write(bytes_view(native))
    tar_path = os.path.join(directory, name + ".tar")
    with atomic_open(tar_path, "wb") as f:
        write_tar(f, native, shard)
    return {"shard": name, "num_sequences": int(len(contexts)), "tar_bytes": os.path.getsize(tar_path),
            "bin_bytes": native.nbytes}


def write_manifest(directory: str, rows: list[dict]) -> None:
    text = "\n".join(json.dumps({"shard": r["shard"], "num_sequences": r["num_sequences"]}) for r in rows)
    with atomic_open(os.path.join(directory, MANIFEST_NAME), "wb") as f:
        f.write((text + "\n").encode() if text else b"")


def read_manifest(directory: str) -> list[dict]:
    path = Path(directory) / MANIFEST_NAME
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def read_index(directory: str) -> dict | None:
    path = Path(directory) / INDEX_NAME
    if not path.is_file():
        return None
    try:
        index = json.loads(path.read_text())
    except ValueError:
        raise DclmError(f"{path} is not valid JSON") from None
    if index.get("format") != FORMAT:
        raise DclmError(f"{path} is not a dclm token index (format {index.get('format')!r})")
    return index


def iter_tar_contexts(path: str) -> Iterator[tuple[str, list[int]]]:
    """(member key, token list) for each member of an open_lm tar, in stored order."""
    with tarfile.open(path) as tar:
        for m in tar:
            if m.isfile() and m.name.endswith(".json.gz"):
                yield m.name[: -len(".json.gz")], json.loads(gzip.decompress(tar.extractfile(m).read()))


@dataclass
class TokenShards:
    """The native view of a token dataset: len() contexts, each a memory-mapped row of `seqlen` ids."""

    directory: str
    index: dict

    @classmethod
    def open(cls, directory: str) -> TokenShards:
        index = read_index(directory)
        if index is None:
            raise DclmError(f"no {INDEX_NAME} in {directory}: not a dclm token dataset (run `dclm tokenize-shuffle`)")
        return cls(directory, index)

    @property
    def seqlen(self) -> int:
        return int(self.index["seqlen"])

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.index["dtype"])

    def shard(self, k: int) -> np.ndarray:
        row = self.index["shards"][k]
        path = os.path.join(self.directory, row["shard"] + ".bin")
        return np.memmap(path, dtype=self.dtype, mode="r", shape=(row["num_sequences"], self.seqlen))

    def __len__(self) -> int:
        return sum(r["num_sequences"] for r in self.index["shards"])

    def __iter__(self) -> Iterator[np.ndarray]:
        for k in range(len(self.index["shards"])):
            yield from self.shard(k)
