"""Our decode loop: one prefill, then one token per step against a preallocated (static) KV cache.

Prompts of a batch are left-padded into one [B, P] block. Cache column c holds token c of that block for
every row, pad columns are masked out of attention, and each row's rotary positions count only its real
tokens, so a padded row computes exactly what it would alone. The decode step has fixed shapes, which is
what lets `torch.compile` (and CUDA graphs through mode="reduce-overhead") capture it once.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from dclm.generate.sampling import SamplingParams, next_token
from dclm.model.openlm import Transformer, attention_mask


class StaticKVCache:
    """Keys/values for every layer in two [L, B, H, S, D] tensors; `update` writes at `self.input_pos`."""

    def __init__(self, model: Transformer, batch: int, length: int, dtype: torch.dtype, device,
                 static: bool = False):
        a = model.args
        shape = (a.n_layers, batch, a.n_heads, length, a.head_dim)
        self.k = torch.zeros(shape, dtype=dtype, device=device)
        self.v = torch.zeros(shape, dtype=dtype, device=device)
        self.input_pos = torch.arange(0, device=device)
        if static:  # fixed addresses let CUDA graphs (torch.compile mode="reduce-overhead") update the cache in place
            torch._dynamo.mark_static_address(self.k)  # (importing torch._dynamo costs seconds: only when compiling)
            torch._dynamo.mark_static_address(self.v)

    def decode_columns(self, batch: int) -> tuple[torch.Tensor, int] | None:
        """For a one-token step: the column each of `batch` rows writes and the number of columns attention
        covers (the CPU decode kernel's view of the cache); None for a longer step."""
        if self.input_pos.numel() != 1:
            return None
        return self.input_pos.expand(batch), self.k.shape[3]

    def update(self, k: torch.Tensor, v: torch.Tensor, layer_idx: int, *args, **kwargs):
        self.k[layer_idx].index_copy_(2, self.input_pos, k)
        self.v[layer_idx].index_copy_(2, self.input_pos, v)
        return self.k[layer_idx], self.v[layer_idx]


@dataclass
class Completion:
    prompt_ids: list[int]
    ids: list[int]  # generated tokens, stop token / stop string excluded
    finish_reason: str  # "eos", "stop" or "length"
    text: str | None = None


class Decoder:
    """Reusable generation state for one model: builds caches per batch, optionally compiles the step."""

    def __init__(self, model: Transformer, compile: bool = False, cpu_kernels: bool = True):
        self.model = model.eval()
        first = next(model.parameters())
        self.device, self.dtype = first.device, first.dtype
        self._step = self._decode_step
        self._cache: StaticKVCache | None = None
        if self.device.type == "cpu" and cpu_kernels:  # off: decode with the plain reference modules
            from dclm.generate.cpu import install_cpu_kernels

            install_cpu_kernels(model)
        self._compiled = compile
        self._graphs = compile and self.device.type == "cuda"
        if compile:
            mode = "reduce-overhead" if self._graphs else None
            self._step = torch.compile(self._decode_step, mode=mode, fullgraph=True, dynamic=False)

    def _cache_for(self, batch: int, length: int) -> StaticKVCache:
        """Reuse the cache when the shape repeats (a compiled step then needs no recompilation). Stale
        entries never leak: prefill rewrites columns [0, P) and later columns are masked until written."""
        c = self._cache
        if c is None or c.k.shape[1] != batch or c.k.shape[3] != length:
            self._cache = c = None  # free the old buffers before allocating new ones
            c = self._cache = StaticKVCache(self.model, batch, length, self.dtype, self.device, static=self._compiled)
        return c

    def _decode_step(self, tok, positions, mask, cache):
        return self.model(tok, positions=positions, mask=mask, cache=cache)[:, -1]

    @torch.inference_mode()
    def generate(
        self,
        prompts: Sequence[Sequence[int]],
        params: SamplingParams,
        stop_check: Callable[[int, list[int]], int | None] | None = None,
        on_token: Callable[[int, list[int]], None] | None = None,
        pad_id: int = 0,
    ) -> list[Completion]:
        """Generate for a batch of token-id prompts.

        stop_check(row, ids) -> None to go on, or the number of generated tokens to keep (a stop string hit);
        on_token(row, ids) is called after every new token of an unfinished row (streaming).
        """
        if not prompts or any(len(p) == 0 for p in prompts):
            from dclm.errors import DclmError

            raise DclmError("every prompt needs at least one token")
        B, P = len(prompts), max(len(p) for p in prompts)
        S = P + params.max_new_tokens
        if self._compiled:  # round the cache up so prompts of other lengths reuse the compiled step
            S = -(-S // 128) * 128
        dev = self.device
        ids = torch.full((B, P), pad_id, dtype=torch.long)
        valid = torch.zeros(B, S, dtype=torch.bool)
        for i, p in enumerate(prompts):
            ids[i, P - len(p):] = torch.tensor(list(p), dtype=torch.long)
            valid[i, P - len(p):] = True
        ids, valid = ids.to(dev), valid.to(dev)
        positions = (valid[:, :P].long().cumsum(-1) - 1).clamp(min=0)
        seen = torch.zeros(B, self.model.args.vocab_size, dtype=torch.bool, device=dev)
        seen.scatter_(1, ids, valid[:, :P])
        generator = None
        if params.seed is not None and not params.greedy:
            generator = torch.Generator(device=dev).manual_seed(params.seed)

        cache = self._cache_for(B, S)
        cache.input_pos = torch.arange(P, device=dev)
        mask = attention_mask(valid, cache.input_pos)
        logits = self.model(ids, positions=positions, mask=mask, cache=cache, last_only=True)[:, -1]

        out: list[list[int]] = [[] for _ in range(B)]
        keep: list[int | None] = [None] * B
        reason = ["length"] * B
        done = torch.zeros(B, dtype=torch.bool)
        cols = torch.arange(S, device=dev)
        pos = positions[:, -1:]
        for step in range(params.max_new_tokens):
            tok = next_token(logits, seen, params, generator)
            seen[torch.arange(B, device=dev), tok] = True
            tok_list = tok.tolist()
            for i, t in enumerate(tok_list):
                if done[i]:
                    continue
                if params.eos_id is not None and t == params.eos_id:
                    done[i], reason[i] = True, "eos"
                    continue
                out[i].append(t)
                if stop_check is not None and (n := stop_check(i, out[i])) is not None:
                    done[i], reason[i], keep[i] = True, "stop", n
                    continue
                if on_token is not None:
                    on_token(i, out[i])
            if bool(done.all()) or step == params.max_new_tokens - 1:
                break
            col = P + step
            cache.input_pos = torch.tensor([col], device=dev)
            pos = pos + 1
            step_mask = (valid & (cols <= col))[:, None, None, :]
            if self._graphs:  # each step's logits are consumed before the next replay overwrites them
                torch.compiler.cudagraph_mark_step_begin()
            logits = self._step(tok[:, None], pos, step_mask, cache)
        return [
            Completion(list(p), out[i][: keep[i]] if keep[i] is not None else out[i], reason[i])
            for i, p in enumerate(prompts)
        ]


class TextStopper:
    """Stop strings over decoded text: reports how many tokens to keep so the text ends before the stop."""

    def __init__(self, tokenizer, stops: Sequence[str]):
        self.tokenizer, self.stops = tokenizer, [s for s in stops if s]

    def __call__(self, row: int, ids: list[int]) -> int | None:
        if not self.stops:
            return None
        text = self.tokenizer.decode(ids)
        if not any(s in text for s in self.stops):
            return None
        for n in range(1, len(ids) + 1):  # shortest prefix whose text contains a stop string
            if any(s in self.tokenizer.decode(ids[:n]) for s in self.stops):
                return n - 1
        return len(ids)


def cut_at_stop(text: str, stops: Sequence[str]) -> str:
    hits = [text.index(s) for s in stops if s and s in text]
    return text[: min(hits)] if hits else text


class Streamer:
    """Prints one row's new text as it is generated, holding back what could still become a stop string."""

    def __init__(self, tokenizer, stops: Sequence[str], out=None):
        self.tokenizer, self.stops, self.out = tokenizer, [s for s in stops if s], out or sys.stdout
        self.printed = 0
        self.hold = max((len(s) for s in self.stops), default=1) - 1

    def __call__(self, row: int, ids: list[int]) -> None:
        text = self.tokenizer.decode(ids)
        if text.endswith("\ufffd"):  # an incomplete multi-byte character: wait for the next token
            return
        upto = max(self.printed, len(text) - self.hold)
        self.out.write(text[self.printed:upto])
        self.out.flush()
        self.printed = upto

    def finish(self, text: str) -> None:
        self.out.write(text[self.printed:] + "\n")
        self.out.flush()


def generate_text(
    model: Transformer,
    tokenizer,
    prompts: Sequence[str],
    params: SamplingParams,
    batch_size: int = 8,
    stream: bool = False,
    compile: bool = False,
    decoder: Decoder | None = None,
) -> list[Completion]:
    """Text in, text out: tokenize (no BOS, like the DCLM card), batch, decode, cut at stop strings."""
    decoder = decoder or Decoder(model, compile=compile)
    stopper = TextStopper(tokenizer, params.stop)
    results: list[Completion] = []
    encoded = [tokenizer.encode(p) for p in prompts]
    for start in range(0, len(encoded), batch_size):
        chunk = encoded[start : start + batch_size]
        streamer = Streamer(tokenizer, params.stop) if stream and len(prompts) == 1 else None
        done = decoder.generate(chunk, params, stop_check=stopper if params.stop else None, on_token=streamer)
        for c in done:
            c.text = cut_at_stop(tokenizer.decode(c.ids), params.stop)
        if streamer is not None:
            streamer.finish(done[0].text)
        results.extend(done)
    return results
