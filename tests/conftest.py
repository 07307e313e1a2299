import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("DCLM_SHARED_DIR", REPO.parent / "shared"))


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """../shared beside the checkout (DCLM reference files, eval data); tests needing it skip without it."""
    if not SHARED.is_dir():
        pytest.skip("../shared is not present")
    return SHARED


def pytest_collection_modifyitems(config, items):
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    if not has_cuda:
        skip = pytest.mark.skip(reason="needs CUDA")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)


# ---- a tiny model and tokenizer for tests/model and tests/generate

def train_tiny_bpe(path, corpus: str):
    """A byte-level BPE tokenizer.json (400 ids) with <|endoftext|> = id 0, like GPT-NeoX's, trained here
    offline on 40 copies of `corpus`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([corpus] * 40, trainer)
    tok.save(str(path))
    return path


@pytest.fixture(scope="session")
def tiny_bpe():
    """`train_tiny_bpe` for test folders that train their own tokenizer on their own text."""
    return train_tiny_bpe


@pytest.fixture(scope="session")
def tiny_tokenizer_file(tmp_path_factory):
    return train_tiny_bpe(tmp_path_factory.mktemp("tok") / "tokenizer.json",
                          "the quick brown fox jumps over the lazy dog. A stop here.")


@pytest.fixture
def tiny_model():
    torch = pytest.importorskip("torch")
    from dclm.model import Transformer, get_config

    torch.manual_seed(0)
    return Transformer(get_config("tiny")).eval()


@pytest.fixture
def tiny_dir(tmp_path, tiny_model, tiny_tokenizer_file):
    import shutil

    from dclm.model import save_model

    d = tmp_path / "tiny"
    save_model(tiny_model, d)
    shutil.copy(tiny_tokenizer_file, d / "tokenizer.json")
    return d
