"""The ONNX decoder in ONNX Runtime: logits with and without past KV, fp16/int8 variants, the runner."""

import numpy as np
import pytest
import torch

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from dclm.cli import main  # noqa: E402
from dclm.errors import DclmError  # noqa: E402
from dclm.export.backends import OnnxBackend, generate_ids  # noqa: E402
from dclm.export.configs import ONNXExportConfig  # noqa: E402
from dclm.export.onnx import META_FILE, export_onnx, io_names  # noqa: E402
from dclm.generate.engine import Decoder  # noqa: E402
from dclm.generate.sampling import SamplingParams  # noqa: E402

IDS = [5, 9, 2, 7, 100, 300, 11, 3, 3, 40]


@pytest.fixture(scope="module")
def onnx_dirs(tiny_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("onnx")
    return {name: export_onnx(ONNXExportConfig(model=str(tiny_dir), output=str(out / name), dtype=dtype, int8=int8))
            for name, dtype, int8 in [("fp32", "fp32", False), ("fp16", "fp16", False), ("int8", "fp32", True)]}


def run_in_two_calls(path, n_layers, split=6):
    """Prefill IDS[:split] from an empty past, then the rest against the returned present KV."""
    s = ort.InferenceSession(str(path / "model.onnx"), providers=["CPUExecutionProvider"])
    inputs, _ = io_names(n_layers)
    past_type = np.float16 if s.get_inputs()[1].type == "tensor(float16)" else np.float32
    empty = np.zeros((1, 4, 0, 16), past_type)
    first = s.run(None, {"input_ids": np.array([IDS[:split]]), **{n: empty for n in inputs[1:]}})
    second = s.run(None, {"input_ids": np.array([IDS[split:]]), **dict(zip(inputs[1:], first[1:]))})
    assert second[1].shape == (1, 4, len(IDS), 16)
    return np.concatenate([first[0], second[0]], axis=1)[0]


def test_fp32_logits_match_dclm(onnx_dirs, tiny_model):
    from pathlib import Path

    got = run_in_two_calls(Path(onnx_dirs["fp32"].output), tiny_model.args.n_layers)
    with torch.no_grad():
        ref = tiny_model(torch.tensor([IDS]))[0].numpy()
    assert np.abs(got - ref).max() <= 1e-4


@pytest.mark.parametrize("name, tol", [("fp16", 0.02), ("int8", 0.1)])
def test_fp16_and_int8_run_close(onnx_dirs, tiny_model, name, tol):
    from pathlib import Path

    got = run_in_two_calls(Path(onnx_dirs[name].output), tiny_model.args.n_layers)
    with torch.no_grad():
        ref = tiny_model(torch.tensor([IDS]))[0].numpy()
    assert np.isfinite(got).all() and np.abs(got - ref).max() < tol * np.abs(ref).max()
    assert onnx_dirs[name].bytes < 0.6 * onnx_dirs["fp32"].bytes


def test_greedy_tokens_agree_and_cli_backend(onnx_dirs, tiny_model, tiny_dir, capsys):
    params = SamplingParams.greedy_decoding(20, eos_id=None)
    ours = Decoder(tiny_model).generate([IDS[:4]], params)[0].ids
    assert generate_ids(OnnxBackend(onnx_dirs["fp32"].output), IDS[:4], params).ids == ours
    args = ["generate", "--prompt", "the quick", "--greedy", "--max-new-tokens", "8", "--eos-id", "-1"]
    assert main(args + ["--model", str(tiny_dir)]) == 0
    want = capsys.readouterr().out
    assert main(args + ["--model", onnx_dirs["fp32"].output, "--backend", "onnx"]) == 0
    assert capsys.readouterr().out == want


def test_output_dir_contents_and_refusals(onnx_dirs, tiny_dir, tmp_path):
    from pathlib import Path

    d = Path(onnx_dirs["fp32"].output)
    assert sorted(p.name for p in d.iterdir()) == sorted([META_FILE, "model.onnx", "model.onnx.data", "tokenizer.json"])
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "keep.txt").write_text("x")
    with pytest.raises(DclmError, match="not an earlier"):
        export_onnx(ONNXExportConfig(model=str(tiny_dir), output=str(tmp_path / "busy")))
    with pytest.raises(DclmError, match="int8"):
        export_onnx(ONNXExportConfig(model=str(tiny_dir), output=str(tmp_path / "x"), dtype="fp16", int8=True))
    with pytest.raises(DclmError, match="not a `dclm export onnx` directory"):
        OnnxBackend(tmp_path / "busy")
