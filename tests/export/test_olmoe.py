"""The olmoe mapping, checked without llama.cpp: llama.cpp's olmoe graph (RMSNorms, one routed expert),
written out here in torch over the mapped tensors, gives dclm's logits; and what it cannot express is refused."""

import json

import pytest
import torch
import torch.nn.functional as F

from dclm.errors import DclmError
from dclm.export import olmoe
from dclm.export.source import open_checkpoint
from dclm.model import save_model

from .conftest import perturbed_tiny


def rotate_half(x):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def rms_norm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def olmoe_logits(t, a, ids):
    """llama.cpp src/models/olmoe.cpp over GGUF-named tensors: RMSNorm everywhere, full-width q/k norm, NeoX
    rope, softmax top-1 routing over the experts, untied head."""
    T = len(ids)
    x = t["token_embd.weight"][ids]
    pos = torch.arange(T, dtype=torch.float32)
    inv = 1.0 / (a.rope_base ** (torch.arange(0, a.head_dim, 2, dtype=torch.float32) / a.head_dim))
    ang = torch.cat([pos[:, None] * inv] * 2, -1)
    cos, sin = ang.cos(), ang.sin()
    for i in range(a.n_layers):
        b = f"blk.{i}."
        y = rms_norm(x, t[b + "attn_norm.weight"], a.norm_eps)
        q = rms_norm(y @ t[b + "attn_q.weight"].T, t[b + "attn_q_norm.weight"], a.norm_eps)
        k = rms_norm(y @ t[b + "attn_k.weight"].T, t[b + "attn_k_norm.weight"], a.norm_eps)
        v = y @ t[b + "attn_v.weight"].T
        q, k, v = (z.view(T, a.n_heads, a.head_dim).transpose(0, 1) for z in (q, k, v))
        q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
        o = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(0, 1).reshape(T, a.dim)
        x = x + o @ t[b + "attn_output.weight"].T
        y = rms_norm(x, t[b + "ffn_norm.weight"], a.norm_eps)
        route = (y @ t[b + "ffn_gate_inp.weight"].T).softmax(-1)  # [T, n_expert]
        top = route.argmax(-1)
        assert bool((top == 0).all())
        gate, up, down = (t[b + n][0] for n in ("ffn_gate_exps.weight", "ffn_up_exps.weight", "ffn_down_exps.weight"))
        x = x + route[:, :1] * ((F.silu(y @ gate.T) * (y @ up.T)) @ down.T)
    return rms_norm(x, t["output_norm.weight"], a.norm_eps) @ t["output.weight"].T


def test_olmoe_graph_on_mapped_tensors_equals_dclm(tiny_dir, tiny_model):
    src = open_checkpoint(tiny_dir)
    assert olmoe.unsupported_reason(src) is None
    tensors = {p.name: torch.from_numpy(data) for p, data in olmoe.produce(olmoe.plan(src))}
    ids = [5, 9, 2, 7, 100, 300, 11, 3, 3, 40]
    with torch.no_grad():
        ref = tiny_model(torch.tensor([ids]))[0]
    assert (olmoe_logits(tensors, src.args, ids) - ref).abs().max() < 1e-4
    # the same graph on the tensors without centring is far off: the centring is what makes it exact
    raw = dict(tensors, **{"token_embd.weight": tiny_model.tok_embeddings.weight.detach()})
    assert (olmoe_logits(raw, src.args, ids) - ref).abs().max() > 1e-2


def test_residual_writes_and_qk_rows_are_centred(tiny_dir):
    src = open_checkpoint(tiny_dir)
    made = {p.name: torch.from_numpy(d).double() for p, d in olmoe.produce(olmoe.plan(src))}
    assert made["token_embd.weight"].mean(1).abs().max() < 1e-6
    for n in ("attn_output.weight", "attn_q.weight", "attn_k.weight"):
        assert made["blk.0." + n].mean(0).abs().max() < 1e-6
    assert made["blk.1.ffn_down_exps.weight"][0].mean(0).abs().max() < 1e-6


def test_pt_checkpoint_maps_like_the_hf_directory(tiny_dir, tiny_model, tmp_path):
    from dclm.model.checkpoint import save_openlm_checkpoint

    pt = save_openlm_checkpoint(tiny_model, tmp_path / "epoch_1.pt")
    a = {p.name: d for p, d in olmoe.produce(olmoe.plan(open_checkpoint(pt)))}
    b = {p.name: d for p, d in olmoe.produce(olmoe.plan(open_checkpoint(tiny_dir)))}
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)


@pytest.mark.parametrize("overrides, words", [
    ({"post_embed_norm": True}, "post_embed_norm"),
    ({"weight_tying": True}, "weight_tying"),
    ({"apply_qk_norm": False}, "apply_qk_norm"),
])
def test_inexpressible_shapes_are_refused(tmp_path, overrides, words):
    save_model(perturbed_tiny(**overrides), tmp_path / "m")
    reason = olmoe.unsupported_reason(open_checkpoint(tmp_path / "m"))
    assert reason and words in reason and "\n" not in reason


def test_nonstandard_rotary_frequencies_are_refused(tmp_path):
    m = perturbed_tiny()
    with torch.no_grad():
        m.layers[1].attention.pos_embed.inv_freq.mul_(1.01)
    save_model(m, tmp_path / "m")
    assert "inv_freq" in olmoe.unsupported_reason(open_checkpoint(tmp_path / "m"))


@pytest.mark.parametrize("field, value", [("moe_freq", 1), ("norm_type", "rms_norm"), ("ffn_type", "gelu")])
def test_config_options_outside_dclm_are_refused(tiny_dir, tmp_path, field, value):
    import shutil

    d = tmp_path / "m"
    shutil.copytree(tiny_dir, d)
    cfg = json.loads((d / "config.json").read_text())
    cfg[field] = value
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(DclmError, match=field):
        open_checkpoint(d)
