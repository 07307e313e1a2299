"""The open_lm Transformer that DCLM trains, in one file that reads top to bottom.

Block (pre-norm, no biases, no dropout):
    h   = x + out_proj(attn(attention_norm(x)))
    out = h + w3(silu(gate) * up)   with  gate, up = w12(ffn_norm(h)).chunk(2)
Attention: q, k, v = in_proj(y).chunk(3); q and k go through a gain-only LayerNorm over the full model
width *before* the head split, then GPT-NeoX rotary (rotate-half over the whole head), then causal SDPA.
Every norm is a mean-subtracting LayerNorm with a gain and no bias (open_lm `gain_only_lp_layer_norm`).
Module and parameter names equal open_lm's, so state dicts load without renaming.

The forward takes an optional KV cache: any object with `update(k, v, layer_idx) -> (k_all, v_all)` on
[B, H, S, D] tensors (our static cache in dclm.generate and transformers' Cache classes both qualify).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class ModelArgs:
    """Shape of an open_lm model; field names follow open_lm's `Params`."""

    dim: int
    n_layers: int
    n_heads: int
    vocab_size: int = 50432
    seq_len: int = 2048
    norm_eps: float = 1e-5
    post_embed_norm: bool = False
    weight_tying: bool = False
    apply_qk_norm: bool = True
    rope_base: float = 10000.0

    def __post_init__(self):
        if self.dim % self.n_heads:
            raise ValueError(f"dim {self.dim} is not a multiple of n_heads {self.n_heads}")

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_heads

    @property
    def ffn_hidden(self) -> int:
        # open_lm: 256 * ceil(int(8 d / 3) / 256)
        return 256 * math.ceil(int(8 * self.dim / 3) / 256)

    def num_params(self) -> int:
        """Trainable parameters (q/k-norm gains included; the rotary buffers are not parameters)."""
        d, h, v = self.dim, self.ffn_hidden, self.vocab_size
        per_layer = 3 * d * d + d * d + 2 * d * h + h * d + 2 * d + (2 * d if self.apply_qk_norm else 0)
        embeddings = v * d * (1 if self.weight_tying else 2)
        return self.n_layers * per_layer + embeddings + d + (d if self.post_embed_norm else 0)

    def to_dict(self) -> dict:
        return asdict(self)


class Linear(nn.Linear):
    """nn.Linear (open_lm's layers are bias-free); inference swaps in its CPU kernels from `dclm.generate.cpu`."""


class LayerNorm(nn.Module):
    """Mean-subtracting LayerNorm with a learnable gain and no bias (open_lm `gain_only_lp_layer_norm`)."""

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, (x.shape[-1],), self.weight, None, self.eps)


class RotaryEmbedding(nn.Module):
    """GPT-NeoX rotary: rotate-half over the whole head, angles position * inv_freq, base 10000.

    `inv_freq` is a persistent buffer as in open_lm, so checkpoints carry it; the tables are built from the
    buffer's values (in fp32) at the absolute positions given, never from a hidden recomputation.
    """

    def __init__(self, head_dim: int, base: float = 10000.0):
        super().__init__()
        inv_freq = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
        self.register_buffer("inv_freq", inv_freq, persistent=True)

    def cos_sin(self, positions: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """positions [B, T] -> cos, sin [B, 1, T, head_dim / 2] in `dtype` (one angle per rotated pair)."""
        freqs = (positions.float()[..., None] * self.inv_freq.float())[:, None]
        return freqs.cos().to(dtype), freqs.sin().to(dtype)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate-half RoPE on [B, H, T, D] with half-width tables: the pair (x1[i], x2[i]) turns by angle i, i.e.
    x * cat(cos, cos) + cat(-x2, x1) * cat(sin, sin) computed on the halves (fewer full-width passes)."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1)


class Attention(nn.Module):
    def __init__(self, args: ModelArgs, layer_id: int):
        super().__init__()
        self.layer_id = layer_id
        self.n_heads, self.head_dim = args.n_heads, args.head_dim
        self.in_proj = Linear(args.dim, 3 * args.dim, bias=False)
        self.out_proj = Linear(args.dim, args.dim, bias=False)
        self.pos_embed = RotaryEmbedding(args.head_dim, args.rope_base)
        self.apply_qk_norm = args.apply_qk_norm
        if args.apply_qk_norm:
            self.q_norm = LayerNorm(args.dim, args.norm_eps)
            self.k_norm = LayerNorm(args.dim, args.norm_eps)

    def forward(self, x, positions, mask, cache):
        B, T, _ = x.shape
        q, k, v = self.in_proj(x).chunk(3, dim=-1)
        if self.apply_qk_norm:  # full width, before the head split
            q, k = self.q_norm(q), self.k_norm(k)
        q, k, v = (t.view(B, T, self.n_heads, self.head_dim).transpose(1, 2) for t in (q, k, v))
        cos, sin = self.pos_embed.cos_sin(positions, q.dtype)
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        if cache is not None:
            k, v = cache.update(k, v, self.layer_id)
        if T == 1 and q.device.type == "cpu" and q.dtype == torch.float32:
            out = _attend_one_query(q, k, v, mask)
        elif mask is None:
            # no padding and no past: plain causal; a single query with no mask attends to all keys
            out = F.scaled_dot_product_attention(q, k, v, is_causal=T > 1)
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.out_proj(out.transpose(1, 2).reshape(B, T, -1))


def _attend_one_query(q, k, v, mask):
    """SDPA for a single query per row (a decode step) in float32 on the CPU, where the fused kernel's set-up
    costs more than these three small products."""
    scores = torch.matmul(q, k.transpose(-1, -2)) * q.shape[-1] ** -0.5
    if mask is not None:
        scores = scores.masked_fill(mask.logical_not(), float("-inf"))
    return torch.matmul(scores.softmax(-1), v)


class FeedForward(nn.Module):
    """SwiGLU with open_lm's packed layout: w12 rows are [gate; up], out = w3(silu(gate) * up)."""

    def __init__(self, args: ModelArgs):
        super().__init__()
        self.w12 = Linear(args.dim, 2 * args.ffn_hidden, bias=False)
        self.w3 = Linear(args.ffn_hidden, args.dim, bias=False)

    def forward(self, x):
        gate, up = self.w12(x).chunk(2, dim=-1)
        return self.w3(F.silu(gate) * up)


class Block(nn.Module):
    def __init__(self, args: ModelArgs, layer_id: int):
        super().__init__()
        self.attention = Attention(args, layer_id)
        self.feed_forward = FeedForward(args)
        self.attention_norm = LayerNorm(args.dim, args.norm_eps)
        self.ffn_norm = LayerNorm(args.dim, args.norm_eps)

    def forward(self, x, positions, mask, cache):
        h = x + self.attention(self.attention_norm(x), positions, mask, cache)
        return h + self.feed_forward(self.ffn_norm(h))


class Transformer(nn.Module):
    def __init__(self, args: ModelArgs, init: bool = True):
        super().__init__()
        self.args = args
        self.tok_embeddings = nn.Embedding(args.vocab_size, args.dim)
        if args.post_embed_norm:
            self.post_embed_norm = LayerNorm(args.dim, args.norm_eps)
        self.layers = nn.ModuleList(Block(args, i) for i in range(args.n_layers))
        self.norm = LayerNorm(args.dim, args.norm_eps)
        self.output = Linear(args.dim, args.vocab_size, bias=False)
        if args.weight_tying:
            self.output.weight = self.tok_embeddings.weight
        # open_lm's init: truncated normal at +-3 sigma, sigma 1/sqrt(d); the residual writers (out_proj,
        # w3) are scaled down by sqrt(2 (layer_id + 1)) and w3 uses its own fan-in
        std = args.dim**-0.5
        self.tok_embeddings.init_std = self.output.init_std = std
        for i, layer in enumerate(self.layers):
            depth = (2 * (i + 1)) ** 0.5
            layer.attention.in_proj.init_std = std
            layer.attention.out_proj.init_std = std / depth
            layer.feed_forward.w12.init_std = std
            layer.feed_forward.w3.init_std = args.ffn_hidden**-0.5 / depth
        if init:
            self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        for m in self.modules():
            if hasattr(m, "init_std"):
                nn.init.trunc_normal_(m.weight, std=m.init_std, a=-3 * m.init_std, b=3 * m.init_std)
            elif isinstance(m, LayerNorm):
                m.weight.fill_(1.0)

    def forward(
        self,
        input_ids: torch.Tensor,
        positions: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        cache=None,
        last_only: bool = False,
    ) -> torch.Tensor:
        """input_ids [B, T] -> float logits [B, T, V] ([B, 1, V] with `last_only`).

        positions: absolute positions [B, T] (default: past length + arange(T)).
        mask: boolean [B, 1, T, S] (True = attend) over all S keys the cache returns; None means plain causal
        with nothing padded, which is only valid when there is no past or T == 1.
        """
        B, T = input_ids.shape
        past = cache.get_seq_length() if cache is not None and (positions is None or mask is None) else 0
        if positions is None:
            positions = torch.arange(past, past + T, device=input_ids.device).expand(B, T)
        if mask is None and past and T > 1:  # SDPA's is_causal is top-left aligned: spell the mask out
            valid = torch.ones(B, past + T, dtype=torch.bool, device=input_ids.device)
            mask = attention_mask(valid, torch.arange(past, past + T, device=input_ids.device))
        x = self.tok_embeddings(input_ids)
        if self.args.post_embed_norm:
            x = self.post_embed_norm(x)
        for layer in self.layers:
            x = layer(x, positions, mask, cache)
        x = self.norm(x if not last_only else x[:, -1:])
        return self.output(x).float()


def attention_mask(key_valid: torch.Tensor, query_pos: torch.Tensor) -> torch.Tensor:
    """Boolean SDPA mask [B, 1, T, S]: query at cache column `query_pos[t]` sees valid keys at columns <= it.

    key_valid [B, S] marks real (non-pad) key columns; a query always sees its own column, so rows of left
    padding stay finite (their outputs are never used) instead of producing NaN.
    """
    cols = torch.arange(key_valid.shape[1], device=key_valid.device)
    causal = cols[None, :] <= query_pos[:, None]  # [T, S]
    mask = causal[None] & key_valid[:, None, :].bool()
    mask |= cols[None, None, :] == query_pos[None, :, None]
    return mask[:, None]
