"""`dclm classifier train`: DCLM's fastText quality-classifier recipe (train_fasttext_classifier.py).

Positives are labelled `__label__hq`, negatives `__label__cc`; each text is joined to one line as the
enricher does, the examples are shuffled with a seeded Python RNG, an optional held-out fraction is
split off, and fastText is trained with DCLM's hyperparameters (lr 0.1, dim 100, ws 5, epoch 5,
minCount 1, wordNgrams 2). fastText itself is passed `seed` and `thread`; with one thread (the default)
the same inputs and seed give the same model, while more threads train faster but not reproducibly
(Hogwild updates race). A JSON model card `<model stem>.card.json` records sources, counts,
hyperparameters, held-out metrics, the fastText version and the model's sha256.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass

import orjson

from dclm import __version__
from dclm.errors import DclmError
from dclm.classifier.model import CC_LABEL, HQ_LABEL, fasttext_version, file_sha256, hq_probs, load_model, preprocess
from dclm.classifier.data import ExampleSet, load_examples
from dclm.classifier.metrics import precision_recall, roc_auc


@dataclass(frozen=True)
class FastTextParams:
    """fastText `train_supervised` arguments; defaults are DCLM's recipe (bucket is fastText's default)."""

    lr: float = 0.1
    dim: int = 100
    ws: int = 5
    epoch: int = 5
    minCount: int = 1
    wordNgrams: int = 2
    bucket: int = 2_000_000
    thread: int = 1
    seed: int = 42


@dataclass
class TrainResult:
    """What `train_classifier` made: the model, its card (the JSON written beside it) and the main counts."""

    model: str
    card_path: str
    card: dict
    positive_examples: int
    negative_examples: int
    train_examples: int
    valid_examples: int
    valid_metrics: dict | None


def _fit_main(job: str) -> None:
    """Entry point of the training subprocess: train, save, or write the error for the parent."""
    train_file, model_file, params, verbose, error_file = json.loads(job)
    import fasttext

    try:
        fasttext.train_supervised(input=train_file, verbose=verbose, **params).save_model(model_file)
    except (ValueError, RuntimeError, MemoryError) as e:
        with open(error_file, "w") as f:
            f.write(f"{e.__class__.__name__}: {e}")
        sys.exit(3)


def card_path(model_path: str) -> str:
    stem = model_path[:-4] if model_path.endswith(".bin") else model_path
    return stem + ".card.json"


def _check_class(examples: ExampleSet, name: str, flag: str) -> None:
    if examples.texts:
        return
    detail = f"{examples.shards} shard(s), {examples.pages_read} page(s) read, {examples.no_text} without text, " \
             f"{examples.empty_text} empty, {examples.bad_lines} bad line(s)"
    hint = f"; first problem: {examples.first_problems[0]}" if examples.first_problems else ""
    raise DclmError(f"no {name} examples in {flag} ({detail}){hint}")


def train_classifier(
    positive: list[str],
    negative: list[str],
    output: str,
    *,
    params: FastTextParams = FastTextParams(),
    max_examples_per_class: int | None = None,
    negative_sample: int | None = None,
    valid_fraction: float = 0.0,
    text_key: str = "text",
    verbose: int = 0,
) -> TrainResult:
    """Train, save `output` (and its model card), and return what was made."""
    if not 0.0 <= valid_fraction < 1.0:
        raise DclmError(f"--valid-fraction must be in [0, 1), got {valid_fraction}")
    for flag, value in (("--max-examples-per-class", max_examples_per_class), ("--negative-sample", negative_sample)):
        if value is not None and value <= 0:
            raise DclmError(f"{flag} must be positive, got {value}")
    if params.thread < 1:
        raise DclmError(f"--threads must be at least 1, got {params.thread}")
    if output.endswith("/") or os.path.isdir(output):
        raise DclmError(f"--output must be a model file path (e.g. model.bin), got a directory: {output}")

    pos = load_examples(positive, text_key, max_examples_per_class, params.seed, "positive")
    _check_class(pos, "positive", "--positive")
    neg_limit = negative_sample if negative_sample is not None else max_examples_per_class
    neg = load_examples(negative, text_key, neg_limit, params.seed, "negative")
    _check_class(neg, "negative", "--negative")

    examples = [(HQ_LABEL, t) for t in pos.texts] + [(CC_LABEL, t) for t in neg.texts]
    random.Random(params.seed).shuffle(examples)
    n_valid = int(round(valid_fraction * len(examples)))
    valid, train = examples[:n_valid], examples[n_valid:]
    if not any(lab == HQ_LABEL for lab, _ in train) or not any(lab == CC_LABEL for lab, _ in train):
        raise DclmError("the training split lacks one class; lower --valid-fraction or add examples")

    out_dir = os.path.dirname(os.path.abspath(output))
    os.makedirs(out_dir, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".dclm-train-", dir=out_dir) as tmp:
        train_file = os.path.join(tmp, "train.txt")
        with open(train_file, "w", encoding="utf-8") as f:
            for label, text in train:
                f.write(f"{label} {preprocess(text)}\n")
        tmp_model = os.path.join(tmp, "model.bin")
        # a fresh interpreter per training run: fastText 0.9.2 trained repeatedly in one process drifts from
        # the first run's weights and soon fails with "Encountered NaN"; a fresh process is reproducible
        error_file = os.path.join(tmp, "error.txt")
        job = json.dumps([train_file, tmp_model, asdict(params), verbose, error_file])
        proc = subprocess.run([sys.executable, "-c", "import sys; from dclm.classifier.train import _fit_main; _fit_main(sys.argv[1])", job])
        if proc.returncode != 0:
            detail = open(error_file).read().strip() if os.path.exists(error_file) else f"trainer exited with {proc.returncode}"
            raise DclmError(f"fastText training failed: {detail}")
        os.replace(tmp_model, output)
    model = load_model(output)

    metrics = None
    if valid:
        labels = [1 if lab == HQ_LABEL else 0 for lab, _ in valid]
        scores = hq_probs(model, [text for _, text in valid])
        metrics = {
            "examples": len(valid),
            "positives": sum(labels),
            "negatives": len(labels) - sum(labels),
            "roc_auc": roc_auc(scores, labels),
            **precision_recall(scores, labels, 0.5),
        }

    card = {
        "format": "dclm-fasttext-quality-classifier/1",
        "model": os.path.basename(output),
        "model_sha256": file_sha256(output),
        "model_bytes": os.path.getsize(output),
        "labels": {"positive": HQ_LABEL, "negative": CC_LABEL},
        "score_rule": "P(hq): top-1 prob p, or 1 - p when the top-1 label is __label__cc (DCLM)",
        "preprocessing": "' '.join(text.strip().splitlines())",
        "text_key": text_key,
        "positive": pos.summary(),
        "negative": neg.summary(),
        "train_examples": len(train),
        "valid_fraction": valid_fraction,
        "valid_examples": len(valid),
        "hyperparameters": asdict(params),
        "reproducible": params.thread == 1,
        "valid_metrics": metrics,
        "vocabulary_words": len(model.words),
        "fasttext": fasttext_version(),
        "dclm": __version__,
    }
    from dclm.io import write_bytes

    write_bytes(card_path(output), orjson.dumps(card, option=orjson.OPT_INDENT_2) + b"\n")
    return TrainResult(model=output, card_path=card_path(output), card=card, positive_examples=pos.summary()["examples"],
                       negative_examples=neg.summary()["examples"], train_examples=len(train), valid_examples=len(valid),
                       valid_metrics=metrics)
