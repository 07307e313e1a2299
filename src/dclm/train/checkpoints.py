"""Training checkpoints: OUTPUT/checkpoints/step_XXXXXXXX/, written whole or not at all.

Each holds `config.json` + `model.safetensors` (the apple/DCLM-7B HF layout, so `dclm generate --model` and
`dclm eval --model` read a checkpoint directly), `optimizer.pt` (AdamW state keyed by parameter name, as
torch.distributed.checkpoint's full state dicts are, plus the RNG states) and `state.json` (step, data
position, the run's digest). The folder is built under a temporary name and renamed into place, so a crash
leaves either the previous checkpoint or the new one, never half of one.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import torch

from dclm.errors import DclmError
from dclm.model.checkpoint import PREFIX, read_safetensors, save_state_dict
from dclm.model.openlm import ModelArgs

STATE = "state.json"
OPTIMIZER = "optimizer.pt"
_STEP_DIR = re.compile(r"^step_(\d{8})$")


def checkpoint_dir(output: str, step: int) -> Path:
    return Path(output) / "checkpoints" / f"step_{step:08d}"


def list_checkpoints(output: str) -> list[Path]:
    """Complete checkpoints of a run, oldest first."""
    root = Path(output) / "checkpoints"
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if _STEP_DIR.match(p.name) and (p / STATE).is_file()]
    return sorted(found, key=lambda p: p.name)


def save(output: str, step: int, args: ModelArgs, model_state: dict, optim_state: dict, state: dict,
         keep: int) -> Path:
    """Write checkpoint `step` atomically and delete all but the newest `keep`."""
    final = checkpoint_dir(output, step)
    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    save_state_dict(args, model_state, tmp)
    rng = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    torch.save({"optimizer": optim_state, "rng": rng}, tmp / OPTIMIZER)
    (tmp / STATE).write_text(json.dumps(state, indent=2, sort_keys=True) + "\n")
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    for old in list_checkpoints(output)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def resolve(output: str, resume: str | None) -> Path | None:
    """The checkpoint to resume from: None for a fresh run ('latest' with no checkpoint yet is a fresh run)."""
    if resume is None:
        return None
    if resume == "latest":
        found = list_checkpoints(output)
        return found[-1] if found else None
    p = Path(resume)
    if not (p / STATE).is_file():
        raise DclmError(f"{resume}: not a dclm train checkpoint (no {STATE})")
    return p


def load(path: Path, device: torch.device) -> tuple[dict, dict, dict]:
    """(model state dict without the HF prefix, optimizer state, state.json) of a checkpoint."""
    try:
        state = json.loads((path / STATE).read_text())
        bundle = torch.load(path / OPTIMIZER, map_location="cpu", weights_only=True)
        raw = read_safetensors(path)
    except DclmError:
        raise
    except Exception as e:  # a truncated or overwritten file surfaces as whatever its reader raises
        raise DclmError(f"{path}: damaged checkpoint ({type(e).__name__}: {e})") from None
    if not isinstance(bundle, dict) or "optimizer" not in bundle:
        raise DclmError(f"{path}/{OPTIMIZER}: not a dclm train optimizer file")
    model_state = {k[len(PREFIX):]: v for k, v in raw.items() if k.startswith(PREFIX)}
    torch.set_rng_state(bundle["rng"]["cpu"])
    if device.type == "cuda" and "cuda" in bundle["rng"]:
        torch.cuda.set_rng_state_all(bundle["rng"]["cuda"])
    return model_state, bundle["optimizer"], state
