"""A slotted static KV cache: one preallocated row per running request, each row at its own length.

engine.StaticKVCache writes every row at one shared column (its batches start together, left-padded);
continuous batching needs rows that started at different times, so here each row writes at its own
column and prompts always start at column 0 of their slot (no padding at all).
"""

from __future__ import annotations

import torch

from dclm.model.openlm import Transformer


class SlotKVCache:
    """Keys/values [L, slots, H, S, D]. Before each forward the scheduler calls `for_prefill` or `for_decode`;
    the model then calls `update(k, v, layer)` once per layer."""

    def __init__(self, model: Transformer, slots: int, length: int, dtype: torch.dtype, device):
        a = model.args
        shape = (a.n_layers, slots, a.n_heads, length, a.head_dim)
        self.k = torch.zeros(shape, dtype=dtype, device=device)
        self.v = torch.zeros(shape, dtype=dtype, device=device)
        self.slots, self.length = slots, length
        self._slot: int | None = None
        self._cols: torch.Tensor | None = None
        self._rows: torch.Tensor | None = None
        self._keys = 0

    def for_prefill(self, slot: int, n: int) -> None:
        """The next forward is one fresh prompt of n tokens for `slot` (columns 0..n-1)."""
        self._slot, self._keys = slot, n

    def for_decode(self, cols: torch.Tensor, keys: int) -> None:
        """The next forward is one token for each of slots 0..len(cols)-1, written at column cols[row];
        attention sees columns [0, keys)."""
        self._slot, self._cols, self._keys = None, cols, keys
        self._rows = torch.arange(len(cols), device=cols.device)

    def decode_columns(self, batch: int) -> tuple[torch.Tensor, int] | None:
        """In a decode step: the column each slot row writes and the number of columns attention covers (the
        CPU decode kernel's view of the cache); None in a prefill."""
        if self._slot is not None or self._cols is None or len(self._cols) != batch:
            return None
        return self._cols, self._keys

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return 0  # only asked for when no mask is given, i.e. a prefill, which has no past

    def update(self, k: torch.Tensor, v: torch.Tensor, layer_idx: int, *args, **kwargs):
        if self._slot is not None:  # prefill: store, and attend only within the prompt itself
            self.k[layer_idx, self._slot, :, : k.shape[2]] = k[0]
            self.v[layer_idx, self._slot, :, : v.shape[2]] = v[0]
            return k, v
        n = len(self._cols)
        self.k[layer_idx][self._rows, :, self._cols] = k[:, :, 0]
        self.v[layer_idx][self._rows, :, self._cols] = v[:, :, 0]
        return self.k[layer_idx, :n, :, : self._keys], self.v[layer_idx, :n, :, : self._keys]
