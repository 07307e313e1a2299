"""The fast path of fastText scoring: `FastPredictor` runs `dclm.classifier.kernels` over a loaded model's own
matrices (zero-copy views), so a batch of pages is tokenized, hashed and averaged in one compiled call.

It serves the models DCLM trains (supervised, softmax loss, no character n-grams, not quantized); for any
other model `FastPredictor.for_model` returns None and scoring stays with fastText's `predict`. The plain
twin is fastText itself: tests/classifier/test_kernels.py checks that both give the same bits.
"""

from __future__ import annotations

import numpy as np

_predictors: dict[int, tuple[object, "FastPredictor | None"]] = {}


class FastPredictor:
    def __init__(self, model):
        from dclm.classifier import kernels

        self._k = kernels
        self.model = model
        args = model.f.getArgs()
        words = [w.encode("utf-8") for w in model.f.getVocab("strict")[0]]
        self.labels = list(model.labels)
        offsets = np.zeros(len(words) + 1, dtype=np.int64)
        np.cumsum([len(w) for w in words], out=offsets[1:])
        self.vocab = np.frombuffer(b"".join(words), dtype=np.uint8) if words else np.zeros(0, dtype=np.uint8)
        self.offsets = offsets
        self.table, self.hashes = kernels.build_table(self.vocab, self.offsets)
        eos = kernels.EOS
        self.eos_id = words.index(eos) if eos in words else -1
        self.eos_hash = kernels.fnv(np.frombuffer(eos, dtype=np.uint8), 0, len(eos))
        self.label = np.frombuffer(args.label.encode("utf-8"), dtype=np.uint8)
        self.nwords = len(words)
        self.bucket = int(args.bucket)
        self.ngrams = int(args.wordNgrams)
        # zero-copy views of fastText's matrices; the model object keeps them alive
        self.wi = np.asarray(model.f.getInputMatrix())
        self.wo = np.asarray(model.f.getOutputMatrix())

    @staticmethod
    def supports(model) -> bool:
        args = model.f.getArgs()
        return (args.model.name == "supervised" and args.loss.name == "softmax" and args.maxn <= 0
                and not model.f.isQuant() and (args.wordNgrams <= 1 or args.bucket > 0))

    @classmethod
    def for_model(cls, model) -> "FastPredictor | None":
        """The predictor of `model` (built once per model object), or None where only fastText can score it."""
        entry = _predictors.get(id(model))
        if entry is None or entry[0] is not model:
            predictor = None
            if cls.supports(model):
                try:
                    predictor = cls(model)
                except UnicodeDecodeError:  # a vocabulary that is not UTF-8 cannot be matched byte for byte here
                    predictor = None
            entry = (model, predictor)
            _predictors[id(model)] = entry
        return entry[1]

    def predict(self, lines: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(top label index, its probability as float32, status) per line; status 1 = ask fastText."""
        encoded = [line.encode("utf-8") for line in lines]
        ends = np.cumsum(np.fromiter((len(e) for e in encoded), dtype=np.int64, count=len(encoded)))
        starts = ends - np.fromiter((len(e) for e in encoded), dtype=np.int64, count=len(encoded))
        buf = np.frombuffer(b"".join(encoded), dtype=np.uint8)
        return self._k.predict_lines(buf, starts, ends, self.table, self.hashes, self.vocab, self.offsets, self.label,
                                     self.eos_id, self.eos_hash, self.nwords, self.bucket, self.ngrams, self.wi, self.wo)
