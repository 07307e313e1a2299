"""Loading a checkpoint for inference fast: memory-mapped tensors, a model built without initializing
weights it is about to replace, one copy of the matrices (onto huge pages, by the CPU kernels' swap).

`torch.device("meta")` construction, which `dclm.model.checkpoint` uses, runs each module's initializer
through torch's Python reference ops and so imports torch._dynamo (seconds); here the module initializers
are switched off instead and the skeleton's tensors are left unallocated-in-practice (`torch.empty`: the
memory is never touched before `load_state_dict(assign=True)` replaces it).
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from torch import nn

from dclm.errors import DclmError


@contextlib.contextmanager
def skipped_init():
    """nn.Linear / nn.Embedding constructors leave their weights as torch.empty gives them."""
    names = ("kaiming_uniform_", "uniform_", "normal_")
    saved = {n: getattr(nn.init, n) for n in names}
    try:
        for n in names:
            setattr(nn.init, n, lambda t, *a, **k: t)
        yield
    finally:
        for n, f in saved.items():
            setattr(nn.init, n, f)


def skeleton(args):
    from dclm.model.openlm import Transformer

    with skipped_init():
        return Transformer(args, init=False)


def load_plain(model_dir: Path, args, dtype, maps: list) -> nn.Module:
    """A DCLM-layout checkpoint as a Transformer whose tensors view the memory-mapped files."""
    from dclm.generate.weights import map_checkpoint
    from dclm.model.checkpoint import PREFIX

    raw = map_checkpoint(model_dir, maps)
    bad = next((k for k in raw if not k.startswith(PREFIX)), None)
    if bad is not None:
        raise DclmError(f"{model_dir}: tensor {bad!r} lacks the {PREFIX!r} prefix of the DCLM HF layout")
    state = {k[len(PREFIX):]: v for k, v in raw.items()}
    model = skeleton(args)
    expected = model.state_dict()
    if args.weight_tying:
        expected.pop("output.weight")
        state.pop("output.weight", None)
    for name in sorted(set(expected) | set(state)):
        if name not in state:
            if name.endswith("pos_embed.inv_freq"):  # older exports: the standard frequencies
                state[name] = expected[name]
                continue
            raise DclmError(f"{model_dir}: missing tensor {name!r}")
        if name not in expected:
            raise DclmError(f"{model_dir}: unexpected tensor {name!r}")
        if state[name].shape != expected[name].shape:
            raise DclmError(f"{model_dir}: tensor {name!r} has shape {list(state[name].shape)}, "
                            f"expected {list(expected[name].shape)}")
        t = state[name]
        if dtype is not None and t.dtype != dtype and t.is_floating_point() and not name.endswith("inv_freq"):
            state[name] = t.to(dtype)
    model.load_state_dict(state, assign=True, strict=not args.weight_tying)
    if args.weight_tying:
        model.output.weight = model.tok_embeddings.weight
    return model.eval()


def release_maps(maps: list) -> None:
    """Drop the mapped pages from this process (the tensors that still view a map read it back from the
    page cache on use; those the kernels use were copied)."""
    import mmap

    for mm in maps:
        with contextlib.suppress(OSError, ValueError, AttributeError):
            mm.madvise(mmap.MADV_DONTNEED)
