"""Checkpoint I/O: DCLM HF layout, transformers loading, open_lm .pt conversion, bad input."""

import json

import pytest
import torch
from safetensors.torch import save_file

from dclm.cli import main
from dclm.errors import DclmError
from dclm.model import Transformer, load_model, save_model
from dclm.model.checkpoint import load_openlm_checkpoint

# apple/DCLM-7B config.json (final revision), field for field, with tiny dimensions
DCLM7B_CONFIG = {
    "architectures": ["OpenLMForCausalLM"], "model_type": "openlm", "params": None, "apply_qk_norm": True,
    "attn_activation": None, "attn_name": "torch_attn", "attn_seq_scalar": None, "attn_seq_scalar_alpha": None,
    "dim": 64, "ffn_type": "swiglu", "model": "open_lm_7b", "norm_type": "gain_only_lp_layer_norm",
    "moe_capacity_factor": 1.25, "moe_expert_model_parallelism": False, "moe_freq": 0, "moe_loss_weight": 0.1,
    "moe_num_experts": None, "moe_top_k": 2, "moe_weight_parallelism": False, "n_heads": 4, "n_layers": 2,
    "norm_eps": 1e-05, "positional_embedding_type": "rotary", "post_embed_norm": False, "qk_norm": True,
    "seq_len": 256, "vocab_size": 512, "weight_tying": False, "torch_dtype": "float32",
    "transformers_version": "4.38.2",
}


def write_dclm7b_layout(d, model, config=DCLM7B_CONFIG, shards=2):
    """A directory exactly as apple/DCLM-7B is laid out: sharded safetensors + index, written by hand."""
    d.mkdir(parents=True, exist_ok=True)
    names = [f"model.{k}" for k in model.state_dict()]
    # every published name, spelled out rather than derived from our module tree
    expected = {"model.tok_embeddings.weight", "model.norm.weight", "model.output.weight"}
    for i in range(2):
        for n in ("attention_norm.weight", "attention.in_proj.weight", "attention.q_norm.weight", "attention.k_norm.weight",
                  "attention.pos_embed.inv_freq", "attention.out_proj.weight", "ffn_norm.weight",
                  "feed_forward.w12.weight", "feed_forward.w3.weight"):
            expected.add(f"model.layers.{i}.{n}")
    assert set(names) == expected and len(names) == 2 * 9 + 3
    sd = {f"model.{k}": v.contiguous() for k, v in model.state_dict().items()}
    keys = sorted(sd)
    weight_map = {}
    for s in range(shards):
        part = keys[s::shards]
        fname = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
        save_file({k: sd[k] for k in part}, str(d / fname), metadata={"format": "pt"})
        weight_map.update({k: fname for k in part})
    total = sum(v.numel() * v.element_size() for v in sd.values())
    (d / "model.safetensors.index.json").write_text(json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2, sort_keys=True))
    (d / "config.json").write_text(json.dumps(config, indent=4))
    return d


def test_save_load_round_trip(tmp_path, tiny_model):
    save_model(tiny_model, tmp_path / "m")
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    assert list(cfg)[:3] == ["architectures", "model_type", "params"] and cfg["model_type"] == "openlm"
    back = load_model(tmp_path / "m")
    for (k, a), (k2, b) in zip(tiny_model.state_dict().items(), back.state_dict().items()):
        assert k == k2 and torch.equal(a, b)
    ids = torch.tensor([[3, 1, 4, 1, 5]])
    assert torch.equal(tiny_model(ids), back(ids))


def test_sharded_save_and_bf16(tmp_path, tiny_model):
    save_model(tiny_model, tmp_path / "s", max_shard_bytes=100_000, dtype=torch.bfloat16)
    index = json.loads((tmp_path / "s" / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) > 1
    back = load_model(tmp_path / "s")
    assert back.tok_embeddings.weight.dtype == torch.bfloat16
    assert back.layers[0].attention.pos_embed.inv_freq.dtype == torch.float32  # frequencies stay exact
    save_model(tiny_model, tmp_path / "f32")
    cast = load_model(tmp_path / "f32", dtype=torch.bfloat16)
    assert cast.output.weight.dtype == torch.bfloat16
    assert torch.equal(cast.layers[1].attention.pos_embed.inv_freq, tiny_model.layers[1].attention.pos_embed.inv_freq)


@pytest.mark.parametrize("variant", ["final", "params_args_dict", "dclm1b_spelling", "tie_true"])
def test_transformers_loads_dclm7b_layout(tmp_path, tiny_model, variant):
    import dclm.hf  # noqa: F401
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg = dict(DCLM7B_CONFIG)
    if variant == "params_args_dict":  # the first upload: everything nested, `model_norm` for the norm
        inner = {k: v for k, v in cfg.items() if k not in ("architectures", "model_type", "params", "norm_type")}
        inner["model_norm"] = "gain_only_lp_layer_norm"
        cfg = {"architectures": ["OpenLMForCausalLM"], "model_type": "openlm", "params_args_dict": inner}
    elif variant == "dclm1b_spelling":
        cfg.update(ffn_type="swiglu_torch", attn_name="auto", model="open_lm_1b_swiglutorch", transformers_version="4.40.2")
    elif variant == "tie_true":
        cfg["tie_word_embeddings"] = True  # weight_tying false must win
    d = write_dclm7b_layout(tmp_path / "dclm", tiny_model, cfg)
    config = AutoConfig.from_pretrained(d)
    assert (config.dim, config.n_layers, config.n_heads, config.vocab_size) == (64, 2, 4, 512)
    model, info = AutoModelForCausalLM.from_pretrained(d, output_loading_info=True)
    assert type(model).__name__ == "OpenLMForCausalLM"
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    assert model.model.output.weight.data_ptr() != model.model.tok_embeddings.weight.data_ptr()
    ids = torch.tensor([[5, 6, 7, 8]])
    with torch.no_grad():
        assert torch.allclose(model(ids).logits, tiny_model(ids), atol=1e-6)
    assert model.generation_config.eos_token_id == 0
    # our own loader reads the same directory
    assert torch.allclose(load_model(d)(ids), tiny_model(ids), atol=1e-6)


def test_save_pretrained_writes_dclm_layout(tmp_path, tiny_model):
    import dclm.hf
    from transformers import AutoModelForCausalLM

    hf = dclm.hf.from_transformer(tiny_model)
    hf.save_pretrained(tmp_path / "out")
    cfg = json.loads((tmp_path / "out" / "config.json").read_text())
    assert list(cfg)[: len(DCLM7B_CONFIG) - 1] == list(DCLM7B_CONFIG)[:-1]  # same keys, same order
    from safetensors import safe_open

    with safe_open(str(tmp_path / "out" / "model.safetensors"), "pt") as f:
        assert set(f.keys()) == {f"model.{k}" for k in tiny_model.state_dict()}
    again = AutoModelForCausalLM.from_pretrained(tmp_path / "out")
    ids = torch.tensor([[1, 2, 3]])
    assert torch.equal(again(ids).logits, tiny_model(ids))


@pytest.mark.parametrize("cache_implementation", [None, "static"])
def test_hf_generate_left_padded_batch_equals_single(tiny_model, cache_implementation):
    import dclm.hf

    hf = dclm.hf.from_transformer(tiny_model)
    hf.generation_config.cache_implementation = cache_implementation
    a, b = [9, 8, 7], [1, 2, 3, 4, 5, 6]
    batch = torch.tensor([[0, 0, 0] + a, b])
    mask = torch.tensor([[0, 0, 0, 1, 1, 1], [1] * 6])
    with torch.no_grad():
        both = hf.generate(batch, attention_mask=mask, max_new_tokens=8, do_sample=False, eos_token_id=None)
        one_a = hf.generate(torch.tensor([a]), max_new_tokens=8, do_sample=False, eos_token_id=None)
        one_b = hf.generate(torch.tensor([b]), max_new_tokens=8, do_sample=False, eos_token_id=None)
    assert both[0, 6:].tolist() == one_a[0, 3:].tolist()
    assert both[1, 6:].tolist() == one_b[0, 6:].tolist()


def _openlm_pt(tmp_path, model, prefix):
    state = {prefix + k: v for k, v in model.state_dict().items()}
    path = tmp_path / "epoch_3.pt"
    torch.save({"epoch": 3, "name": "x", "state_dict": state}, path)
    return path


@pytest.mark.parametrize("prefix", ["module.", "_orig_mod.", "module._orig_mod.", ""])
def test_convert_openlm_pt_to_hf_and_back(tmp_path, tiny_model, prefix, capsys):
    pt = _openlm_pt(tmp_path, tiny_model, prefix)
    assert main(["convert", "--input", str(pt), "--output", str(tmp_path / "hf")]) == 0
    back = load_model(tmp_path / "hf")
    ids = torch.tensor([[4, 3, 2]])
    assert torch.equal(back(ids), tiny_model(ids))
    assert main(["convert", "--input", str(tmp_path / "hf"), "--output", str(tmp_path / "out" / "epoch_1.pt")]) == 0
    state = load_openlm_checkpoint(tmp_path / "out" / "epoch_1.pt")
    assert all(torch.equal(state[k], v) for k, v in tiny_model.state_dict().items())
    raw = torch.load(tmp_path / "out" / "epoch_1.pt", weights_only=True)
    assert all(k.startswith("module.") for k in raw["state_dict"])


def test_convert_needs_heads_when_shape_is_unknown(tmp_path):
    from dclm.model.openlm import ModelArgs

    m = Transformer(ModelArgs(dim=48, n_layers=1, n_heads=3, vocab_size=100))
    state = {k: v for k, v in m.state_dict().items() if not k.endswith("inv_freq")}
    torch.save({"state_dict": state}, tmp_path / "e.pt")
    assert main(["convert", "--input", str(tmp_path / "e.pt"), "--output", str(tmp_path / "o")]) == 2
    assert main(["convert", "--input", str(tmp_path / "e.pt"), "--output", str(tmp_path / "o"), "--n-heads", "3"]) == 0
    assert main(["convert", "--input", str(tmp_path / "o"), "--output", str(tmp_path / "o16"), "--dtype", "bf16"]) == 0
    assert load_model(tmp_path / "o16").output.weight.dtype == torch.bfloat16


def test_bad_inputs_are_one_line_errors(tmp_path, tiny_model, capsys):
    with pytest.raises(DclmError, match="not found"):
        load_model(tmp_path / "missing")
    other = tmp_path / "llama"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"model_type": "llama", "hidden_size": 64}))
    with pytest.raises(DclmError, match="model_type is 'llama'"):
        load_model(other)
    d = write_dclm7b_layout(tmp_path / "bad", tiny_model, shards=1)
    from safetensors.torch import load_file

    shard = d / "model-00001-of-00001.safetensors"
    sd = load_file(str(shard))
    sd["model.layers.1.feed_forward.w3.weight"] = torch.zeros(64, 100)
    save_file(sd, str(shard))
    with pytest.raises(DclmError, match=r"layers\.1\.feed_forward\.w3\.weight.*\[64, 100\].*\[64, 256\]"):
        load_model(d)
    unsupported = dict(DCLM7B_CONFIG, norm_type="rms_norm")
    (d / "config.json").write_text(json.dumps(unsupported))
    with pytest.raises(DclmError, match="norm_type"):
        load_model(d)
    capsys.readouterr()
    assert main(["generate", "--model", str(tmp_path / "missing"), "--prompt", "x"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("dclm: model directory not found")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    assert main(["convert", "--input", str(tmp_path / "junk.pt"), "--output", str(tmp_path / "x")]) == 2


def test_transformers_random_init_is_open_lm_init():
    import dclm.hf
    from transformers import AutoModelForCausalLM

    config = dclm.hf.OpenLMConfig(dim=256, n_layers=2, n_heads=4, vocab_size=1024, seq_len=128)
    model = AutoModelForCausalLM.from_config(config)
    sd = model.model.state_dict()
    std = 256**-0.5
    for name, expected in [("tok_embeddings.weight", std), ("layers.1.attention.in_proj.weight", std),
                           ("layers.1.attention.out_proj.weight", std / 2),
                           ("layers.1.feed_forward.w3.weight", 768**-0.5 / 2)]:
        # a normal truncated at 3 sigma has a standard deviation of 0.986 sigma
        assert abs(sd[name].std().item() / (0.986 * expected) - 1) < 0.05, name
        assert sd[name].abs().max() <= 3 * expected + 1e-6
    assert torch.equal(sd["layers.0.attention_norm.weight"], torch.ones(256))
