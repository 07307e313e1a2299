import pytest

torch = pytest.importorskip("torch")


@pytest.fixture(scope="session")
def bpe_tokenizer_file(tmp_path_factory):
    """A byte-level BPE tokenizer.json with <|endoftext|> = id 0 and a non-special whitespace-run token,
    shaped like GPT-NeoX's (trained here, offline)."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<|endoftext|>", "<|padding|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(["the quick brown fox jumps over the lazy dog. A stop here, 123 456!"] * 40, trainer)
    tok.add_tokens([AddedToken("    ", normalized=True)])
    path = tmp_path_factory.mktemp("tok") / "tokenizer.json"
    tok.save(str(path))
    return path


def perturbed_tiny(**overrides):
    """The tiny shape with random (not 1) norm gains and a large mean in every residual write and in q/k, so
    a mapping that skipped any centring step would be far off."""
    from dclm.model import Transformer, get_config

    torch.manual_seed(0)
    m = Transformer(get_config("tiny", **overrides)).eval()
    with torch.no_grad():
        for name, p in m.named_parameters():
            if p.ndim == 1:
                p.copy_(1 + 0.3 * torch.randn_like(p))
        m.tok_embeddings.weight.add_(0.5)
        for layer in m.layers:
            layer.attention.out_proj.weight.add_(0.05)
            layer.feed_forward.w3.weight.add_(0.05)
            layer.attention.in_proj.weight[: 2 * m.args.dim].add_(0.05)
    return m


@pytest.fixture(scope="session")
def tiny_model():
    return perturbed_tiny()


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory, tiny_model, bpe_tokenizer_file):
    import shutil

    from dclm.model import save_model

    d = tmp_path_factory.mktemp("ckpt") / "tiny"
    save_model(tiny_model, d)
    shutil.copy(bpe_tokenizer_file, d / "tokenizer.json")
    return d


@pytest.fixture(scope="session")
def gguf_files(tmp_path_factory, tiny_dir):
    """The tiny checkpoint exported once per outtype the tests read."""
    pytest.importorskip("gguf")
    from dclm.export.configs import GGUFExportConfig
    from dclm.export.gguf import export_gguf

    out = tmp_path_factory.mktemp("gguf")
    return {"dir": tiny_dir} | {t: export_gguf(GGUFExportConfig(model=str(tiny_dir), output=str(out / f"tiny-{t}.gguf"), outtype=t,
                                            progress=False))
            for t in ("f32", "f16", "q8_0", "q4_0")}
