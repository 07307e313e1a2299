"""The fused CPU decode-attention step (dclm.model.cpu_attention via dclm.generate.cpu.FastAttention) against
its plain twin, open_lm Attention.forward on the same cache."""

import copy

import pytest
import torch

from dclm.generate.cpu import FastAttention
from dclm.generate.engine import StaticKVCache
from dclm.model import Transformer, cpu_attention, cpu_matmul, get_config
from dclm.model.openlm import Attention, attention_mask


def _model(dtype, qk_norm=True, dim=64, heads=4):
    torch.manual_seed(1)
    m = Transformer(get_config("tiny", dim=dim, n_heads=heads, apply_qk_norm=qk_norm)).to(dtype).eval()
    with torch.no_grad():  # gains away from 1 and rotary buffers as a checkpoint carries them
        for layer in m.layers:
            if qk_norm:
                layer.attention.q_norm.weight.uniform_(0.5, 1.5)
                layer.attention.k_norm.weight.uniform_(0.5, 1.5)
    return m


def _step(model, attn_cls, batch, past, length, dtype, seed):
    """Fill a cache with `past` random columns, then run layer 1's attention for one new token per row
    (row r left-padded by r columns), returning the output and the cache."""
    g = torch.Generator().manual_seed(seed)
    a = model.layers[1].attention
    attn = FastAttention.wrap(a) if attn_cls is FastAttention else a
    cache = StaticKVCache(model, batch, length, dtype, "cpu")
    cache.k.copy_(torch.randn(cache.k.shape, generator=g))
    cache.v.copy_(torch.randn(cache.v.shape, generator=g))
    valid = torch.zeros(batch, length, dtype=torch.bool)
    for r in range(batch):
        valid[r, r:past + 1] = True
    cache.input_pos = torch.tensor([past])
    mask = attention_mask(valid, cache.input_pos)
    positions = torch.tensor([[past - r] for r in range(batch)])
    x = torch.randn(batch, 1, a.n_heads * a.head_dim, generator=g).to(dtype)
    with torch.no_grad():
        out = attn(x, positions, mask, cache)
    return out, cache


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("qk_norm", [True, False])
@pytest.mark.parametrize("batch,past,length", [(1, 4, 9), (3, 20, 33), (2, 300, 301)])  # last: the parallel kernel
def test_fused_step_matches_plain_attention(dtype, qk_norm, batch, past, length, monkeypatch):
    model = _model(dtype, qk_norm)
    calls, step = [], cpu_attention.attend_step
    monkeypatch.setattr(cpu_attention, "attend_step", lambda *a: calls.append(1) or step(*a))
    fast_out, fast_cache = _step(model, FastAttention, batch, past, length, dtype, seed=past)
    assert calls == [1]
    plain_out, plain_cache = _step(model, Attention, batch, past, length, dtype, seed=past)
    # bf16: the plain path rounds after each op, the kernel once at the end
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == torch.float32 else dict(rtol=3e-2, atol=3e-2)
    assert fast_out.dtype == dtype and fast_out.shape == plain_out.shape
    torch.testing.assert_close(fast_out.float(), plain_out.float(), **tol)
    torch.testing.assert_close(fast_cache.k.float(), plain_cache.k.float(), **tol)
    assert torch.equal(fast_cache.v, plain_cache.v)  # v is written as in_proj gave it


def test_serial_and_parallel_kernels_agree_bit_for_bit():
    g = torch.Generator().manual_seed(0)
    qkv = torch.randn(2, 3 * 64, generator=g).numpy()
    gain = torch.rand(64, generator=g).numpy()
    inv_freq = Transformer(get_config("tiny")).layers[0].attention.pos_embed.inv_freq.numpy()
    caches = [torch.randn(2, 2, 4, 40, 16, generator=g).numpy() for _ in range(4)]
    mask = torch.rand(2, 40, generator=g).numpy() > 0.3
    mask[0, 7] = mask[1, 9] = True
    outs = [torch.empty(2, 64).numpy() for _ in range(2)]
    for kernel, (kc, vc), out in zip((cpu_attention.attend_serial, cpu_attention.attend_parallel),
                                     (caches[:2], caches[2:]), outs):
        kc[:], vc[:] = caches[0], caches[1]
        kernel(qkv, gain, gain, 1e-5, inv_freq, torch.tensor([7, 3]).numpy(), kc, vc, 1, torch.tensor([7, 9]).numpy(),
               40, mask, out)
    assert (outs[0] == outs[1]).all() and (caches[0] == caches[2]).all() and (caches[1] == caches[3]).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_fused_step_on_serves_slotted_cache(dtype, monkeypatch):
    """dclm serve's cache: each slot row at its own column, attention over the first `keys` columns."""
    from dclm.serve.cache import SlotKVCache

    model = _model(dtype)
    calls, step = [], cpu_attention.attend_step
    monkeypatch.setattr(cpu_attention, "attend_step", lambda *a: calls.append(1) or step(*a))
    outs, caches = [], []
    for cls in (FastAttention, Attention):
        g = torch.Generator().manual_seed(5)
        a = model.layers[1].attention
        attn = FastAttention.wrap(a) if cls is FastAttention else a
        cache = SlotKVCache(model, 4, 24, dtype, "cpu")
        cache.k.copy_(torch.randn(cache.k.shape, generator=g))
        cache.v.copy_(torch.randn(cache.v.shape, generator=g))
        cols = torch.tensor([5, 11, 0])  # three of four slots running, at their own lengths
        keys = 12
        cache.for_decode(cols, keys)
        mask = (torch.arange(keys)[None] <= cols[:, None])[:, None, None, :]
        x = torch.randn(3, 1, 64, generator=g).to(dtype)
        with torch.no_grad():
            outs.append(attn(x, cols[:, None], mask, cache))
        caches.append(cache)
    assert calls == [1]
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == torch.float32 else dict(rtol=3e-2, atol=3e-2)
    torch.testing.assert_close(outs[0].float(), outs[1].float(), **tol)
    torch.testing.assert_close(caches[0].k.float(), caches[1].k.float(), **tol)
    assert torch.equal(caches[0].v, caches[1].v)


def test_other_calls_take_the_plain_path(monkeypatch):
    model = _model(torch.float32)
    a = model.layers[0].attention
    fast = FastAttention.wrap(copy.deepcopy(a))
    called = []
    monkeypatch.setattr(cpu_attention, "attend_step", lambda *args: called.append(1))
    cache = StaticKVCache(model, 1, 8, torch.float32, "cpu")
    cache.input_pos = torch.arange(3)
    x = torch.randn(1, 3, 64)
    with torch.no_grad():
        torch.testing.assert_close(fast(x, torch.arange(3)[None], None, cache), a(x, torch.arange(3)[None], None, cache))
    x1 = torch.randn(1, 1, 64, requires_grad=True)
    cache.input_pos = torch.tensor([3])
    fast(x1, torch.tensor([[3]]), None, cache).sum().backward()  # a gradient is wanted: plain autograd ops
    assert x1.grad is not None
    monkeypatch.setattr(cpu_matmul, "ENABLED", False)
    with torch.no_grad():
        fast(torch.randn(1, 1, 64), torch.tensor([[3]]), None, cache)
    assert not called
