"""One process or many under torchrun: the device, the process group, and DDP or FSDP2 around the model.

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK (and handles multi-node rendezvous with its usual
--nnodes/--rdzv-* flags); without them the run is a single process and nothing here starts a group.
Gradients are averaged over processes (DDP's and FSDP's default), so a global batch split over W processes
trains like the same global batch in one process.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import torch

from dclm.errors import DclmError


@dataclass
class Dist:
    rank: int
    world: int
    local_rank: int
    device: torch.device

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1


def init(device: str) -> Dist:
    """The device this process trains on, and the process group when torchrun started several."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device == "cuda" and not torch.cuda.is_available():
        raise DclmError("--device cuda: no CUDA device is visible")
    use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    dev = torch.device("cuda", local_rank) if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(dev)
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if use_cuda else "gloo")
    return Dist(rank, world, local_rank, dev)


def close(d: Dist) -> None:
    if d.distributed and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def wrap(model: torch.nn.Module, d: Dist, fsdp: bool) -> torch.nn.Module:
    """DDP, or FSDP2 (`fully_shard` per block, then the root) with bf16 compute when on GPU."""
    if not d.distributed:
        if fsdp:
            raise DclmError("--fsdp needs several processes: start the run with torchrun --nproc-per-node N")
        return model
    if fsdp:
        from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

        mp = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32) \
            if d.device.type == "cuda" else MixedPrecisionPolicy()
        for block in model.layers:
            fully_shard(block, mp_policy=mp)
        fully_shard(model, mp_policy=mp)
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[d.device.index] if d.device.type == "cuda" else None)


def no_sync(model: torch.nn.Module, d: Dist, last: bool):
    """Skip the gradient all-reduce on all but the last micro-batch of a step (DDP's no_sync; FSDP2's
    set_requires_gradient_sync)."""
    if not d.distributed or last:
        if hasattr(model, "set_requires_gradient_sync"):
            model.set_requires_gradient_sync(True)
        return contextlib.nullcontext()
    if hasattr(model, "no_sync"):
        return model.no_sync()
    model.set_requires_gradient_sync(False)
    return contextlib.nullcontext()


def mean(value: torch.Tensor, d: Dist) -> torch.Tensor:
    """The mean of a scalar tensor over processes."""
    if d.distributed:
        value = value.clone()
        torch.distributed.all_reduce(value, op=torch.distributed.ReduceOp.AVG if d.device.type == "cuda"
                                     else torch.distributed.ReduceOp.SUM)
        if d.device.type != "cuda":  # gloo has no AVG
            value /= d.world
    return value


def barrier(d: Dist) -> None:
    if d.distributed:
        torch.distributed.barrier()


def broadcast_error(message: str | None, d: Dist) -> str | None:
    """Rank 0's error (or None) on every rank, so a check made by one process stops them all together."""
    if not d.distributed:
        return message
    box = [message]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]
