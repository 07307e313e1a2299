"""The GGUF file: metadata, tensors as planned, expected sizes per type, the CLI contract, refusals."""

import numpy as np
import pytest

gguf = pytest.importorskip("gguf")

from dclm.cli import main  # noqa: E402
from dclm.export import olmoe  # noqa: E402
from dclm.export.gguf import tensor_nbytes  # noqa: E402
from dclm.export.source import open_checkpoint  # noqa: E402

from .conftest import perturbed_tiny  # noqa: E402


def field(reader, key):
    f = reader.fields[key]
    if f.types[0] == gguf.GGUFValueType.STRING:
        return bytes(f.parts[f.data[0]]).decode()
    if f.types[0] == gguf.GGUFValueType.ARRAY:
        return [f.parts[i] for i in f.data]
    return f.parts[f.data[0]][0]


def test_metadata_and_f32_tensors_read_back(gguf_files, tiny_dir):
    r = gguf.GGUFReader(gguf_files["f32"].output)
    a = open_checkpoint(tiny_dir).args
    assert field(r, "general.architecture") == "olmoe"
    assert field(r, "general.name") == "open_lm_tiny"
    assert field(r, "olmoe.context_length") == a.seq_len
    assert field(r, "olmoe.block_count") == a.n_layers
    assert field(r, "olmoe.expert_count") == 1 and field(r, "olmoe.expert_used_count") == 1
    assert field(r, "tokenizer.ggml.model") == "gpt2" and field(r, "tokenizer.ggml.pre") == "olmo"
    assert len(field(r, "tokenizer.ggml.tokens")) == a.vocab_size  # padded from the tokenizer's 401
    assert field(r, "tokenizer.ggml.eos_token_id") == 0 and field(r, "tokenizer.ggml.padding_token_id") == 1
    types = [int(t[0]) for t in field(r, "tokenizer.ggml.token_type")]
    assert types[0] == 3 and types[-1] == 5 and 4 in types  # control, unused padding, the user-defined run
    planned = {p.name: d for p, d in olmoe.produce(olmoe.plan(open_checkpoint(tiny_dir)))}
    assert [t.name for t in r.tensors] == list(planned)
    for t in r.tensors:
        assert np.array_equal(np.asarray(t.data).reshape(planned[t.name].shape), planned[t.name])


@pytest.mark.parametrize("outtype, qtype", [("f16", "F16"), ("q8_0", "Q8_0"), ("q4_0", "Q4_0")])
def test_quantized_files_have_the_expected_types_and_size(gguf_files, tiny_dir, outtype, qtype):
    r = gguf.GGUFReader(gguf_files[outtype].output)
    plan = {p.name: p for p in olmoe.plan(open_checkpoint(tiny_dir))}
    data_bytes = 0
    for t in r.tensors:
        want = gguf.GGMLQuantizationType[qtype] if plan[t.name].matrix else gguf.GGMLQuantizationType.F32
        assert t.tensor_type == want
        assert t.n_bytes == tensor_nbytes(plan[t.name].shape, want)
        data_bytes += t.n_bytes
    size = gguf_files[outtype].bytes
    f32 = gguf_files["f32"].bytes
    header = f32 - sum(tensor_nbytes(p.shape, gguf.GGMLQuantizationType.F32) for p in plan.values())
    assert data_bytes <= size <= data_bytes + header + 32 * len(plan)  # header + alignment padding only
    # bytes per weight of the matrices: 2, 34/32, 18/32
    per = {"f16": 2, "q8_0": 34 / 32, "q4_0": 18 / 32}[outtype]
    matrices = sum(np.prod(p.shape) for p in plan.values() if p.matrix)
    assert abs(sum(t.n_bytes for t in r.tensors if plan[t.name].matrix) - matrices * per) < 1


def test_cli_contract_f32_and_q8_0(tiny_dir, tmp_path, capsys):
    import json

    for outtype in ("f32", "q8_0"):
        out = tmp_path / f"m-{outtype}.gguf"
        assert main(["export", "gguf", "--model", str(tiny_dir), "--output", str(out), "--outtype", outtype,
                     "--no-progress"]) == 0
        summary = json.loads(capsys.readouterr().out)
        assert summary["bytes"] == out.stat().st_size and summary["outtype"] == outtype
    assert not list(tmp_path.glob("*.part*"))


def test_refusal_is_one_line_and_writes_nothing(tmp_path, capsys):
    from dclm.model import save_model

    save_model(perturbed_tiny(weight_tying=True), tmp_path / "tied")
    out = tmp_path / "x.gguf"
    assert main(["export", "gguf", "--model", str(tmp_path / "tied"), "--output", str(out), "--no-progress"]) != 0
    err = capsys.readouterr().err.strip()
    assert "weight_tying" in err and "\n" not in err and "Traceback" not in err
    assert not out.exists() and not list(tmp_path.glob("*.part*"))


def test_non_byte_level_tokenizer_is_refused(tiny_dir, tmp_path, capsys):
    from tokenizers import Tokenizer, models, pre_tokenizers

    tok = Tokenizer(models.WordLevel({"a": 0, "[UNK]": 1}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.save(str(tmp_path / "wl.json"))
    rc = main(["export", "gguf", "--model", str(tiny_dir), "--output", str(tmp_path / "x.gguf"),
               "--tokenizer", str(tmp_path / "wl.json"), "--no-progress"])
    assert rc != 0 and "byte-level BPE" in capsys.readouterr().err


def test_pt_and_bf16_checkpoints_export(tiny_dir, tiny_model, tmp_path):
    """An open_lm .pt (memory-mapped) gives the HF directory's tensors; a bf16 checkpoint exports too."""
    import torch

    from dclm.export.configs import GGUFExportConfig
    from dclm.export.gguf import export_gguf
    from dclm.model import save_model
    from dclm.model.checkpoint import save_openlm_checkpoint

    pt = save_openlm_checkpoint(tiny_model, tmp_path / "epoch_3.pt")
    save_model(tiny_model, tmp_path / "bf16", dtype=torch.bfloat16)
    files = {}
    for name, model in (("dir", tiny_dir), ("pt", pt), ("bf16", tmp_path / "bf16")):
        files[name] = export_gguf(GGUFExportConfig(model=str(model), output=str(tmp_path / f"{name}.gguf"),
                                                   outtype="f32", tokenizer=str(tiny_dir / "tokenizer.json"),
                                                   progress=False)).output
    read = {k: {t.name: np.asarray(t.data) for t in gguf.GGUFReader(v).tensors} for k, v in files.items()}
    assert all(np.array_equal(read["pt"][n], read["dir"][n]) for n in read["dir"])
    assert max(np.abs(read["bf16"][n] - read["dir"][n]).max() for n in read["dir"]) < 0.05
