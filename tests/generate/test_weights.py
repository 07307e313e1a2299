"""The memory-mapped safetensors reader and the streaming writer, against the safetensors package."""

import subprocess
import sys

import pytest
import torch

from dclm.errors import DclmError
from dclm.generate.weights import Writer, map_file, read_header


def test_reader_reads_what_safetensors_writes(tmp_path):
    from safetensors.torch import save_file

    g = torch.Generator().manual_seed(0)
    tensors = {"a": torch.randn(3, 5, generator=g), "b": torch.randn(7, generator=g).bfloat16(),
               "c": torch.randint(-128, 127, (4, 3), dtype=torch.int8), "d": torch.zeros(0, 4),
               "e": torch.randint(0, 255, (5,), dtype=torch.uint8)}
    save_file(tensors, str(tmp_path / "x.safetensors"))
    got = map_file(tmp_path / "x.safetensors")
    assert set(got) == set(tensors)
    for k, t in tensors.items():
        assert got[k].dtype == t.dtype and torch.equal(got[k], t), k


def test_a_file_larger_than_memory_is_mapped_read_only_and_loads(tiny_dir, monkeypatch):
    """Linux refuses a private writable map larger than memory plus swap (DCLM-7B's 27.5 GB fp32 file on a
    24 GB machine): such a file is mapped read-only, and a load that casts its dtype still works."""
    import warnings

    from dclm.generate import load_for_inference, weights

    reference = load_for_inference(tiny_dir, dtype=torch.bfloat16)
    monkeypatch.setattr(weights, "physical_memory", lambda: 1024)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # and no warning about the read-only buffer reaches the user
        got = weights.map_file(tiny_dir / "model.safetensors")
        model = load_for_inference(tiny_dir, dtype=torch.bfloat16)
    ref_state = reference.state_dict()
    assert all(torch.equal(v, ref_state[k]) for k, v in model.state_dict().items())
    assert len(got) == len(ref_state)
    ids = torch.tensor([[3, 5, 7]])
    with torch.no_grad():
        assert torch.equal(model(ids), reference(ids))


def test_writer_output_reads_back_in_safetensors(tmp_path):
    from safetensors import safe_open

    tensors = {"x": torch.arange(6, dtype=torch.float16).view(2, 3), "y": torch.ones(3, dtype=torch.uint8),
               "z": torch.randn(4, 4)}
    w = Writer(tmp_path / "w.safetensors", [(k, t.dtype, tuple(t.shape)) for k, t in tensors.items()])
    for k, t in tensors.items():
        w.write(k, t)
    w.close()
    with safe_open(str(tmp_path / "w.safetensors"), framework="pt") as f:
        for k, t in tensors.items():
            assert torch.equal(f.get_tensor(k), t)
    w = Writer(tmp_path / "v.safetensors", [("x", torch.float32, (2,))])
    with pytest.raises(ValueError):
        w.write("x", torch.ones(3))
    w.abort()
    assert not list(tmp_path.glob("v.*"))


def test_header_damage_is_one_clear_error(tmp_path):
    f = tmp_path / "bad.safetensors"
    f.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json here!!")
    with pytest.raises(DclmError, match="not JSON"):
        read_header(f)
    f.write_bytes(b"\xff" * 8)
    with pytest.raises(DclmError, match="truncated or not a safetensors file"):
        read_header(f)
    head = b'{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,12]}}'
    f.write_bytes(len(head).to_bytes(8, "little") + head + bytes(12))
    with pytest.raises(DclmError, match="12 bytes for shape"):
        read_header(f)


def test_loading_for_inference_does_not_import_torch_dynamo(tiny_dir):
    code = (f"import sys; from dclm.generate import load_for_inference; load_for_inference({str(tiny_dir)!r}); "
            "print('torch._dynamo' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"  # importing it costs seconds of the whole command


@pytest.mark.parametrize("tied,shard_bytes", [(False, 64 * 1024), (True, 5 * 2**30)])
def test_load_for_inference_equals_the_saved_model(tmp_path, tied, shard_bytes):
    import dataclasses

    from dclm.generate import load_for_inference
    from dclm.model import Transformer, get_config, save_model

    torch.manual_seed(0)
    model = Transformer(dataclasses.replace(get_config("tiny"), weight_tying=tied)).eval()
    save_model(model, tmp_path / "m", max_shard_bytes=shard_bytes)
    assert len(list((tmp_path / "m").glob("*.safetensors"))) > (1 if not tied else 0)
    loaded = load_for_inference(tmp_path / "m")
    assert (loaded.output.weight is loaded.tok_embeddings.weight) == tied
    ids = torch.tensor([[3, 1, 4, 1, 5]])
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids), model(ids), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(loaded(ids[:, -1:]), model(ids[:, -1:]), rtol=1e-5, atol=1e-5)
    bf16 = load_for_inference(tmp_path / "m", dtype=torch.bfloat16)
    with torch.no_grad():
        assert torch.nn.functional.cosine_similarity(bf16(ids).flatten(), model(ids).flatten(), dim=0) > 0.99
