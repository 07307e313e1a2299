"""`dclm quantize`: the streamed file, loading it (with the CPU kernels swapped in), and bad files."""

import json

import pytest
import torch

from dclm.cli import main
from dclm.errors import DclmError
from dclm.generate import load_for_inference
from dclm.generate.cpu import FastQuantLinear, install_cpu_kernels
from dclm.generate.engine import Decoder
from dclm.generate.quantize import (QuantLinear, dequantize_int4, dequantize_int8, model_bytes, quantize_checkpoint,
                                    quantize_int4, quantize_int8, quantize_model)
from dclm.generate.sampling import SamplingParams
from dclm.model import Transformer
from dclm.model.openlm import ModelArgs


def test_quantize_error_bounds():
    w = torch.randn(16, 256, generator=torch.Generator().manual_seed(0))
    q, s = quantize_int8(w)
    assert (dequantize_int8(q, s, torch.float32) - w).abs().max() <= s.float().max() * 0.51
    packed, scales, zeros = quantize_int4(w, 64)
    assert packed.dtype == torch.uint8 and packed.shape == (16, 128) and scales.shape == (16, 4)
    back = dequantize_int4(packed, scales, zeros, torch.float32)
    assert (back - w).abs().max() <= scales.float().max() * 0.55
    # the nibble layout: byte b of a group holds inputs b (low) and b + G/2 (high)
    q4 = torch.round((w[:, :64] - zeros[:, :1].float()) / scales[:, :1].float()).clamp(0, 15).to(torch.uint8)
    assert torch.equal(packed[:, :32] & 0xF, q4[:, :32]) and torch.equal(packed[:, :32] >> 4, q4[:, 32:])


@pytest.mark.parametrize("bits", [8, 4])
def test_quantize_cli_streams_the_same_tensors_as_quantize_model(tiny_dir, tiny_model, tmp_path, capsys, bits):
    out = tmp_path / f"q{bits}"
    assert main(["quantize", "--model", str(tiny_dir), "--bits", str(bits), "--output", str(out),
                 "--group-size", "32"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["quantized_bytes"] < report["source_bytes"] / (3 if bits == 8 else 5)
    assert report["perplexity"] == {} and (out / "tokenizer.json").is_file()
    model = load_for_inference(out, dtype=torch.float32)
    assert model.layers[0].attention.pos_embed.inv_freq.dtype == torch.float32
    assert isinstance(model.layers[0].feed_forward.w12, FastQuantLinear)
    reference = quantize_model(tiny_model, bits, 32)
    assert set(model.state_dict()) == set(reference.state_dict())
    for name, t in reference.state_dict().items():
        assert torch.equal(model.state_dict()[name].to(t.dtype), t), name
    assert main(["generate", "--model", str(out), "--prompt", "the", "--greedy", "--max-new-tokens", "4"]) == 0


@pytest.mark.parametrize("bits, torch_int4", [(8, False), (4, False), (4, True)])
def test_fast_quantized_model_decodes_like_the_dequantizing_twin(tiny_model, bits, torch_int4, monkeypatch):
    import copy

    from dclm.model import cpu_matmul

    if not torch_int4:  # the numba int4 kernel, which a torch without its int4 kernel gets
        monkeypatch.setattr(cpu_matmul, "to_int4pack", lambda *a: None)
    elif not cpu_matmul.int4pack_ok():
        pytest.skip("this torch has no CPU int4 kernel in the layout dclm repacks to")
    fast = quantize_model(tiny_model, bits, 32)
    plain = copy.deepcopy(fast)
    assert install_cpu_kernels(fast) > 0 and install_cpu_kernels(fast) == 0  # once
    assert isinstance(fast.output, FastQuantLinear) and type(plain.output) is QuantLinear
    assert (fast.output.int4pack is not None) == torch_int4
    # torch's int4 kernel takes its activations in bf16: its logits agree to bf16's precision, and greedy
    # tokens of a random model (near-ties everywhere) are compared for the float32 kernels only
    tol = 3e-2 if torch_int4 else 1e-5
    ids = torch.tensor([[7, 1, 8, 8, 3, 4, 6]])
    with torch.no_grad():
        torch.testing.assert_close(fast(ids[:, -1:]), plain(ids[:, -1:]), rtol=max(tol, 1e-4), atol=max(tol, 1e-4))
        torch.testing.assert_close(fast(ids), plain(ids), rtol=tol, atol=tol)  # 7 rows: still the kernels
        torch.testing.assert_close(fast(ids.repeat(1, 3)), plain(ids.repeat(1, 3)), rtol=1e-5, atol=1e-5)  # prefill
    prompts = [[5, 9, 2], [7, 1, 8, 8, 3, 4, 6], [11]]
    params = SamplingParams.greedy_decoding(10, eos_id=None)
    plain_ids = [c.ids for c in Decoder(plain, cpu_kernels=False).generate(prompts, params)]
    fast_ids = [c.ids for c in Decoder(fast).generate(prompts, params)]
    assert [len(i) for i in fast_ids] == [len(i) for i in plain_ids]
    if not torch_int4:
        assert fast_ids == plain_ids


def test_int4_size_ratio_at_7b_proportions():
    # the same proportions as DCLM-7B (group 128 divides every width) at a CPU-friendly size
    args = ModelArgs(dim=512, n_layers=2, n_heads=4, vocab_size=2048)
    m = Transformer(args).to(torch.bfloat16)
    bf16 = model_bytes(m)
    assert model_bytes(quantize_model(m, 4, 128)) / bf16 <= 0.30


def _quantized(tiny_dir, tmp_path, bits=4):
    out = tmp_path / f"q{bits}"
    quantize_checkpoint(tiny_dir, out, bits, 32)
    return out


def _edit_config(d, **changes):
    cfg = json.loads((d / "config.json").read_text())
    cfg["quantization"].update(changes)
    (d / "config.json").write_text(json.dumps(cfg))


@pytest.mark.parametrize("change,message", [
    ({"format_version": 1}, "older dclm"), ({"format_version": 3}, "newer dclm"), ({"bits": 3}, "bits 3 is not 8 or 4"),
    ({"method": "gptq"}, "not 'dclm-weight-only'"), ({"group_size": 7}, "group_size 7"),
])
def test_bad_quantization_entries_are_one_line(tiny_dir, tmp_path, capsys, change, message):
    out = _quantized(tiny_dir, tmp_path)
    _edit_config(out, **change)
    assert main(["generate", "--model", str(out), "--prompt", "x", "--max-new-tokens", "1"]) != 0
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err


def test_a_format_1_file_without_a_version_is_refused(tiny_dir, tmp_path):
    out = _quantized(tiny_dir, tmp_path)
    cfg = json.loads((out / "config.json").read_text())
    del cfg["quantization"]["format_version"]
    (out / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(DclmError, match="format version 1"):
        load_for_inference(out)


@pytest.mark.parametrize("keep", [0, 5, 200, -1000])
def test_truncated_files_are_one_line(tiny_dir, tmp_path, capsys, keep):
    out = _quantized(tiny_dir, tmp_path)
    f = out / "model.safetensors"
    data = f.read_bytes()
    f.write_bytes(data[:keep] if keep >= 0 else data[:keep])
    assert main(["generate", "--model", str(out), "--prompt", "x", "--max-new-tokens", "1"]) != 0
    err = capsys.readouterr().err.strip()
    assert ("truncated" in err or "not a safetensors file" in err) and len(err.splitlines()) == 1


def test_wrong_tensor_dtype_is_refused(tiny_dir, tmp_path):
    out = _quantized(tiny_dir, tmp_path, bits=8)
    _edit_config(out, bits=4)  # int8 tensors under an int4 entry: shapes and dtypes disagree
    with pytest.raises(DclmError, match="expected"):
        load_for_inference(out)


def test_bad_bits_on_the_command_line(tiny_dir, tmp_path, capsys):
    assert main(["quantize", "--model", str(tiny_dir), "--bits", "3", "--output", str(tmp_path / "q")]) != 0
    err = capsys.readouterr().err.strip()
    assert "--bits" in err and "8 or 4" in err and len(err.splitlines()) == 1


def test_quantize_prints_the_perplexity_table(tiny_dir, tmp_path, capsys):
    text = tmp_path / "held_out.txt"
    text.write_text("the quick brown fox jumps over the lazy dog. " * 20)
    assert main(["quantize", "--model", str(tiny_dir), "--bits", "8", "--output", str(tmp_path / "q"),
                 "--eval-text", str(text), "--eval-window", "64"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report["perplexity"]) == {"fp32", "bf16", "int8"} and report["eval_tokens"] > 64
    assert abs(report["perplexity_change_pct"]["int8"]) < 1.0


def test_a_quantized_model_runs_with_bf16_activations(tiny_dir, tmp_path):
    out = _quantized(tiny_dir, tmp_path, bits=8)
    model = load_for_inference(out, dtype=torch.bfloat16)
    ref = load_for_inference(out, dtype=torch.float32)
    ids = torch.tensor([[1, 2, 3, 4]])
    with torch.no_grad():
        a, b = model(ids[:, -1:]), ref(ids[:, -1:])
    assert torch.nn.functional.cosine_similarity(a.flatten(), b.flatten(), dim=0) > 0.99
