"""Continuous batching over the model's forward with a slotted static KV cache, in one background thread.

Each iteration: admit waiting requests into free slots (each prompt is prefilled alone, so its numbers do
not depend on who else is running), then run one decode step for every running request together and
hand each its next token. A request leaves the batch the step it finishes or is cancelled, and its slot
is free for the next waiting request at once: nobody waits for the whole batch to finish.

Results leave the thread through each request's `sink`, which must not block (the HTTP layer pushes into
an asyncio queue), so a slow or vanished client never holds up the loop.
"""

from __future__ import annotations

import logging
import random
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import torch

from dclm.generate.sampling import SamplingParams
from dclm.model.openlm import Transformer
from dclm.serve.cache import SlotKVCache
from dclm.serve.sampling import sample_rows
from dclm.serve.text import TextTracker

log = logging.getLogger(__name__)


@dataclass
class Event:
    """What a request hears: a text delta, and on the last event a finish reason and usage (or an error)."""

    text: str = ""
    finish_reason: str | None = None  # "stop" (eos or stop string) or "length"
    prompt_tokens: int = 0
    completion_tokens: int = 0
    error: str | None = None


class GenRequest:
    """`stream=False` hears only the final event (all the text at once): every event crosses threads, and
    each crossing waits for the GIL, so events nobody reads one by one are not sent one by one."""

    def __init__(self, prompt_ids: list[int], params: SamplingParams, sink: Callable[[Event], None],
                 adapter: int = 0, stream: bool = True):
        self.prompt_ids, self.params, self.sink, self.adapter = list(prompt_ids), params, sink, adapter
        self.stream = stream
        self.cancelled = False

    def cancel(self) -> None:
        """Leave the batch at the next token boundary (a plain flag: safe from any thread)."""
        self.cancelled = True


class _Running:
    def __init__(self, req: GenRequest, slot: int, tracker: TextTracker, generator):
        self.req, self.slot, self.tracker, self.generator = req, slot, tracker, generator
        self.length = len(req.prompt_ids)  # cache columns filled
        self.generated = 0
        self.next = 0  # token to feed at column `length`


@dataclass
class SchedulerStats:
    running: int = 0
    waiting: int = 0
    peak_batch: int = 0
    requests_done: int = 0
    tokens_generated: int = 0
    decode_steps: int = 0


class Scheduler:
    def __init__(self, model: Transformer, tokenizer, max_batch_size: int = 16, context_length: int | None = None,
                 max_tokens_per_batch: int = 2048, adapters=None):
        self.model, self.tokenizer, self.adapters = model.eval(), tokenizer, adapters
        p = next(model.parameters())
        self.device, self.dtype = p.device, p.dtype
        if self.device.type == "cpu":
            from dclm.generate.cpu import install_cpu_kernels

            install_cpu_kernels(model)  # as generate's Decoder does: decode kernels, weights on huge pages
        self.context_length = context_length or model.args.seq_len
        self.max_tokens_per_batch = max_tokens_per_batch
        self.cache = SlotKVCache(model, max_batch_size, self.context_length, self.dtype, self.device)
        self.seen = torch.zeros(max_batch_size, model.args.vocab_size, dtype=torch.bool, device=self.device)
        self.slots: list[_Running | None] = [None] * max_batch_size
        self.stats = SchedulerStats()
        self._waiting: deque[GenRequest] = deque()
        self._cv = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name="dclm-serve-scheduler", daemon=True)

    # ---- control (any thread) ----
    def start(self) -> "Scheduler":
        self._thread.start()
        return self

    def submit(self, req: GenRequest) -> None:
        with self._cv:
            if self._stopping:
                raise RuntimeError("the server is shutting down")
            self._waiting.append(req)
            self.stats.waiting = len(self._waiting)
            self._cv.notify()

    def stop(self, timeout: float = 30.0) -> None:
        with self._cv:
            self._stopping = True
            self._cv.notify()
        if self._thread.is_alive():
            self._thread.join(timeout)

    # ---- the loop (scheduler thread) ----
    def _loop(self) -> None:
        with torch.inference_mode():
            while True:
                with self._cv:
                    while not self._stopping and not self._waiting and not self._running():
                        self._cv.wait()
                    if self._stopping:
                        break
                    admitted = self._admit()
                try:
                    for req in admitted:
                        self._prefill(req)
                    if self._running():
                        self._decode()
                except Exception as e:  # a failed step fails its requests, not the server
                    log.exception("generation step failed")
                    for run in self._running():
                        self._finish(run, error=f"generation failed: {e}")
        for req in list(self._waiting):
            self._emit(req, Event(error="the server is shutting down"))
        for run in self._running():
            self._finish(run, error="the server is shutting down")

    def _running(self) -> list[_Running]:
        return [r for r in self.slots if r is not None]

    def _admit(self) -> list[GenRequest]:
        """Waiting requests for the free slots, within the token budget (always at least one when a slot is
        free, so a long prompt cannot starve)."""
        free = sum(r is None for r in self.slots)
        budget = self.max_tokens_per_batch - len(self._running())
        out: list[GenRequest] = []
        while self._waiting and len(out) < free:
            req = self._waiting[0]
            if req.cancelled:
                self._waiting.popleft()
                continue
            if out and len(req.prompt_ids) > budget:
                break
            budget -= len(req.prompt_ids)
            out.append(self._waiting.popleft())
        self.stats.waiting = len(self._waiting)
        return out

    def _select_adapters(self, indices: list[int]) -> None:
        if self.adapters is not None:
            self.adapters.select(indices)

    def _prefill(self, req: GenRequest) -> None:
        slot = self.slots.index(None)
        ids = torch.tensor(req.prompt_ids, dtype=torch.long, device=self.device)
        seed = req.params.seed if req.params.seed is not None else random.getrandbits(63)
        generator = None if req.params.greedy else torch.Generator(device=self.device).manual_seed(seed)
        run = _Running(req, slot, TextTracker(self.tokenizer, req.params.stop), generator)
        self.slots[slot] = run
        self.cache.for_prefill(slot, len(ids))
        self._select_adapters([req.adapter])
        logits = self.model(ids[None], positions=torch.arange(len(ids), device=self.device)[None], mask=None,
                            cache=self.cache, last_only=True)[:, -1]
        self.seen[slot] = False
        self.seen[slot, ids] = True
        tok = sample_rows(logits, self.seen[slot : slot + 1], [0], [req.params], [generator])[0]
        self._accept(run, tok)

    def _decode(self) -> None:
        for run in self._running():
            if run.req.cancelled:
                self._finish(run, quiet=True)
        running = self._running()
        if not running:
            return
        n = max(r.slot for r in running) + 1
        toks = torch.zeros(n, dtype=torch.long)
        cols = torch.zeros(n, dtype=torch.long)  # idle rows below n compute at column 0, masked alone
        adapters = [0] * n
        for r in running:
            toks[r.slot], cols[r.slot], adapters[r.slot] = r.next, r.length, r.req.adapter
        toks, cols = toks.to(self.device), cols.to(self.device)
        keys = max(r.length for r in running) + 1
        self.cache.for_decode(cols, keys)
        self._select_adapters(adapters)
        mask = (torch.arange(keys, device=self.device)[None] <= cols[:, None])[:, None, None, :]
        logits = self.model(toks[:, None], positions=cols[:, None], mask=mask, cache=self.cache)[:, -1]
        self.stats.decode_steps += 1
        self.stats.peak_batch = max(self.stats.peak_batch, len(running))
        for r in running:
            r.length += 1
        new = sample_rows(logits, self.seen[:n], [r.slot for r in running], [r.req.params for r in running],
                          [r.generator for r in running])
        for r, t in zip(running, new):
            self._accept(r, t)

    def _accept(self, run: _Running, tok: int) -> None:
        run.generated += 1
        self.stats.tokens_generated += 1
        self.seen[run.slot, tok] = True
        p = run.req.params
        if p.eos_id is not None and tok == p.eos_id:
            self._finish(run, "stop", run.tracker.flush())
            return
        delta, hit = run.tracker.push(tok)
        run.next = tok
        if hit:
            self._finish(run, "stop", delta)
        elif run.generated >= p.max_new_tokens or run.length + 1 >= self.context_length:
            self._finish(run, "length", delta + run.tracker.flush())
        elif delta and run.req.stream:
            self._emit(run.req, Event(text=delta))

    def _finish(self, run: _Running, reason: str | None = None, text: str = "", error: str | None = None,
                quiet: bool = False) -> None:
        self.slots[run.slot] = None
        self.stats.requests_done += 1
        if not quiet:
            if not run.req.stream:
                text = run.tracker.text
            self._emit(run.req, Event(text=text, finish_reason=reason, prompt_tokens=len(run.req.prompt_ids),
                                      completion_tokens=run.generated, error=error))

    def _emit(self, req: GenRequest, event: Event) -> None:
        try:
            req.sink(event)
        except Exception:  # a broken sink (e.g. a closed event loop) only loses its own request
            log.exception("dropping a result")
            req.cancel()

    def snapshot(self) -> dict:
        s = self.stats
        return {"running": len(self._running()), "waiting": len(self._waiting), "peak_batch": s.peak_batch,
                "requests_done": s.requests_done, "tokens_generated": s.tokens_generated,
                "decode_steps": s.decode_steps}
