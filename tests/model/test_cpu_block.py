"""The CPU decode step of a whole block (dclm.generate.cpu.FastBlock over dclm.model.cpu_attention and
dclm.model.cpu_block) against its plain twin, open_lm Block.forward on the same cache; and cpu_block's
elementwise kernels against torch's ops."""

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dclm.generate.cpu import FastBlock, install_cpu_kernels
from dclm.generate.engine import StaticKVCache
from dclm.generate.quantize import quantize_model
from dclm.model import Transformer, cpu_attention, cpu_block, cpu_matmul, get_config
from dclm.model.openlm import attention_mask


def _models(dtype, qk_norm=True, dim=64, heads=4, bits=None):
    """(plain, fast): a tiny model with gains away from 1, and a copy with the CPU kernels swapped in."""
    torch.manual_seed(1)
    m = Transformer(get_config("tiny", dim=dim, n_heads=heads, apply_qk_norm=qk_norm)).to(dtype).eval()
    with torch.no_grad():
        for p in m.parameters():
            if p.dim() == 1:
                p.uniform_(0.5, 1.5)
    if bits:
        quantize_model(m, bits, 32)
    fast = copy.deepcopy(m)
    install_cpu_kernels(fast)
    assert all(type(b) is FastBlock for b in fast.layers)
    return m, fast


def _step(model, batch, past, length, dtype, seed):
    """Fill a cache with `past` random columns, then run block 1 for one new token per row (row r
    left-padded by r columns), returning the output and the cache."""
    g = torch.Generator().manual_seed(seed)
    cache = StaticKVCache(model, batch, length, dtype, "cpu")
    cache.k.copy_(torch.randn(cache.k.shape, generator=g))
    cache.v.copy_(torch.randn(cache.v.shape, generator=g))
    valid = torch.zeros(batch, length, dtype=torch.bool)
    for r in range(batch):
        valid[r, r:past + 1] = True
    cache.input_pos = torch.tensor([past])
    mask = attention_mask(valid, cache.input_pos)
    positions = torch.tensor([[past - r] for r in range(batch)])
    x = torch.randn(batch, 1, model.args.dim, generator=g).to(dtype)
    with torch.no_grad():
        out = model.layers[1](x, positions, mask, cache)
    return out, cache


def _spy(monkeypatch):
    calls, attend = [], cpu_attention.attend
    monkeypatch.setattr(cpu_attention, "attend", lambda *a: calls.append(1) or attend(*a))
    return calls


# bf16: the plain path rounds after each op, the kernels where they store
_TOL = {torch.float32: dict(rtol=1e-4, atol=1e-4), torch.bfloat16: dict(rtol=3e-2, atol=3e-2)}


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("qk_norm", [True, False])
@pytest.mark.parametrize("batch,past,length", [(1, 4, 9), (3, 20, 33), (2, 300, 301)])  # last: the parallel attention
def test_fast_block_step_matches_the_plain_block(dtype, qk_norm, batch, past, length, monkeypatch):
    plain, fast = _models(dtype, qk_norm)
    calls = _spy(monkeypatch)
    fast_out, fast_cache = _step(fast, batch, past, length, dtype, seed=past)
    assert calls == [1]
    plain_out, plain_cache = _step(plain, batch, past, length, dtype, seed=past)
    assert fast_out.dtype == dtype and fast_out.shape == plain_out.shape
    torch.testing.assert_close(fast_out.float(), plain_out.float(), **_TOL[dtype])
    torch.testing.assert_close(fast_cache.k.float(), plain_cache.k.float(), **_TOL[dtype])
    torch.testing.assert_close(fast_cache.v.float(), plain_cache.v.float(), **_TOL[dtype])


@pytest.mark.parametrize("bits", [8, 4])
def test_fast_block_step_with_quantized_products(bits, monkeypatch):
    plain, fast = _models(torch.float32, bits=bits)
    calls = _spy(monkeypatch)
    fast_out, _ = _step(fast, 3, 20, 33, torch.float32, seed=2)
    plain_out, _ = _step(plain, 3, 20, 33, torch.float32, seed=2)
    assert calls == [1]
    tol = 3e-2 if bits == 4 and fast.layers[1].feed_forward.w3.int4pack is not None else 1e-4  # bf16 activations
    torch.testing.assert_close(fast_out, plain_out, rtol=tol, atol=tol)


def test_serial_and_parallel_attention_agree_bit_for_bit():
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
def test_fast_block_step_on_serves_slotted_cache(dtype, monkeypatch):
    """dclm serve's cache: each slot row at its own column, attention over the first `keys` columns."""
    from dclm.serve.cache import SlotKVCache

    plain, fast = _models(dtype)
    calls = _spy(monkeypatch)
    outs, caches = [], []
    for model in (fast, plain):
        g = torch.Generator().manual_seed(5)
        cache = SlotKVCache(model, 4, 24, dtype, "cpu")
        cache.k.copy_(torch.randn(cache.k.shape, generator=g))
        cache.v.copy_(torch.randn(cache.v.shape, generator=g))
        cols = torch.tensor([5, 11, 0])  # three of four slots running, at their own lengths
        keys = 12
        cache.for_decode(cols, keys)
        mask = (torch.arange(keys)[None] <= cols[:, None])[:, None, None, :]
        x = torch.randn(3, 1, 64, generator=g).to(dtype)
        with torch.no_grad():
            outs.append(model.layers[1](x, cols[:, None], mask, cache))
        caches.append(cache)
    assert calls == [1]
    torch.testing.assert_close(outs[0].float(), outs[1].float(), **_TOL[dtype])
    torch.testing.assert_close(caches[0].k.float(), caches[1].k.float(), **_TOL[dtype])
    torch.testing.assert_close(caches[0].v.float(), caches[1].v.float(), **_TOL[dtype])


def test_other_calls_take_the_plain_path(monkeypatch):
    plain, fast = _models(torch.float32)
    a, b = plain.layers[0], fast.layers[0]
    called = []
    monkeypatch.setattr(cpu_attention, "attend", lambda *args: called.append(1))
    cache = StaticKVCache(plain, 1, 8, torch.float32, "cpu")
    cache.input_pos = torch.arange(3)
    x = torch.randn(1, 3, 64)
    with torch.no_grad():  # a prefill
        torch.testing.assert_close(b(x, torch.arange(3)[None], None, cache), a(x, torch.arange(3)[None], None, cache))
    x1 = torch.randn(1, 1, 64, requires_grad=True)
    cache.input_pos = torch.tensor([3])
    b(x1, torch.tensor([[3]]), None, cache).sum().backward()  # a gradient is wanted: plain autograd ops
    assert x1.grad is not None
    with torch.no_grad():
        b(torch.randn(1, 1, 64), torch.tensor([[3]]), None, None)  # no cache
        monkeypatch.setattr(cpu_matmul, "ENABLED", False)
        b(torch.randn(1, 1, 64), torch.tensor([[3]]), None, cache)
    assert not called


def test_fast_block_follows_a_replaced_or_moved_gain(monkeypatch):
    plain, fast = _models(torch.float32)
    out0, _ = _step(fast, 1, 4, 9, torch.float32, seed=0)
    for model in (plain, fast):
        with torch.no_grad():
            model.layers[1].ffn_norm.weight = torch.nn.Parameter(torch.full((64,), 2.0))
            model.layers[1].attention.q_norm.weight.data = torch.full((64,), 0.25)
    fast_out, _ = _step(fast, 1, 4, 9, torch.float32, seed=0)
    plain_out, _ = _step(plain, 1, 4, 9, torch.float32, seed=0)
    assert not torch.allclose(out0, fast_out)
    torch.testing.assert_close(fast_out, plain_out, **_TOL[torch.float32])


def _bits(t):
    return cpu_matmul.as_array(t.contiguous())


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_elementwise_kernels_match_torch(dtype):
    g = torch.Generator().manual_seed(3)
    x, o = (torch.randn(5, 96, generator=g).to(dtype) for _ in range(2))
    gain = (torch.rand(96, generator=g) + 0.5).to(dtype)
    h, y = np.empty_like(_bits(x)), np.empty_like(_bits(x))
    cpu_block.layer_norm(_bits(x), _bits(gain), np.float32(1e-5), y)
    tol = _TOL[dtype]
    torch.testing.assert_close(cpu_matmul.from_array(y), F.layer_norm(x, (96,), gain, None, 1e-5), **tol)
    cpu_block.add_layer_norm(_bits(x), _bits(o), _bits(gain), np.float32(1e-5), h, y)
    assert torch.equal(cpu_matmul.from_array(h), x + o)  # one rounding, as torch's add
    torch.testing.assert_close(cpu_matmul.from_array(y), F.layer_norm(x + o, (96,), gain, None, 1e-5), **tol)
    cpu_block.add(_bits(x), _bits(o), h)
    assert torch.equal(cpu_matmul.from_array(h), x + o)
    gu = torch.randn(5, 2 * 48, generator=g).to(dtype) * 4
    gu[0, :3] = torch.tensor([-1e30, 1e30, -100.0])  # silu's far tails: 0, the input itself, 0
    out = np.empty((5, 48), dtype=_bits(gu).dtype)
    cpu_block.swiglu(_bits(gu), out)
    gate, up = gu.float().chunk(2, dim=-1)
    torch.testing.assert_close(cpu_matmul.from_array(out).float(), (F.silu(gate) * up).to(dtype).float(), **tol)
    assert torch.isfinite(cpu_matmul.from_array(out)).all()
