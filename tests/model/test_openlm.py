"""The model against an independent, deliberately plain implementation of open_lm's forward pass."""

import math

import torch

from dclm.model import Transformer, get_config
from dclm.model.openlm import ModelArgs, attention_mask


def reference_logits(model: Transformer, ids: torch.Tensor) -> torch.Tensor:
    """open_lm's forward written out with loops over heads and positions, reading only the state dict."""
    a = model.args
    sd = {k: v.double() for k, v in model.state_dict().items()}
    d, H = a.dim, a.n_heads
    hd = d // H

    def ln(x, w):
        mu = x.mean(-1, keepdim=True)
        var = ((x - mu) ** 2).mean(-1, keepdim=True)
        return (x - mu) / torch.sqrt(var + a.norm_eps) * w

    def rope(x, pos, inv_freq):  # x [hd]; GPT-NeoX rotate-half
        half = hd // 2
        out = torch.empty_like(x)
        for j in range(half):
            ang = pos * inv_freq[j]
            c, s = math.cos(ang), math.sin(ang)
            out[j] = x[j] * c - x[j + half] * s
            out[j + half] = x[j + half] * c + x[j] * s
        return out

    B, T = ids.shape
    out = torch.empty(B, T, a.vocab_size, dtype=torch.float64)
    for b in range(B):
        x = sd["tok_embeddings.weight"][ids[b]]
        for i in range(a.n_layers):
            p = f"layers.{i}."
            y = ln(x, sd[p + "attention_norm.weight"])
            qkv = y @ sd[p + "attention.in_proj.weight"].T
            q, k, v = qkv[:, :d], qkv[:, d : 2 * d], qkv[:, 2 * d :]
            q = ln(q, sd[p + "attention.q_norm.weight"])
            k = ln(k, sd[p + "attention.k_norm.weight"])
            inv = sd[p + "attention.pos_embed.inv_freq"]
            att = torch.zeros(T, d, dtype=torch.float64)
            for h in range(H):
                cols = slice(h * hd, (h + 1) * hd)
                qh = torch.stack([rope(q[t, cols], t, inv) for t in range(T)])
                kh = torch.stack([rope(k[t, cols], t, inv) for t in range(T)])
                for t in range(T):
                    scores = (kh[: t + 1] @ qh[t]) / math.sqrt(hd)
                    w = torch.softmax(scores, 0)
                    att[t, cols] = w @ v[: t + 1, cols]
            x = x + att @ sd[p + "attention.out_proj.weight"].T
            y = ln(x, sd[p + "ffn_norm.weight"])
            g_u = y @ sd[p + "feed_forward.w12.weight"].T
            hidden = g_u.shape[1] // 2
            gate, up = g_u[:, :hidden], g_u[:, hidden:]
            x = x + (gate * torch.sigmoid(gate) * up) @ sd[p + "feed_forward.w3.weight"].T
        out[b] = ln(x, sd["norm.weight"]) @ sd["output.weight"].T
    return out


def test_logits_equal_reference(tiny_model):
    ids = torch.randint(0, tiny_model.args.vocab_size, (2, 9), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours = tiny_model(ids)
    ref = reference_logits(tiny_model, ids)
    assert ours.dtype == torch.float32
    assert (ours.double() - ref).abs().max().item() <= 1e-5


def test_ffn_hidden_and_param_counts_match_spec():
    # dclm_spec.md section 9 item 11 (q/k-norm gains included)
    expected = {"411m": 411_665_408, "1b": 1_439_893_504, "3b": 2_796_096_000, "7b": 6_889_672_704}
    hidden = {"411m": 2816, "1b": 5632, "3b": 6912, "7b": 11008}
    for name, n in expected.items():
        args = get_config(name)
        assert args.num_params() == n
        assert args.ffn_hidden == hidden[name]
        with torch.device("meta"):
            m = Transformer(args, init=False)
        assert sum(p.numel() for p in m.parameters()) == n
    assert get_config("d=1024_l=24_h=8") == get_config("411m")
    assert get_config("open_lm_7b_swiglutorch") == get_config("7b")


def test_7b_state_dict_names_and_shapes():
    with torch.device("meta"):
        m = Transformer(get_config("7b"), init=False)
    sd = m.state_dict()
    assert len(sd) == 291
    shapes = {k: list(v.shape) for k, v in sd.items()}
    assert shapes["tok_embeddings.weight"] == [50432, 4096]
    assert shapes["layers.31.attention.in_proj.weight"] == [12288, 4096]
    assert shapes["layers.0.attention.q_norm.weight"] == [4096]
    assert shapes["layers.0.attention.pos_embed.inv_freq"] == [64]
    assert shapes["layers.0.feed_forward.w12.weight"] == [22016, 4096]
    assert shapes["layers.0.feed_forward.w3.weight"] == [4096, 11008]
    assert shapes["output.weight"] == [50432, 4096]
    assert not any(k.endswith("bias") for k in sd)


def test_kv_cache_steps_equal_full_forward(tiny_model):
    from transformers.cache_utils import DynamicCache

    ids = torch.randint(0, 512, (1, 8), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        full = tiny_model(ids)
        cache = DynamicCache()
        parts = [tiny_model(ids[:, :5], cache=cache), tiny_model(ids[:, 5:7], cache=cache), tiny_model(ids[:, 7:], cache=cache)]
    assert torch.allclose(torch.cat(parts, 1), full, atol=1e-5)


def test_left_padding_mask_matches_unpadded(tiny_model):
    ids = torch.randint(1, 512, (1, 6), generator=torch.Generator().manual_seed(3))
    padded = torch.cat([torch.zeros(1, 3, dtype=torch.long), ids], 1)
    valid = torch.tensor([[False] * 3 + [True] * 6])
    positions = (valid.long().cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        alone = tiny_model(ids)
        out = tiny_model(padded, positions=positions, mask=attention_mask(valid, torch.arange(9)))
    assert torch.isfinite(out).all()
    assert torch.allclose(out[:, 3:], alone, atol=1e-5)


def test_weight_tying_and_post_embed_norm_variants():
    args = ModelArgs(dim=32, n_layers=1, n_heads=2, vocab_size=64, weight_tying=True, post_embed_norm=True)
    m = Transformer(args)
    assert m.output.weight is m.tok_embeddings.weight
    assert sum(p.numel() for p in m.parameters()) == args.num_params()
    assert m(torch.tensor([[1, 2, 3]])).shape == (1, 3, 64)
