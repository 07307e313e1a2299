"""Generated token ids -> text deltas: stop strings, and held-back text that could still become one."""

from __future__ import annotations

from collections.abc import Sequence


class TextTracker:
    """Decodes a growing id list; `push` returns the text that is safe to send and whether a stop string hit.

    A tail of the text that could be the start of a stop string, or ends in an incomplete UTF-8 character, waits for the
    next token; `flush` releases it when the request ends another way.
    """

    def __init__(self, tokenizer, stops: Sequence[str]):
        self.tokenizer = tokenizer
        self.stops = [s for s in stops if s]
        self.hold = max((len(s) for s in self.stops), default=1) - 1
        self.ids: list[int] = []
        self.text = ""
        self.sent = 0

    def push(self, token: int) -> tuple[str, bool]:
        self.ids.append(token)
        self.text = self.tokenizer.decode(self.ids)
        if self.stops:
            start = max(0, self.sent - self.hold)
            hits = [i for s in self.stops if (i := self.text.find(s, start)) >= 0]
            if hits:
                self.text = self.text[: min(hits)]
                return self._release(len(self.text)), True
        if self.text.endswith("\ufffd"):
            return "", False
        return self._release(len(self.text) - self._held()), False

    def _held(self) -> int:
        """Length of the longest tail of the text that a stop string starts with."""
        for k in range(min(self.hold, len(self.text)), 0, -1):
            tail = self.text[-k:]
            if any(s.startswith(tail) for s in self.stops):
                return k
        return 0

    def flush(self) -> str:
        return self._release(len(self.text))

    def _release(self, upto: int) -> str:
        delta = self.text[self.sent : upto]
        self.sent = max(self.sent, upto)
        return delta
