"""DCLM's open_lm block written as llama.cpp's `olmoe` graph, exactly.

The `olmoe` graph (llama.cpp src/models/olmoe.cpp) is DCLM's block except for two things, both removed by
rewriting weights rather than by approximating:

* it normalises with RMSNorm where DCLM uses a mean-subtracting, gain-only LayerNorm. LayerNorm(x) equals
  RMSNorm(x) with the same gain and eps whenever x has zero mean. Every norm input is made zero-mean:
  - the residual stream: each write into it is centred over the model width (every embedding row, and the
    columns of `out_proj` and `w3`, i.e. W - mean over the output rows). Since every reader of the stream is
    a LayerNorm, which ignores a shift along the all-ones direction, the stream x - mean(x) gives the same
    outputs, and now `attention_norm`, `ffn_norm` and the final `norm` are RMSNorms;
  - q and k, normalised over the full width before the head split (`q_norm`/`k_norm`): the q rows and the k
    rows of `in_proj` are centred over their output rows, so q and k are zero-mean too.
* its FFN is a mixture of experts. One expert with top-1 softmax routing has weight softmax([z]) = 1, which
  is DCLM's dense SwiGLU; `w12` splits into gate (first half, through silu) and up (second half), as
  xformers' SwiGLU `_ordered_params` and open_lm's SwiGLUTorch split it.

Rotary is NeoX rotate-half over the whole head in both (olmoe's rope type is LLAMA_ROPE_TYPE_NEOX), the
head is untied, nothing has a bias. What the graph cannot express (a post-embedding norm, tied weights, no
q/k norm, rotary frequencies other than base**(-2j/d)) is refused by `unsupported_reason`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from dclm.export.source import CheckpointSource
from dclm.model.openlm import ModelArgs

ARCH = "olmoe"


@dataclass(frozen=True)
class PlannedTensor:
    """One GGUF tensor: its name, numpy (row-major) shape, whether it is a matrix a quantized type may
    store, and how to make it (float32) from the checkpoint."""

    name: str
    shape: tuple[int, ...]
    matrix: bool
    make: Callable[[], np.ndarray]


def unsupported_reason(src: CheckpointSource) -> str | None:
    """Why the olmoe graph cannot compute this checkpoint exactly, or None. (Other norm types, MoE layers
    and non-rotary positions never get this far: dclm's config reader refuses them.)"""
    a = src.args
    if a.post_embed_norm:
        return "post_embed_norm=true (llama.cpp's olmoe graph has no norm after the embedding)"
    if a.weight_tying:
        return ("weight_tying=true (the GGUF needs the embedding centred and the head unchanged, so they cannot "
                "share one tensor)")
    if not a.apply_qk_norm:
        return "apply_qk_norm=false (llama.cpp's olmoe graph always applies q/k norms)"
    standard = 1.0 / (a.rope_base ** (torch.arange(0, a.head_dim, 2, dtype=torch.float32) / a.head_dim))
    for i in range(a.n_layers):
        name = f"layers.{i}.attention.pos_embed.inv_freq"
        if src.has(name) and not torch.allclose(src.get(name), standard, rtol=1e-6, atol=0):
            return (f"{name} differs from 1/{a.rope_base:g}**(2j/{a.head_dim}) (llama.cpp's olmoe graph "
                    f"takes only a rotary base)")
    return None


_CHUNK = 1024  # rows per float64 partial sum: torch's mean(dtype=float64) would copy the whole tensor to float64


def centre_rows(w: torch.Tensor) -> torch.Tensor:
    """W - mean over its output rows (dim 0), so W @ y has zero mean for every y; the mean summed in float64."""
    total = torch.zeros(w.shape[1], dtype=torch.float64)
    for part in w.split(_CHUNK, dim=0):
        total += part.sum(dim=0, dtype=torch.float64)
    return w.sub_((total / w.shape[0]).to(w.dtype))


def centre_each_row(w: torch.Tensor) -> torch.Tensor:
    """Every row minus its own mean (embedding rows, each a residual-stream write), in place."""
    for part in w.split(_CHUNK, dim=0):
        part.sub_(part.mean(dim=1, keepdim=True, dtype=torch.float64).to(w.dtype))
    return w


class _OneSlot:
    """Reads checkpoint tensors, keeping the last one: q, k, v come from one `in_proj` read, gate and up
    from one `w12` read, while memory stays at one tensor."""

    def __init__(self, src: CheckpointSource):
        self.src, self.key, self.value = src, None, None

    def __call__(self, name: str) -> torch.Tensor:
        if name != self.key:
            self.key, self.value = None, None  # free the old tensor before reading the next
            self.value, self.key = self.src.get(name), name
        return self.value


def _np(t: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(t.numpy())


def plan(src: CheckpointSource) -> list[PlannedTensor]:
    """The GGUF's tensors in file order, each made on demand from the checkpoint."""
    a: ModelArgs = src.args
    d, h, v = a.dim, a.ffn_hidden, a.vocab_size
    read = _OneSlot(src)
    out = [PlannedTensor("token_embd.weight", (v, d), True,
                         lambda: _np(centre_each_row(src.get("tok_embeddings.weight"))))]

    def gain(name):
        return lambda: _np(src.get(name))

    for i in range(a.n_layers):
        p, b = f"layers.{i}.", f"blk.{i}."
        inp = p + "attention.in_proj.weight"
        w12 = p + "feed_forward.w12.weight"
        out += [
            PlannedTensor(b + "attn_norm.weight", (d,), False, gain(p + "attention_norm.weight")),
            PlannedTensor(b + "attn_q.weight", (d, d), True, lambda inp=inp: _np(centre_rows(read(inp)[:d].clone()))),
            PlannedTensor(b + "attn_k.weight", (d, d), True, lambda inp=inp: _np(centre_rows(read(inp)[d:2 * d].clone()))),
            PlannedTensor(b + "attn_v.weight", (d, d), True, lambda inp=inp: _np(read(inp)[2 * d:])),
            PlannedTensor(b + "attn_q_norm.weight", (d,), False, gain(p + "attention.q_norm.weight")),
            PlannedTensor(b + "attn_k_norm.weight", (d,), False, gain(p + "attention.k_norm.weight")),
            PlannedTensor(b + "attn_output.weight", (d, d), True,
                          lambda p=p: _np(centre_rows(src.get(p + "attention.out_proj.weight")))),
            PlannedTensor(b + "ffn_norm.weight", (d,), False, gain(p + "ffn_norm.weight")),
            # the router of the single expert: any logits give softmax weight 1
            PlannedTensor(b + "ffn_gate_inp.weight", (1, d), False, lambda: np.zeros((1, d), np.float32)),
            PlannedTensor(b + "ffn_gate_exps.weight", (1, h, d), True, lambda w12=w12: _np(read(w12)[:h])[None]),
            PlannedTensor(b + "ffn_up_exps.weight", (1, h, d), True, lambda w12=w12: _np(read(w12)[h:])[None]),
            PlannedTensor(b + "ffn_down_exps.weight", (1, d, h), True,
                          lambda p=p: _np(centre_rows(src.get(p + "feed_forward.w3.weight")))[None]),
        ]
    out += [
        PlannedTensor("output_norm.weight", (d,), False, gain("norm.weight")),
        PlannedTensor("output.weight", (v, d), True, lambda: _np(src.get("output.weight"))),
    ]
    return out


def produce(tensors: list[PlannedTensor]) -> Iterator[tuple[PlannedTensor, np.ndarray]]:
    """Each planned tensor with its float32 data, made one at a time."""
    for t in tensors:
        data = t.make()
        if data.shape != t.shape or data.dtype != np.float32:
            raise AssertionError(f"{t.name}: made {data.shape} {data.dtype}, planned {t.shape} float32")
        yield t, data
