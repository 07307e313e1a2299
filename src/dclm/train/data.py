"""Training data: token datasets on disk, their seeded order, and a prefetching micro-batch loader.

Two on-disk forms are read, both written by `dclm tokenize-shuffle` (see dclm/tokenize/shards.py):
- native: `shard_*.bin` + `index.json`, memory-mapped (preferred when a folder has both);
- open_lm webdataset: `shard_*.tar` of `*.json.gz` members listed in `manifest.jsonl` (what DCLM's tokshuf-rs
  and open_lm's tokenize_shuffle.py write), read member by member at the offsets of a one-time header scan.

Order: every source is read in a two-level permutation, shards then rows within a shard, drawn from
(seed, source, pass) — the data are already globally shuffled by tokenize-shuffle, so this only has to be
seeded and cheap, not a second global shuffle. With several weighted sources each global batch draws its
sources from (seed, step). The order depends only on the seed, the step and the per-source cursors, never
on the number of processes: every rank computes the global batch and takes its slice.
"""

from __future__ import annotations

import abc
import gzip
import hashlib
import json
import os
import queue
import tarfile
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson

from dclm.errors import DclmError
from dclm.tokenize.shards import INDEX_NAME, MANIFEST_NAME, TokenShards, read_manifest

MIX_SUFFIXES = (".yaml", ".yml", ".json")


class TokenDataset(abc.ABC):
    """`len()` contexts of `seqlen` token ids in shards of `shard_sizes`; `rows(shard, idx)` reads some of one shard."""

    path: str
    seqlen: int
    vocab_size: int | None  # the tokenizer's, when the data records it
    pad_id: int | None
    tokenizer: str | None  # the tokenizer's name or path, when recorded
    reference: str | None = None  # DCLM's dataset reference JSON beside the data, when there is one
    shard_sizes: list[int]

    def __len__(self) -> int:
        return sum(self.shard_sizes)

    @abc.abstractmethod
    def rows(self, shard: int, idx: np.ndarray) -> np.ndarray:
        """int64 [len(idx), seqlen]"""

    @abc.abstractmethod
    def fingerprint(self) -> str:
        """A short digest that changes when the data's content or order would."""


class NativeDataset(TokenDataset):
    def __init__(self, directory: str):
        self.path = directory
        self._shards = TokenShards.open(directory)
        index = self._shards.index
        self.seqlen = self._shards.seqlen
        self.vocab_size = index.get("vocab_size")
        self.pad_id = index.get("pad_id")
        self.tokenizer = (index.get("tokenizer") or {}).get("name")
        ref = index.get("reference")
        self.reference = os.path.join(directory, ref) if ref and os.path.isfile(os.path.join(directory, ref)) else None
        self.shard_sizes = [int(r["num_sequences"]) for r in index["shards"]]
        self._maps: dict[int, np.ndarray] = {}
        for k, n in enumerate(self.shard_sizes):
            f = os.path.join(directory, index["shards"][k]["shard"] + ".bin")
            expected = n * self.seqlen * self._shards.dtype.itemsize
            if not os.path.isfile(f) or os.path.getsize(f) != expected:
                raise DclmError(f"{f}: missing or not {expected} bytes as {INDEX_NAME} says (truncated copy?)")

    def rows(self, shard: int, idx: np.ndarray) -> np.ndarray:
        if shard not in self._maps:
            self._maps[shard] = self._shards.shard(shard)
        return np.asarray(self._maps[shard][idx], dtype=np.int64)

    def fingerprint(self) -> str:
        rows = [(r["shard"], r["num_sequences"]) for r in self._shards.index["shards"]]
        return _digest({"kind": "native", "seqlen": self.seqlen, "shards": rows,
                        "tokenizer": self._shards.index.get("tokenizer")})


class TarDataset(TokenDataset):
    """open_lm webdataset shards; member offsets come from one scan of each tar's headers, made when first read."""

    def __init__(self, directory: str):
        self.path = directory
        manifest = read_manifest(directory)
        if manifest:
            self._files = [os.path.join(directory, r["shard"] + ".tar") for r in manifest]
            self.shard_sizes = [int(r["num_sequences"]) for r in manifest]
            missing = [f for f in self._files if not os.path.isfile(f)]
            if missing:
                raise DclmError(f"{missing[0]}: listed in {MANIFEST_NAME} but missing")
        else:
            self._files = sorted(str(p) for p in Path(directory).glob("*.tar"))
            self.shard_sizes = [len(self._scan(k)) for k in range(len(self._files))]
        self._offsets: dict[int, list[tuple[int, int]]] = {}
        self.vocab_size = self.pad_id = self.tokenizer = None
        first = next((k for k, n in enumerate(self.shard_sizes) if n), None)
        self.seqlen = len(self._read(first, 0)) if first is not None else 0

    def _scan(self, k: int) -> list[tuple[int, int]]:
        if k not in self._offsets:
            try:
                with tarfile.open(self._files[k]) as tar:
                    self._offsets[k] = [(m.offset_data, m.size) for m in tar
                                        if m.isfile() and m.name.endswith(".json.gz")]
            except (tarfile.TarError, OSError) as e:
                raise DclmError(f"{self._files[k]}: not a readable tar ({e})") from None
        return self._offsets[k]

    def _read(self, k: int, i: int) -> list[int]:
        offsets = self._scan(k)
        if i >= len(offsets):
            raise DclmError(f"{self._files[k]}: {len(offsets)} members, fewer than {MANIFEST_NAME} says")
        start, size = offsets[i]
        with open(self._files[k], "rb") as f:
            f.seek(start)
            try:
                return orjson.loads(gzip.decompress(f.read(size)))
            except (OSError, EOFError, orjson.JSONDecodeError) as e:
                raise DclmError(f"{self._files[k]}: member {i} is damaged ({e})") from None

    def rows(self, shard: int, idx: np.ndarray) -> np.ndarray:
        out = np.empty((len(idx), self.seqlen), dtype=np.int64)
        for j, i in enumerate(idx):
            row = self._read(shard, int(i))
            if len(row) != self.seqlen:
                raise DclmError(f"{self._files[shard]}: member {i} holds {len(row)} tokens, not {self.seqlen}")
            out[j] = row
        return out

    def fingerprint(self) -> str:
        return _digest({"kind": "tar", "files": [(os.path.basename(f), os.path.getsize(f)) for f in self._files],
                        "sizes": self.shard_sizes})


def _digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class Source:
    """One weighted part of the training data: one or more datasets read as one pool."""

    name: str
    weight: float | None
    datasets: list[TokenDataset]

    def __post_init__(self):
        self.shard_sizes = [n for d in self.datasets for n in d.shard_sizes]
        self._where = [(d, k) for d in self.datasets for k in range(len(d.shard_sizes))]

    def __len__(self) -> int:
        return sum(self.shard_sizes)

    def rows(self, shard: int, idx: np.ndarray) -> np.ndarray:
        dataset, k = self._where[shard]
        return dataset.rows(k, idx)


def open_dataset(path: str) -> TokenDataset:
    p = Path(path)
    if not p.exists():
        raise DclmError(f"{path}: no such file or folder")
    if p.is_file() and p.name == MANIFEST_NAME:
        p = p.parent
    if not p.is_dir():
        raise DclmError(f"{path}: not token data (a tokenize-shuffle folder, a {MANIFEST_NAME} or a mix file)")
    if (p / INDEX_NAME).is_file():
        return NativeDataset(str(p))
    if (p / MANIFEST_NAME).is_file() or any(p.glob("*.tar")):
        return TarDataset(str(p))
    raise DclmError(f"{path}: no {INDEX_NAME}, {MANIFEST_NAME} or .tar shards (run `dclm tokenize-shuffle`)")


def _read_mix(path: Path) -> list[tuple[str, float]]:
    import yaml

    try:
        spec = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise DclmError(f"{path}: not a readable mix file ({e})") from None
    entries = spec.get("sources") if isinstance(spec, dict) else None
    if not isinstance(entries, list) or not entries:
        raise DclmError(f"{path}: a mix file needs 'sources: [{{path: DIR, weight: W}}, ...]'")
    out = []
    for i, e in enumerate(entries):
        if not isinstance(e, dict) or "path" not in e:
            raise DclmError(f"{path}: sources[{i}] needs a 'path'")
        w = e.get("weight", 1.0)
        if not isinstance(w, (int, float)) or w < 0:
            raise DclmError(f"{path}: sources[{i}] weight {w!r} is not a number >= 0")
        p = Path(str(e["path"]))
        out.append((str(p if p.is_absolute() else path.parent / p), float(w)))
    if not any(w > 0 for _, w in out):
        raise DclmError(f"{path}: every weight is 0")
    return out


def open_sources(paths: tuple[str, ...]) -> list[Source]:
    """The training sources: a mix file gives one weighted source per entry; plain paths are pooled into one."""
    mixes = [p for p in paths if Path(p).is_file() and Path(p).suffix in MIX_SUFFIXES]
    if mixes and len(paths) > 1:
        raise DclmError("give either one mix file or data paths, not both")
    if mixes:
        sources = [Source(path, w, [open_dataset(path)]) for path, w in _read_mix(Path(mixes[0])) if w > 0]
    else:
        sources = [Source("data", None, [open_dataset(p) for p in paths])]
    datasets = [d for s in sources for d in s.datasets]
    for d in datasets:
        if not len(d):
            raise DclmError(f"{d.path}: holds no sequences")
        if d.seqlen != datasets[0].seqlen:
            raise DclmError(f"{d.path}: contexts of {d.seqlen} tokens, but {datasets[0].path} has {datasets[0].seqlen}")
    return sources


class DataOrder:
    """Which sequences make global batch `step`: cursors per source, permutations from (seed, source, pass)."""

    def __init__(self, sources: list[Source], seed: int, global_bs: int, multiple_passes: bool):
        self.sources, self.seed, self.global_bs, self.multiple_passes = sources, seed, global_bs, multiple_passes
        total = sum(s.weight or 0.0 for s in sources)
        self.probs = np.array([(s.weight or 0.0) / total for s in sources]) if len(sources) > 1 else None
        self.cursors = [0] * len(sources)
        self._perms: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
        self._rows: dict[int, tuple[tuple[int, int, int], np.ndarray]] = {}  # source -> (its current shard, row order)

    def state(self) -> dict:
        return {"cursors": list(self.cursors)}

    def load_state(self, state: dict) -> None:
        if len(state["cursors"]) != len(self.sources):
            raise DclmError("the checkpoint's data position names a different number of sources")
        self.cursors = [int(c) for c in state["cursors"]]

    def _pass_order(self, j: int, p: int) -> tuple[np.ndarray, np.ndarray]:
        """(shard order, cumulative end offsets) of source j's pass p."""
        if (j, p) not in self._perms:
            sizes = np.array(self.sources[j].shard_sizes)
            order = np.random.default_rng([self.seed, j, p]).permutation(len(sizes))
            self._perms = {k: v for k, v in self._perms.items() if k[0] != j}  # one pass per source in memory
            self._perms[(j, p)] = (order, np.cumsum(sizes[order]))
        return self._perms[(j, p)]

    def _locate(self, j: int, c: int) -> tuple[int, int]:
        n = len(self.sources[j])
        p, c = divmod(c, n)
        if p and not self.multiple_passes:
            raise DclmError(f"the data ran out after {n:,} sequences of {self.sources[j].name}; "
                            "pass --multiple-data-passes to read it again, or lower the token budget")
        order, ends = self._pass_order(j, p)
        i = int(np.searchsorted(ends, c, side="right"))
        shard = int(order[i])
        row = c - (int(ends[i - 1]) if i else 0)
        key = (j, p, shard)
        if self._rows.get(j, (None,))[0] != key:
            size = self.sources[j].shard_sizes[shard]
            self._rows[j] = (key, np.random.default_rng([self.seed, j, p, shard]).permutation(size))
        return shard, int(self._rows[j][1][row])

    def next_batch(self, step: int) -> list[tuple[int, int, int]]:
        """(source, shard, row) for each sequence of global batch `step` (0-based), advancing the cursors."""
        if self.probs is None:
            picks = np.zeros(self.global_bs, dtype=np.int64)
        else:
            picks = np.random.default_rng([self.seed, 1 << 20, step]).choice(len(self.sources), self.global_bs,
                                                                            p=self.probs)
        out = []
        for j in picks.tolist():
            out.append((j, *self._locate(j, self.cursors[j])))
            self.cursors[j] += 1
        return out

    def check_budget(self, steps: int) -> None:
        """One line, before anything is written, when `steps` global batches would need a second pass."""
        if self.multiple_passes:
            return
        need = steps * self.global_bs
        for j, s in enumerate(self.sources):
            share = need if self.probs is None else need * self.probs[j]
            if self.cursors[j] + share > len(s) * (1.0 if self.probs is None else 1.05):
                raise DclmError(f"{steps:,} steps of {self.global_bs} sequences need {int(share):,} from "
                                f"{s.name}, which holds {len(s):,}; pass --multiple-data-passes, --max-steps or "
                                "a smaller --tokens")


def read_rows(sources: list[Source], picks: list[tuple[int, int, int]]) -> np.ndarray:
    """The token rows of `picks` in order, one read per (source, shard)."""
    out = None
    groups: dict[tuple[int, int], list[int]] = {}
    for pos, (j, shard, _) in enumerate(picks):
        groups.setdefault((j, shard), []).append(pos)
    for (j, shard), positions in groups.items():
        rows = sources[j].rows(shard, np.array([picks[p][2] for p in positions]))
        if out is None:
            out = np.empty((len(picks), rows.shape[1]), dtype=np.int64)
        out[positions] = rows
    return out


@dataclass
class MicroBatch:
    step: int  # 0-based optimizer step this micro-batch belongs to
    index: int  # position within the step's micro-batches
    tokens: object  # torch.LongTensor [micro_bs, seqlen]
    data_state: dict | None  # the order's state after this step (on the step's last micro-batch)


class Prefetcher:
    """A thread that builds this rank's micro-batches ahead of the training loop, in order."""

    def __init__(self, order: DataOrder, start: int, stop: int, rank: int, world: int, micro_bs: int,
                 depth: int, pin: bool, vocab_size: int):
        self._q: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._args = (order, start, stop, rank, world, micro_bs, pin, vocab_size)
        self._thread = threading.Thread(target=self._work, daemon=True, name="dclm-train-loader")
        self._thread.start()

    def _work(self) -> None:
        import torch

        order, start, stop, rank, world, micro_bs, pin, vocab_size = self._args
        per_rank = order.global_bs // world
        try:
            for step in range(start, stop):
                picks = order.next_batch(step)[rank * per_rank:(rank + 1) * per_rank]
                state = order.state()
                n_micro = per_rank // micro_bs
                for m in range(n_micro):
                    rows = read_rows(order.sources, picks[m * micro_bs:(m + 1) * micro_bs])
                    if rows.max() >= vocab_size or rows.min() < 0:
                        bad = int(rows.max() if rows.max() >= vocab_size else rows.min())
                        raise DclmError(f"token id {bad} at step {step + 1} is outside the model's {vocab_size} "
                                        "embedding rows (data from another tokenizer?); pass --vocab-size")
                    t = torch.from_numpy(rows)
                    item = MicroBatch(step, m, t.pin_memory() if pin else t, state if m == n_micro - 1 else None)
                    while not self._stop.is_set():
                        try:
                            self._q.put(item, timeout=0.1)
                            break
                        except queue.Full:
                            continue
                    if self._stop.is_set():
                        return
        except BaseException as e:  # handed to the training loop, which raises it there
            self._q.put(e)

    def get(self) -> MicroBatch:
        item = self._q.get()
        if isinstance(item, BaseException):
            raise item
        return item

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
