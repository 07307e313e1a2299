"""The AVX-512 VNNI int4 x int8 decode product (dclm.model.cpu_vnni) against its plain twin: the same sums in
float64 from the same quantized activations, the quantizer against torch's rounding, and a whole quantized
model's decoding against the dequantizing QuantLinear."""

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dclm.generate.cpu import FastQuantLinear, install_cpu_kernels
from dclm.generate.engine import Decoder
from dclm.generate.quantize import dequantize_int4, quantize_int4, quantize_model, unpack_int4
from dclm.generate.sampling import SamplingParams
from dclm.model import Transformer, cpu_matmul, cpu_vnni, get_config

pytestmark = pytest.mark.skipif(not cpu_vnni.vnni_available(), reason="this CPU has no AVX-512 VNNI")


def _quantized_activations(x: torch.Tensor):
    """The twin of `quantize_rows` in torch: per 128 inputs, step = max |x| / 127 (1 for zeros)."""
    xf = x.float().reshape(x.shape[0], -1, 128)
    top = xf.abs().amax(-1)
    step = torch.where(top > 0, top / 127, torch.ones_like(top))
    return torch.round(xf / step[..., None]).to(torch.int8).reshape(x.shape), step, xf.sum(-1)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_quantize_rows_matches_torch(dtype):
    x = (torch.randn(3, 384, generator=torch.Generator().manual_seed(0)) * 5).to(dtype)
    x[1, 128:256] = 0  # an all-zero group
    xq, dx, xsum = np.empty((3, 384), np.int8), np.empty((3, 3), np.float32), np.empty((3, 3), np.float32)
    cpu_vnni.quantize_rows(cpu_matmul.as_array(x), xq, dx, xsum)
    ref_q, ref_step, ref_sum = _quantized_activations(x)
    assert (torch.from_numpy(xq).int() - ref_q.int()).abs().max() <= 1  # a tie may round either way after fastmath
    torch.testing.assert_close(torch.from_numpy(dx), ref_step, rtol=1e-6, atol=0)
    torch.testing.assert_close(torch.from_numpy(xsum), ref_sum, rtol=1e-5, atol=1e-5)
    assert dx[1, 1] == 1.0 and not xq[1, 128:256].any()


@pytest.mark.parametrize("n,k", [(1, 128), (31, 256), (100, 1024), (257, 2816)])
@pytest.mark.parametrize("rows", [1, 3, 4, 5, 16])
def test_vnni_kernel_matches_its_plain_twin(n, k, rows):
    g = torch.Generator().manual_seed(n * 5 + k + rows)
    p, s, z = quantize_int4(torch.randn(n, k, generator=g) * 3 + 1, 128)
    s32, z32 = s.float(), z.float()
    x = torch.randn(rows, k, generator=g)
    xq, dx, xsum = (t.numpy() for t in _quantized_activations(x))
    out = np.empty((rows, n), np.float32)
    cpu_vnni.rows_times_int4_q8(p.numpy(), s32.numpy(), z32.numpy(), xq, dx, xsum, out)
    codes = unpack_int4(p, k // 128).double()  # [n, groups, 128]
    dots = torch.einsum("ngj,rgj->rng", codes, torch.from_numpy(xq).double().view(rows, -1, 128))
    ref = (dots * s32.double()[None] * torch.from_numpy(dx).double()[:, None]).sum(-1)
    ref += torch.from_numpy(xsum).double() @ z32.double().T
    torch.testing.assert_close(torch.from_numpy(out).double(), ref, rtol=1e-5, atol=2e-5 * k**0.5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_int4_product_is_close_to_the_dequantized_reference(dtype):
    """The activations' rounding to int8 (steps of 1/127 of each group's largest value) leaves about 0.7% of
    the output's norm here, bf16 outputs about 0.3% more."""
    g = torch.Generator().manual_seed(1)
    p, s, z = quantize_int4(torch.randn(200, 512, generator=g), 128)
    x = torch.randn(2, 1, 512, generator=g).to(dtype)
    with torch.no_grad():
        out = cpu_vnni.linear(x, p, s.float(), z.float())
    ref = F.linear(x.double(), dequantize_int4(p, s, z, torch.float64))
    assert out is not None and out.dtype == dtype and out.shape == (2, 1, 200)
    err = (out.double() - ref).norm() / ref.norm()
    assert err < (0.01 if dtype == torch.float32 else 0.015)
    assert cpu_vnni.linear(torch.randn(17, 512), p, s.float(), z.float()) is None  # prefill: not this path
    p64, s64, z64 = quantize_int4(torch.randn(8, 512, generator=g), 64)
    assert not cpu_vnni.applies(tuple(p64.shape), s64.shape[1])  # groups of 64: another path


def test_quantized_model_decodes_through_vnni_like_the_dequantizing_twin():
    torch.manual_seed(3)
    plain = quantize_model(Transformer(get_config("tiny", dim=128, n_heads=4)).eval(), 4, 128)
    fast = copy.deepcopy(plain)
    install_cpu_kernels(fast)
    assert all(m.vnni and m.int4pack is None for m in fast.modules() if isinstance(m, FastQuantLinear))
    ids = torch.tensor([[7, 1, 8, 8, 3]])
    with torch.no_grad():
        a, b = fast(ids[:, -1:]), plain(ids[:, -1:])
    assert F.cosine_similarity(a.flatten(), b.flatten(), dim=0) > 0.999
    params = SamplingParams.greedy_decoding(8, eos_id=None)
    prompts = [[5, 9, 2], [7, 1, 8, 8, 3, 4, 6]]
    plain_out = Decoder(plain, cpu_kernels=False).generate(prompts, params)
    fast_out = Decoder(fast).generate(prompts, params)
    assert [len(c.ids) for c in fast_out] == [len(c.ids) for c in plain_out] == [8, 8]
