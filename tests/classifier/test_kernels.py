"""The numba fast path of fastText scoring (classifier/kernels.py via fastpredict.py) against its plain twin,
fastText's own predict: the same label and the same float32 probability for every text, bit for bit."""

import random
import subprocess
import sys

import numpy as np
import pytest

from dclm.classifier.fastpredict import FastPredictor
from dclm.classifier.model import CC_LABEL, hq_probs, load_model, plain_hq_probs, preprocess
from dclm.classifier.train import FastTextParams, train_classifier
from dclm.io import write_pages

from .conftest import COMMON, make_pages

EDGE_CASES = [
    "", " ", "\t\t", "\x00", "the", "zzqx-never-seen", "w1 w2 w3", "  lead and trail  ", "tab\tseparated\twords",
    "nul\x00separated", "__label__hq", "__label__cc w1 w2", "w1 __label__nope w2", "__label__",
    "</s>", "w1 </s> w2 w3", "w1</s> w2", "ends with </s>", "héllo wörld ünïcode", "日本語 のテキスト w5",
    "emoji 🙂 w7 🙂", "\u00a0nbsp\u00a0w3", "carriage\rreturn", "form\x0cfeed\x0bvtab", "line one\nline two\n\n",
    "é" * 300, " ".join(COMMON) * 3,
]


def _random_texts(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    alphabet = ["w1", "w2", "explain3", "buy4", "é", "ß", "日", "🙂", "\x00", "\t", " ", "  ", "</s>", "__label__hq",
                "\u2028", "\r\n", "x", "ab", "\u00ff", "\u0100"] + COMMON[:50]
    out = []
    for _ in range(n):
        k = rng.choice([0, 1, 2, 5, 30, 200, 1000])
        out.append(" ".join(rng.choice(alphabet) for _ in range(k)) if rng.random() < 0.5
                   else "".join(rng.choice(alphabet) for _ in range(k)))
    return out


@pytest.fixture(scope="module")
def model(trained):
    return load_model(trained[0])


def test_fast_path_serves_dclm_models(model):
    assert FastPredictor.for_model(model) is not None


def _fasttext_top1(model, texts):
    labels, probs = model.predict([preprocess(t) for t in texts], k=1)
    return [lab[0] for lab in labels], [np.float32(p[0]) for p in probs]


@pytest.mark.parametrize("source", ["pages", "random", "edge"])
def test_kernel_matches_fasttext_bit_for_bit(model, source):
    if source == "pages":
        texts = [p["text"] for p in make_pages(300, "hq", seed=11) + make_pages(300, "cc", seed=11)]
    elif source == "random":
        texts = _random_texts(600, seed=5)
    else:
        texts = EDGE_CASES
    predictor = FastPredictor.for_model(model)
    best, probs, status = predictor.predict([preprocess(t) for t in texts])
    want_labels, want_probs = _fasttext_top1(model, texts)
    assert not status.any()
    assert [predictor.labels[b] for b in best] == want_labels
    assert probs.tolist() == [float(p) for p in want_probs]
    assert hq_probs(model, texts) == plain_hq_probs(model, texts)


def test_dclm_per_page_rule(model):
    """hq_probs equals DCLM's own per-page loop (classify_fasttext_hq_prob), float for float."""
    texts = [p["text"] for p in make_pages(100, "cc", seed=3)] + EDGE_CASES
    want = []
    for t in texts:
        label, prob = model.predict(preprocess(t))
        want.append(1 - prob[0] if label[0] == CC_LABEL else prob[0])
    assert hq_probs(model, texts) == [float(p) for p in want]


def test_text_fasttext_cannot_encode_fails_as_before(model):
    with pytest.raises(Exception) as fast:
        hq_probs(model, ["ok", "bad \ud800 surrogate"])
    with pytest.raises(Exception) as plain:
        plain_hq_probs(model, ["ok", "bad \ud800 surrogate"])
    assert type(fast.value) is type(plain.value)


def test_models_outside_the_fast_path_use_fasttext(tmp_path, task_dir):
    """A model with character n-grams is not one the kernels serve: scoring still works, through fastText."""
    out = str(tmp_path / "subword.bin")
    lines = [f"__label__hq {preprocess(p['text'])}" for p in make_pages(100, "hq", seed=2)]
    lines += [f"__label__cc {preprocess(p['text'])}" for p in make_pages(100, "cc", seed=2)]
    (tmp_path / "train.txt").write_text("\n".join(lines) + "\n")
    # a fresh interpreter: fastText trained several times in one process can end in "Encountered NaN"
    code = ("import fasttext, sys; fasttext.train_supervised(input=sys.argv[1], minn=2, maxn=4, bucket=10000, epoch=1, "
            "thread=1, verbose=0).save_model(sys.argv[2])")
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "train.txt"), out], check=True)
    m = load_model(out)
    assert FastPredictor.for_model(m) is None
    texts = [p["text"] for p in make_pages(20, "hq", seed=9)]
    assert hq_probs(m, texts) == plain_hq_probs(m, texts)


def test_wider_word_ngrams(tmp_path):
    """wordNgrams 3: trigram hashes chain two multiplications."""
    write_pages(str(tmp_path / "pos/a.jsonl"), make_pages(200, "hq", seed=4))
    write_pages(str(tmp_path / "neg/a.jsonl"), make_pages(200, "cc", seed=4))
    out = str(tmp_path / "tri.bin")
    train_classifier([str(tmp_path / "pos")], [str(tmp_path / "neg")], out,
                     params=FastTextParams(bucket=20_000, wordNgrams=3, epoch=1))
    m = load_model(out)
    assert FastPredictor.for_model(m) is not None
    texts = _random_texts(200, seed=8) + EDGE_CASES
    assert hq_probs(m, texts) == plain_hq_probs(m, texts)
