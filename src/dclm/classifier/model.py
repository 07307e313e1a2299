"""The fastText quality classifier: finding and loading a model, and DCLM's P(hq) rule.

`hq_probs` is the one scoring function: `dclm classifier score`, the in-pipeline enricher
`classify_fasttext_hq_prob_enricher` and the held-out metrics of `dclm classifier train` all call it, so
their scores are identical. It follows DCLM's `classify_fasttext_hq_prob` exactly: the text is joined to
one line with `" ".join(text.strip().splitlines())`, fastText predicts the top-1 label, and the score is
1 - p when that label is `__label__cc`, else p. Scoring is batched: through the numba kernels of
`kernels.py` (which redo fastText's `predictLine` bit for bit) for the models DCLM trains, else through
fastText's `predict(list)`, which runs the same C++ `predictLine` as the single-string call.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from typing import Any, Sequence

from dclm.errors import DclmError

logger = logging.getLogger(__name__)

HQ_LABEL = "__label__hq"
CC_LABEL = "__label__cc"
DEFAULT_KEY = "fasttext_hq_prob"
# where DCLM's enricher looks for `model_filename` (relative to the DCLM checkout, i.e. the working directory)
DCLM_MODEL_DIR = "baselines/mappers/enrichers/quality_prediction_enrichment_models"

_models: dict[tuple, Any] = {}
_lock = threading.Lock()


def preprocess(text: str) -> str:
    """DCLM's input transform: strip, then join all lines with single spaces."""
    return " ".join(text.strip().splitlines())


def resolve_model(model_filename: str) -> str:
    """The model file for `model_filename`, found as every asset is (src/dclm/assets/resolve.py `locate`),
    DCLM's model folder being this kind's folder."""
    from dclm.assets import locate

    return os.fspath(locate(model_filename, kind="fastText model", dclm_dir=DCLM_MODEL_DIR))


def load_model(path: str):
    """Load a fastText model once per process (cached by path, size and mtime)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise DclmError(f"fastText model not found: {path}") from None
    key = (os.path.realpath(path), st.st_size, st.st_mtime_ns)
    with _lock:
        model = _models.get(key)
        if model is None:
            import fasttext

            try:
                model = fasttext.load_model(path)
            except (ValueError, RuntimeError, MemoryError) as e:
                raise DclmError(f"cannot load fastText model {path}: {e}") from None
            labels = list(model.labels)
            if not labels or model.f.getArgs().model.name != "supervised":
                raise DclmError(f"{path} is not a supervised fastText classifier")
            if CC_LABEL not in labels:
                logger.warning("%s has no %s label (labels: %s); every top-1 probability is taken as P(hq)",
                               path, CC_LABEL, ", ".join(labels[:5]))
            _models[key] = model
    return model


def hq_probs(model, texts: Sequence[str]) -> list[float]:
    """P(hq) for each text, by DCLM's rule: through the compiled fast path (src/dclm/classifier/fastpredict.py)
    where the model allows it, else through fastText's batched `predict`; both give the same bits."""
    from dclm.classifier.fastpredict import FastPredictor

    lines = [preprocess(t) for t in texts]
    if not lines:
        return []
    predictor = FastPredictor.for_model(model)
    if predictor is None:
        return _fasttext_hq_probs(model, lines)
    try:
        best, probs, status = predictor.predict(lines)
    except UnicodeEncodeError:  # a lone surrogate: let fastText fail on it as it always has
        return _fasttext_hq_probs(model, lines)
    cc = predictor.labels.index(CC_LABEL) if CC_LABEL in predictor.labels else -1
    out = [1.0 - p if b == cc else p for b, p in zip(best.tolist(), probs.astype(float).tolist())]
    undecided = [i for i, s in enumerate(status.tolist()) if s]
    if undecided:
        for i, p in zip(undecided, _fasttext_hq_probs(model, [lines[i] for i in undecided])):
            out[i] = p
    return out


def plain_hq_probs(model, texts: Sequence[str]) -> list[float]:
    """The plain twin of `hq_probs`: fastText's own batched `predict` for every text."""
    return _fasttext_hq_probs(model, [preprocess(t) for t in texts])


def _fasttext_hq_probs(model, lines: list[str]) -> list[float]:
    if not lines:
        return []
    labels, probs = model.predict(lines, k=1)
    out = []
    for label, prob in zip(labels, probs):
        if not label:
            raise ValueError("fastText returned no label")
        p = float(prob[0])
        out.append(1.0 - p if label[0] == CC_LABEL else p)
    return out


def file_sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


def fasttext_version() -> str:
    """The installed distribution that provides the `fasttext` module, e.g. 'fasttext-numpy2-wheel 0.9.2'."""
    from importlib import metadata

    dists = metadata.packages_distributions().get("fasttext", [])
    for name in dists:
        try:
            return f"{name} {metadata.version(name)}"
        except metadata.PackageNotFoundError:
            continue
    return "unknown"
