import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")


@pytest.fixture(scope="session")
def tiny_tokenizer_file(tmp_path_factory):
    """A byte-level BPE tokenizer.json with <|endoftext|> = id 0, like GPT-NeoX's (trained here, offline)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(["the quick brown fox jumps over the lazy dog. A stop here."] * 40, trainer)
    path = tmp_path_factory.mktemp("tok") / "tokenizer.json"
    tok.save(str(path))
    return path


@pytest.fixture
def tiny_model():
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
