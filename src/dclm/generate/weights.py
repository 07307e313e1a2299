"""Safetensors files read as zero-copy views of a memory map, and written tensor by tensor.

Loading a checkpoint for inference maps each file once and hands out tensors that view the map, so a
model's weights are read from the page cache exactly when they are first used or copied (the decode
kernels' huge-page copy is then the only copy). Every header entry is checked against the file's size
first, so a truncated or corrupt file is one clear line, never a crash inside a kernel. The writer emits
the header first (from shapes and dtypes alone) and then the tensors in order, which is what lets
`dclm quantize` stream a checkpoint larger than memory. The format: an 8-byte little-endian header
length, a JSON header `{name: {dtype, shape, data_offsets}}`, then the data (offsets relative to its start).
"""

from __future__ import annotations

import json
import mmap
import os
import struct
import warnings
from pathlib import Path

import torch

from dclm.errors import DclmError

DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "F64": torch.float64,
          "I8": torch.int8, "U8": torch.uint8, "I16": torch.int16, "I32": torch.int32, "I64": torch.int64,
          "BOOL": torch.bool}
NAMES = {v: k for k, v in DTYPES.items()}
INDEX = "model.safetensors.index.json"
SINGLE = "model.safetensors"


def read_header(path: Path) -> tuple[dict, int, int]:
    """(tensor entries, data start, file size) of one safetensors file, checked for consistency."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise DclmError(f"{path}: truncated safetensors file ({size} bytes, no header)")
            (n,) = struct.unpack("<Q", head)
            if n > size - 8 or n > 100 * 2**20:
                raise DclmError(f"{path}: truncated or not a safetensors file (header of {n} bytes in a {size}-byte file)")
            raw = f.read(n)
    except OSError as e:
        raise DclmError(f"{path}: cannot read ({e.strerror})") from None
    try:
        header = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise DclmError(f"{path}: not a safetensors file (its header is not JSON)") from None
    if not isinstance(header, dict):
        raise DclmError(f"{path}: not a safetensors file (its header is not a JSON object)")
    header.pop("__metadata__", None)
    start = 8 + n
    for name, e in header.items():
        try:
            dtype = DTYPES[e["dtype"]]
            shape = [int(d) for d in e["shape"]]
            begin, end = (int(o) for o in e["data_offsets"])
        except (KeyError, TypeError, ValueError):
            raise DclmError(f"{path}: tensor {name!r} has a malformed header entry") from None
        numel = 1
        for d in shape:
            numel *= d
        if end - begin != numel * dtype.itemsize or begin < 0:
            raise DclmError(f"{path}: tensor {name!r} has {end - begin} bytes for shape {shape} of {e['dtype']}")
        if start + end > size:
            raise DclmError(f"{path}: truncated ({size} bytes; tensor {name!r} ends at byte {start + end})")
    return header, start, size


def physical_memory() -> int:
    """Bytes of RAM on this machine (0 where the platform does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0


def map_file(path: Path, maps: list | None = None) -> dict[str, torch.Tensor]:
    """Every tensor of one safetensors file as a view of a private (copy-on-write) map of it; the map is
    appended to `maps`. A file larger than the machine's memory (DCLM-7B in fp32, 27.5 GB, loaded with
    `--dtype bf16` on a 24 GB machine) is mapped read-only instead: Linux refuses a private writable map
    larger than memory plus swap, and populating it up front would only evict itself. Its tensors must
    then be copied before they are written (the dtype cast and the kernels' huge-page move copy)."""
    header, start, size = read_header(path)
    if not header:
        return {}
    ram = physical_memory()
    read_only = bool(ram) and size > ram
    with open(path, "rb") as f:
        if read_only:
            mm = mmap.mmap(f.fileno(), size, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ)
        else:  # populated up front: one pass of the kernel over the page cache instead of a fault per 4 KiB page
            flags = mmap.MAP_PRIVATE | getattr(mmap, "MAP_POPULATE", 0)
            mm = mmap.mmap(f.fileno(), size, flags=flags, prot=mmap.PROT_READ | mmap.PROT_WRITE)
    if maps is not None:
        maps.append(mm)
    with warnings.catch_warnings():
        if read_only:  # torch warns that the buffer is not writable: said above
            warnings.simplefilter("ignore", UserWarning)
        return _views(mm, header, start)


def _views(mm, header: dict, start: int) -> dict[str, torch.Tensor]:
    out = {}
    for name, e in header.items():
        dtype = DTYPES[e["dtype"]]
        begin, end = e["data_offsets"]
        if end == begin:
            out[name] = torch.empty(e["shape"], dtype=dtype)
            continue
        if (start + begin) % dtype.itemsize:  # an unaligned tensor cannot be viewed in place
            flat = torch.frombuffer(mm, dtype=torch.uint8, count=end - begin, offset=start + begin).clone()
            out[name] = flat.view(dtype).view(e["shape"])
            continue
        flat = torch.frombuffer(mm, dtype=dtype, count=(end - begin) // dtype.itemsize, offset=start + begin)
        out[name] = flat.view(e["shape"])
    return out


def checkpoint_files(model_dir: Path) -> list[Path]:
    """The safetensors files of a (possibly sharded) checkpoint directory."""
    index = model_dir / INDEX
    if index.is_file():
        try:
            names = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        except (json.JSONDecodeError, KeyError, TypeError, AttributeError):
            raise DclmError(f"{index}: not a safetensors index (no weight_map)") from None
        files = [model_dir / n for n in names]
        for f in files:
            if not f.is_file():
                raise DclmError(f"{model_dir}: shard {f.name} listed in {INDEX} is missing")
        return files
    if (model_dir / SINGLE).is_file():
        return [model_dir / SINGLE]
    raise DclmError(f"{model_dir}: no {SINGLE} or {INDEX}")


def map_checkpoint(model_dir: str | Path, maps: list | None = None) -> dict[str, torch.Tensor]:
    """All tensors of a checkpoint directory, as views of memory maps (appended to `maps`)."""
    out: dict[str, torch.Tensor] = {}
    for f in checkpoint_files(Path(model_dir)):
        out.update(map_file(f, maps))
    return out


class Writer:
    """Writes one safetensors file: the header from (name, dtype, shape) up front, then `write(name, t)` in
    that order; `close()` moves the finished file into place (temp file + rename, like dclm.io)."""

    def __init__(self, path: str | Path, entries: list[tuple[str, torch.dtype, tuple[int, ...]]]):
        self.path = Path(path)
        self.tmp = self.path.with_name(self.path.name + ".tmp")
        header, offset = {}, 0
        self.order = []
        for name, dtype, shape in entries:
            numel = 1
            for d in shape:
                numel *= d
            nbytes = numel * dtype.itemsize
            header[name] = {"dtype": NAMES[dtype], "shape": list(shape), "data_offsets": [offset, offset + nbytes]}
            self.order.append((name, dtype, tuple(shape)))
            offset += nbytes
        header["__metadata__"] = {"format": "pt"}
        raw = json.dumps(header, separators=(",", ":")).encode()
        raw += b" " * (-len(raw) % 8)  # data starts 8-byte aligned
        self.file = open(self.tmp, "wb")
        self.file.write(struct.pack("<Q", len(raw)) + raw)
        self.next = 0

    def write(self, name: str, t: torch.Tensor) -> None:
        want, dtype, shape = self.order[self.next]
        if name != want or t.dtype != dtype or tuple(t.shape) != shape:
            raise ValueError(f"expected {want} {dtype} {shape}, got {name} {t.dtype} {tuple(t.shape)}")
        self.file.write(t.detach().contiguous().view(-1).view(torch.uint8).numpy().data)
        self.next += 1

    def close(self) -> None:
        if self.next != len(self.order):
            raise ValueError(f"{len(self.order) - self.next} tensors not written")
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()
        self.tmp.replace(self.path)

    def abort(self) -> None:
        self.file.close()
        self.tmp.unlink(missing_ok=True)
