"""The numba language-ID kernel (mappers/enrichers/fasttext_quant.py) against its plain twin, fastText's own
predict: the same top label and the same float32 probability, bit for bit, on quantized hierarchical-softmax
models trained and quantized here (pruned or not, with quantized norms or not) and on
lid.176.ftz when it can be found."""

import random
import subprocess
import sys

import numpy as np
import pytest

from dclm.mappers.enrichers.fasttext_quant import QuantLid

LANGS = {
    "en": "the of and to in is that for it with as was on be by this are from at".split(),
    "de": "der die und in den von zu das mit sich des auf für ist im dem nicht ein".split(),
    "fr": "le de la et les des en un du une que est pour qui dans par plus pas au".split(),
    "ja": ["日本", "語", "の", "テキスト", "です", "ます", "これ", "東京"],
}
ODD = ["", " ", "\t", "\x00", "</s>", "a </s> b c", "x</s>", "__label__en", "__label__en the of", "__label__",
       "héllo wörld", "🙂🙂 the", "ß" * 50, "\u00a0the\u00a0of", "\r\x0b\x0c", "日本語のテキスト the"]


def _texts(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        lang = rng.choice(list(LANGS))
        words = LANGS[lang] + ["zq" + str(rng.randint(0, 99)), "é", "🙂", "\t", "x"]
        out.append(" ".join(rng.choice(words) for _ in range(rng.choice([0, 1, 3, 20, 150]))))
    return out + ODD


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    import fasttext

    root = tmp_path_factory.mktemp("lid")
    rng = random.Random(1)
    lines = []
    for lang, words in LANGS.items():
        for _ in range(150):
            lines.append(f"__label__{lang} " + " ".join(rng.choice(words) for _ in range(rng.randint(3, 25))))
    rng.shuffle(lines)
    (root / "train.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    # one training per fresh interpreter: fastText trained twice in one process can end in "Encountered NaN"
    code = ("import fasttext, sys; fasttext.train_supervised(input=sys.argv[1], loss='hs', minn=2, maxn=4, dim=16, "
            "bucket=2000, epoch=3, thread=1, seed=1, verbose=0).save_model(sys.argv[2])")
    subprocess.run([sys.executable, "-c", code, str(root / "train.txt"), str(root / "hs.bin")], check=True)
    return root


@pytest.mark.parametrize("variant", [dict(), dict(qnorm=True), dict(cutoff=300, retrain=False)])
def test_kernel_matches_fasttext_bit_for_bit(trained, variant):
    import fasttext

    m = fasttext.load_model(str(trained / "hs.bin"))
    m.quantize(dsub=2, **variant)
    path = str(trained / f"model{len(variant)}{variant.get('cutoff', '')}.ftz")
    m.save_model(path)
    m = fasttext.load_model(path)
    q = QuantLid.load(path)
    assert q is not None
    texts = _texts(400, seed=len(variant))
    best, probs, status = q.predict(texts)
    labels, want = m.predict(texts)
    for i, t in enumerate(texts):
        if status[i]:  # left to fastText: it must indeed predict nothing here
            assert not labels[i], t
            continue
        assert q.labels[best[i]] == labels[i][0], t
        assert probs[i] == np.float32(want[i][0]), t


def test_models_it_does_not_serve(trained, tmp_path):
    assert QuantLid.load(str(trained / "hs.bin")) is None  # a dense input matrix
    (tmp_path / "junk.bin").write_bytes(b"not a model")
    assert QuantLid.load(str(tmp_path / "junk.bin")) is None


def test_lid_176(lid_model):
    from dclm.mappers.enrichers.language_id import load_fast_lid

    q = load_fast_lid(None)
    if q is None:
        pytest.skip("the language-ID model found is not a quantized one")
    texts = _texts(300, seed=3)
    best, probs, status = q.predict(texts)
    labels, want = lid_model.predict(texts)
    assert [q.labels[b] for b, s in zip(best, status) if not s] == [lab[0] for lab, s in zip(labels, status) if not s]
    assert [p for p, s in zip(probs.tolist(), status) if not s] == [float(w[0]) for w, s in zip(want, status) if not s]
