"""A checkpoint opened for export: its shape, its raw config and its tensors, read one at a time.

An export never builds the model: it reads one tensor, writes its converted form and drops it, so the
memory it needs is set by the largest tensor (DCLM-7B's 50432 x 4096 embedding, 826 MB in fp32), not by the
checkpoint. Both formats dclm reads are supported: the apple/DCLM-7B HF layout (sharded safetensors are
opened lazily) and an open_lm `epoch_N.pt` (memory-mapped by torch, never loaded whole).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch

from dclm.errors import DclmError
from dclm.model.checkpoint import INDEX, PREFIX, SAFETENSORS, infer_args, read_config, strip_prefixes
from dclm.model.openlm import ModelArgs, Transformer


@dataclass
class CheckpointSource:
    """Lazy access to a checkpoint's tensors under open_lm's names (no `model.` prefix)."""

    path: Path
    args: ModelArgs
    config: dict
    name: str
    _files: dict[str, Path] = field(default_factory=dict, repr=False)  # tensor -> safetensors file
    _state: dict[str, torch.Tensor] | None = field(default=None, repr=False)  # a memory-mapped .pt

    @property
    def tokenizer_path(self) -> Path | None:
        """The checkpoint's own tokenizer.json (an HF-layout directory keeps one beside config.json)."""
        p = (self.path if self.path.is_dir() else self.path.parent) / "tokenizer.json"
        return p if p.is_file() else None

    def names(self) -> list[str]:
        return sorted(self._state) if self._state is not None else sorted(self._files)

    def has(self, name: str) -> bool:
        return name in (self._state if self._state is not None else self._files)

    def get(self, name: str) -> torch.Tensor:
        """One tensor as a fresh float32 CPU tensor (a copy: callers may change it in place)."""
        if self._state is not None:
            return self._state[name].to(torch.float32, copy=True)
        from safetensors import safe_open

        with safe_open(str(self._files[name]), framework="pt") as st:
            t = st.get_tensor(PREFIX + name)
        return t.to(torch.float32)

    def shapes(self) -> dict[str, tuple[int, ...]]:
        if self._state is not None:
            return {k: tuple(v.shape) for k, v in self._state.items()}
        from safetensors import safe_open

        out = {}
        for f in sorted(set(self._files.values())):
            with safe_open(str(f), framework="pt") as st:
                for key in st.keys():
                    out[key[len(PREFIX):]] = tuple(st.get_slice(key).get_shape())
        return out


def open_checkpoint(path: str | Path, n_heads: int | None = None) -> CheckpointSource:
    """A checkpoint directory in the apple/DCLM-7B layout, or an open_lm `.pt` file, checked against its
    architecture (names and shapes) without reading any weights."""
    p = Path(path)
    if p.is_dir():
        src = _open_hf(p)
    elif p.is_file():
        src = _open_pt(p, n_heads)
    else:
        raise DclmError(f"model not found: {p}")
    _check_shapes(src)
    return src


def _open_hf(d: Path) -> CheckpointSource:
    args, cfg = read_config(d)
    if "quantization" in cfg:
        raise DclmError(f"{d} holds a model quantized by `dclm quantize`; export the unquantized checkpoint")
    index = d / INDEX
    if index.is_file():
        weight_map = json.loads(index.read_text())["weight_map"]
    elif (d / SAFETENSORS).is_file():
        from safetensors import safe_open

        with safe_open(str(d / SAFETENSORS), framework="pt") as st:
            weight_map = {k: SAFETENSORS for k in st.keys()}
    else:
        raise DclmError(f"{d}: no {SAFETENSORS} or {INDEX}")
    files = {}
    for key, fname in weight_map.items():
        if not key.startswith(PREFIX):
            raise DclmError(f"{d}: tensor {key!r} lacks the {PREFIX!r} prefix of the DCLM HF layout")
        if not (d / fname).is_file():
            raise DclmError(f"{d}: shard {fname} listed in {INDEX} is missing")
        files[key[len(PREFIX):]] = d / fname
    name = cfg.get("model") or d.name
    return CheckpointSource(d, args, cfg, str(name), _files=files)


def _open_pt(p: Path, n_heads: int | None) -> CheckpointSource:
    try:
        obj = torch.load(str(p), map_location="cpu", weights_only=True, mmap=True)
    except Exception as e:  # torch raises UnpicklingError/RuntimeError with long messages
        raise DclmError(f"{p}: not a loadable weights-only torch checkpoint ({str(e).splitlines()[0]})") from None
    state = obj.get("state_dict", obj) if isinstance(obj, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise DclmError(f"{p}: no tensor state_dict inside")
    state = strip_prefixes(state)
    args = infer_args(state, n_heads=n_heads, source=str(p))
    name = obj.get("name") if isinstance(obj.get("name"), str) else re.sub(r"\.pt$", "", p.name)
    return CheckpointSource(p, args, {}, name, _state=state)


def _check_shapes(src: CheckpointSource) -> None:
    with torch.device("meta"):  # shapes only: a CPU-built model would cost the checkpoint's size in memory
        expected = {k: tuple(v.shape) for k, v in Transformer(src.args, init=False).state_dict().items()}
    found = src.shapes()
    if src.args.weight_tying:
        expected.pop("output.weight")
    for k in sorted(set(expected) - set(found)):
        if not k.endswith("pos_embed.inv_freq"):
            raise DclmError(f"{src.path}: missing tensor {k!r}")
    for k in sorted(found):
        if k not in expected:
            raise DclmError(f"{src.path}: unexpected tensor {k!r}")
        if found[k] != expected[k]:
            raise DclmError(f"{src.path}: tensor {k!r} has shape {list(found[k])}, expected {list(expected[k])}")
