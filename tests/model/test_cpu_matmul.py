"""The few-row CPU decode kernels against their plain twins: F.linear for float32/bf16 weights, the
dequantized matrix (dclm.generate.quantize) for int8/int4."""

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from dclm.generate.engine import Decoder
from dclm.generate.sampling import SamplingParams
from dclm.model import Transformer, cpu_dot, cpu_matmul, get_config
from dclm.generate.cpu import FastLinear
from dclm.generate.quantize import (dequantize_int4, dequantize_int8, group_size_for, quantize_int4,
                                    quantize_int8, unpack_int4)


@pytest.mark.parametrize("n,k", [(1, 1), (31, 7), (33, 64), (100, 130), (257, 512)])
@pytest.mark.parametrize("rows", [1, 3, 16])
def test_kernel_matches_float64_reference(n, k, rows):
    g = torch.Generator().manual_seed(n * 1000 + k + rows)
    w, x = torch.randn(n, k, generator=g), torch.randn(rows, k, generator=g)
    with torch.no_grad():
        out = cpu_matmul.linear(x, w)
    ref = (x.double() @ w.double().T).float()
    assert out is not None and out.shape == (rows, n)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5 * k**0.5)
    torch.testing.assert_close(out, F.linear(x, w), rtol=1e-5, atol=1e-5 * k**0.5)


def test_leading_dimensions_and_strided_input_are_kept():
    w = torch.randn(40, 24)
    x = torch.randn(2, 24, 3).transpose(1, 2)  # [2, 3, 24], not contiguous
    with torch.no_grad():
        out = cpu_matmul.linear(x, w)
    assert out.shape == (2, 3, 40)
    torch.testing.assert_close(out, F.linear(x, w), rtol=1e-5, atol=1e-5)


def test_result_does_not_depend_on_thread_count():
    w, x = torch.randn(300, 96), torch.randn(4, 96)
    before = torch.get_num_threads()
    try:
        outs = []
        for t in (1, 2):
            torch.set_num_threads(t)
            with torch.no_grad():
                outs.append(cpu_matmul.linear(x, w))
    finally:
        torch.set_num_threads(before)
    assert torch.equal(outs[0], outs[1])


def test_falls_back_where_the_path_does_not_apply():
    w = torch.randn(8, 4)
    x = torch.randn(2, 4)
    assert cpu_matmul.linear(torch.randn(17, 4), w) is None  # too many rows
    assert cpu_matmul.linear(x.double(), w.double()) is None
    assert cpu_matmul.linear(x, w.T.contiguous().T) is None  # weight not contiguous
    wg = torch.randn(8, 4, requires_grad=True)
    assert cpu_matmul.linear(x, wg) is None  # a gradient is needed
    with torch.no_grad():
        assert cpu_matmul.linear(x, wg) is not None


def test_a_forked_child_falls_back_instead_of_being_terminated():
    import os

    w, x = torch.randn(64, 64), torch.randn(1, 64)
    with torch.no_grad():
        assert cpu_matmul.linear(x, w) is not None  # the pool runs in this process
        pid = os.fork()
        if pid == 0:
            lin = FastLinear(torch.nn.Parameter(w))
            ok = cpu_matmul.linear(x, w) is None and torch.equal(lin(x), F.linear(x, w))
            os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_fast_linear_keeps_gradients_and_values():
    lin = FastLinear(torch.nn.Parameter(torch.randn(5, 6)))
    x = torch.randn(1, 6, requires_grad=True)
    lin(x).sum().backward()  # grad mode: F.linear, differentiable
    assert x.grad is not None and lin.weight.grad is not None
    with torch.no_grad():
        torch.testing.assert_close(lin(x), F.linear(x, lin.weight), rtol=1e-6, atol=1e-6)


def test_use_huge_pages_keeps_parameters_and_values(tiny_model):
    params = {n: (p, p.detach().clone()) for n, p in tiny_model.named_parameters()}
    linears = [m.weight for m in tiny_model.modules() if isinstance(m, torch.nn.Linear)]
    moved = cpu_matmul.use_huge_pages(linears)
    assert moved >= sum(w.numel() * 4 for w in linears)
    for n, p in tiny_model.named_parameters():
        assert p is params[n][0] and torch.equal(p, params[n][1])
    assert cpu_matmul.use_huge_pages(linears) == 0  # already there
    x = torch.randint(0, tiny_model.args.vocab_size, (1, 5))
    with torch.no_grad():
        tiny_model(x).sum()  # still runs on the moved weights


def test_use_huge_pages_moves_a_tied_weight_once():
    model = Transformer(dataclasses.replace(get_config("tiny"), weight_tying=True))
    assert model.output.weight is model.tok_embeddings.weight
    assert cpu_matmul.use_huge_pages([model.output.weight, model.tok_embeddings.weight]) == model.output.weight.numel() * 4
    assert model.output.weight is model.tok_embeddings.weight


def test_decoding_with_and_without_the_fast_path_agree(tiny_model, monkeypatch):
    prompts = [[5, 9, 2], [7, 1, 8, 8, 3, 4, 6]]
    params = SamplingParams.greedy_decoding(12, eos_id=None)
    fast = [c.ids for c in Decoder(tiny_model).generate(prompts, params)]
    monkeypatch.setattr(cpu_matmul, "ENABLED", False)
    slow = [c.ids for c in Decoder(tiny_model).generate(prompts, params)]
    assert fast == slow
    ids = torch.tensor([prompts[1]])
    assert all(isinstance(m, FastLinear) for m in (tiny_model.output, tiny_model.layers[0].feed_forward.w3))
    with torch.no_grad():
        slow_logits = tiny_model(ids[:, -1:])
        monkeypatch.setattr(cpu_matmul, "ENABLED", True)
        fast_logits = tiny_model(ids[:, -1:])
    torch.testing.assert_close(fast_logits, slow_logits, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("masked", [False, True])
def test_single_query_attention_equals_sdpa(masked):
    from dclm.model.openlm import _attend_one_query

    g = torch.Generator().manual_seed(3)
    q, k, v = (torch.randn(2, 4, n, 16, generator=g) for n in (1, 9, 9))
    mask = torch.rand(2, 1, 1, 9, generator=g) > 0.4 if masked else None
    if masked:
        mask[..., -1] = True  # every row keeps at least its own column, as the decoder's masks do
    torch.testing.assert_close(_attend_one_query(q, k, v, mask),
                               F.scaled_dot_product_attention(q, k, v, attn_mask=mask), rtol=1e-5, atol=1e-6)


SHAPES = [(1, 2), (31, 6), (33, 64), (100, 130), (257, 512)]  # output rows not a multiple of the 32-row block


@pytest.mark.parametrize("n,k", SHAPES)
@pytest.mark.parametrize("rows", [1, 3, 5, 16])
def test_bf16_kernel_matches_f_linear(n, k, rows):
    g = torch.Generator().manual_seed(n * 7 + k + rows)
    w = torch.randn(n, k, generator=g).bfloat16()
    for x in (torch.randn(rows, k, generator=g), torch.randn(rows, k, generator=g).bfloat16()):
        with torch.no_grad():
            out = cpu_matmul.linear(x, w)
        if x.dtype == torch.bfloat16 and _torch_takes_bf16(rows):
            assert out is None
            continue
        assert out is not None and out.dtype == x.dtype and out.shape == (rows, n)
        ref = (x.double() @ w.double().T).to(x.dtype)  # bf16 -> float32 is exact: only the sum order differs
        torch.testing.assert_close(out, ref, rtol=1e-2 if x.dtype == torch.bfloat16 else 1e-5, atol=1e-4 * k**0.5)


@pytest.mark.parametrize("n,k", SHAPES)
@pytest.mark.parametrize("rows", [1, 5])
def test_widening_bf16_kernel_rounds_like_torch(n, k, rows):
    """Given bf16 activations, the plain kernel's own rounding of its float32 sums is torch's .bfloat16()
    (nearest, ties to even)."""
    g = torch.Generator().manual_seed(n + k + rows)
    w = torch.randn(n, k, generator=g).bfloat16().view(torch.int32).numpy().view("uint32")
    x = torch.randn(rows, k, generator=g).bfloat16()
    bits, sums = torch.empty(rows, n, dtype=torch.bfloat16), torch.empty(rows, n)
    cpu_matmul.rows_times_bf16(w, x.view(torch.uint16).numpy(), bits.view(torch.uint16).numpy())
    cpu_matmul.rows_times_bf16(w, x.float().numpy(), sums.numpy())
    assert torch.equal(bits, sums.bfloat16())


@pytest.mark.parametrize("n,k", [(1, 1), (31, 7), (33, 64), (100, 130), (257, 512), (40, 1000)])  # tails, odd K
@pytest.mark.parametrize("rows", [1, 3, 4, 5, 16])
def test_f32_dot_kernel_matches_its_plain_twin(n, k, rows):
    """The four-chain float32 kernel sums the same products in another order: within float tolerance of
    numba's own loop and of float64."""
    g = torch.Generator().manual_seed(n * 5 + k + rows)
    w, x = torch.randn(n, k, generator=g), torch.randn(rows, k, generator=g)
    fast, plain = torch.empty(rows, n), torch.empty(rows, n)
    cpu_dot.rows_times_dot(w.numpy(), x.numpy(), fast.numpy())
    cpu_matmul.rows_times_weight(w.numpy(), x.numpy(), plain.numpy())
    torch.testing.assert_close(fast, plain, rtol=1e-5, atol=1e-5 * k**0.5)
    torch.testing.assert_close(fast.double(), x.double() @ w.double().T, rtol=1e-5, atol=1e-5 * k**0.5)
    with torch.no_grad():
        assert torch.equal(cpu_matmul.linear(x, w), fast)  # the path float32 models decode through


@pytest.mark.skipif(not cpu_dot.bf16_available(), reason="this CPU lacks AVX-512 BF16")
@pytest.mark.parametrize("n,k", SHAPES + [(5, 33), (64, 96), (40, 1000)])  # whole 32-chunks, tails, odd K
@pytest.mark.parametrize("rows", [1, 3, 4, 5, 16])
def test_bf16_dot_kernel_matches_its_plain_twin(n, k, rows):
    """vdpbf16ps sums the same exact products in float32 in another order: the bf16 results are within a
    bf16 rounding of the float64 reference and of the widening kernel's."""
    g = torch.Generator().manual_seed(n * 3 + k + rows)
    w, x = torch.randn(n, k, generator=g).bfloat16(), torch.randn(rows, k, generator=g).bfloat16()
    fast = torch.empty(rows, n, dtype=torch.bfloat16)
    cpu_dot.rows_times_dot(w.view(torch.uint16).numpy(), x.view(torch.uint16).numpy(), fast.view(torch.uint16).numpy())
    ref = x.double() @ w.double().T
    torch.testing.assert_close(fast.double(), ref, rtol=2**-8, atol=1e-5 * k**0.5)
    if k % 2 == 0:
        plain = torch.empty(rows, n, dtype=torch.bfloat16)
        cpu_matmul.rows_times_bf16(w.view(torch.int32).numpy().view("uint32"), x.view(torch.uint16).numpy(),
                                   plain.view(torch.uint16).numpy())
        torch.testing.assert_close(fast, plain, rtol=2**-7, atol=1e-5 * k**0.5)
    with torch.no_grad():
        via = cpu_matmul.linear(x, w)  # the path bf16 models decode through
    assert via is None if _torch_takes_bf16(rows) else torch.equal(via, fast)


def _torch_takes_bf16(rows: int) -> bool:
    """Whether bf16 x bf16 products of this many rows are left to torch's AMX product."""
    return cpu_dot.host_has("amx-bf16") and rows > cpu_matmul._TORCH_BF16_ROWS


@pytest.mark.skipif(not _torch_takes_bf16(8), reason="no AMX-BF16 here: dclm's kernel takes every row count")
def test_bf16_products_past_the_amx_crossover_go_to_torch():
    lin = FastLinear(torch.nn.Parameter(torch.randn(48, 64).bfloat16(), requires_grad=False))
    x = torch.randn(8, 64).bfloat16()
    with torch.no_grad():
        ref = F.linear(x, lin.weight)
        assert torch.equal(lin(x), ref)
        assert torch.equal(cpu_matmul.from_array(lin.decode(cpu_matmul.as_array(x))), ref)


def test_fast_linear_follows_its_weight_when_the_storage_moves():
    lin = FastLinear(torch.nn.Parameter(torch.randn(64, 32), requires_grad=False))
    x = torch.randn(1, 32)
    with torch.no_grad():
        lin(x)
        cpu_matmul.use_huge_pages([lin.weight])  # a new storage: the kept view would read the old one
        lin.weight.mul_(2)
        torch.testing.assert_close(lin(x), F.linear(x, lin.weight), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("n,k", SHAPES)
@pytest.mark.parametrize("rows", [1, 3, 5, 16])
def test_int8_kernel_matches_dequantized_reference(n, k, rows):
    g = torch.Generator().manual_seed(n * 11 + k + rows)
    q, s = quantize_int8(torch.randn(n, k, generator=g))
    x = torch.randn(1, rows, k, generator=g)  # leading dimensions kept
    with torch.no_grad():
        out = cpu_matmul.linear_int8(x, q, s.float())
    ref = F.linear(x.double(), dequantize_int8(q, s, torch.float64)).float()
    assert out is not None and out.shape == (1, rows, n)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5 * k**0.5)


@pytest.mark.parametrize("rows", [1, 5])
def test_int8_kernel_takes_bf16_activations(rows):
    """A bf16 model's activations go in as they are and come out rounded to bf16 once."""
    g = torch.Generator().manual_seed(rows)
    q, s = quantize_int8(torch.randn(70, 96, generator=g))
    x = torch.randn(rows, 96, generator=g).bfloat16()
    with torch.no_grad():
        out = cpu_matmul.linear_int8(x, q, s.float())
    ref = F.linear(x.double(), dequantize_int8(q, s, torch.float64))
    assert out is not None and out.dtype == torch.bfloat16
    torch.testing.assert_close(out.double(), ref.bfloat16().double(), rtol=1e-2, atol=1e-2)


@pytest.mark.parametrize("n,k,group", [(1, 2, 2), (31, 6, 6), (33, 64, 32), (100, 130, 130), (257, 512, 128), (40, 96, 32)])
@pytest.mark.parametrize("rows", [1, 2, 3, 5, 16])
def test_int4_kernel_matches_dequantized_reference(n, k, group, rows):
    g = torch.Generator().manual_seed(n * 13 + k + rows)
    p, s, z = quantize_int4(torch.randn(n, k, generator=g) * 3 + 1, group)
    x = torch.randn(rows, k, generator=g)
    with torch.no_grad():
        out = cpu_matmul.linear_int4(x, p, s.float(), z.float())
    ref = F.linear(x.double(), dequantize_int4(p, s, z, torch.float64)).float()
    assert out is not None and out.shape == (rows, n)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4 * k**0.5)


needs_int4pack = pytest.mark.skipif(not cpu_matmul.int4pack_ok(), reason="no torch CPU int4 kernel in dclm's repack layout")


@needs_int4pack
@pytest.mark.parametrize("n,k,group", [(64, 64, 32), (128, 256, 128), (192, 384, 64), (64, 512, 256)])
def test_int4_repack_equals_torchs_own_converter(n, k, group):
    g = torch.Generator().manual_seed(n + k)
    p, s, z = quantize_int4(torch.randn(n, k, generator=g), group)
    pack, sz = cpu_matmul.to_int4pack(p, s, z)
    codes = unpack_int4(p, k // group).reshape(n, k).to(torch.int32)
    assert torch.equal(pack, torch._convert_weight_to_int4pack_for_cpu(codes, 1))
    assert sz.shape == (k // group, n, 2) and sz.dtype == torch.bfloat16


@needs_int4pack
@pytest.mark.parametrize("n,k,group", [(64, 64, 32), (192, 384, 128), (128, 2816, 128)])
@pytest.mark.parametrize("rows", [1, 3, 16])
def test_torch_int4_kernel_matches_its_plain_twin(n, k, group, rows):
    """The twin: the dequantized matrix with the scales and zero points rounded as the kernel stores them
    (bf16, zero point z + 8 s) and the activations rounded to bf16, multiplied in float64."""
    g = torch.Generator().manual_seed(n * 7 + k + rows)
    p, s, z = quantize_int4(torch.randn(n, k, generator=g) * 3 + 1, group)
    pack, sz = cpu_matmul.to_int4pack(p, s, z)
    x = torch.randn(rows, k, generator=g).view(-1, 1, k)  # leading dimensions are kept
    with torch.no_grad():
        out = cpu_matmul.linear_int4pack(x, pack, sz)
    q = unpack_int4(p, k // group).double()
    scale, zero = (t.double().T[..., None] for t in sz.unbind(-1))
    w = ((q - 8) * scale + zero).view(n, k)
    ref = F.linear(x.bfloat16().double(), w).float()
    assert out is not None and out.shape == (rows, 1, n) and out.dtype == torch.float32
    torch.testing.assert_close(out, ref, rtol=1e-2, atol=1e-3 * k**0.5)


def test_torch_int4_layout_refuses_shapes_it_lacks():
    p, s, z = quantize_int4(torch.randn(96, 128), 64)  # 96 rows: not whole blocks of 64
    assert cpu_matmul.to_int4pack(p, s, z) is None
    p, s, z = quantize_int4(torch.randn(64, 96), 48)  # a group size the kernel has no variant for
    assert cpu_matmul.to_int4pack(p, s, z) is None


def test_int4_groups_that_do_not_tile_the_inputs():
    assert group_size_for(130, 128) == 26  # the largest even divisor below the request
    assert group_size_for(2816, 128) == 128 and group_size_for(96, 64) == 48
    with pytest.raises(Exception, match="odd"):
        group_size_for(129, 128)
    with pytest.raises(Exception, match="do not tile"):
        quantize_int4(torch.randn(4, 100), 64)
    p, s, z = quantize_int4(torch.randn(4, 128), 64)  # scales for 2 groups: a 4-group call does not apply
    assert cpu_matmul.linear_int4(torch.randn(1, 128), p, s.float()[:, :1].repeat(1, 4)[:, :3], z.float()[:, :1].repeat(1, 4)[:, :3]) is None


def test_quantized_kernels_fall_back_where_they_do_not_apply():
    q, s = quantize_int8(torch.randn(8, 16))
    assert cpu_matmul.linear_int8(torch.randn(17, 16), q, s.float()) is None  # too many rows
    assert cpu_matmul.linear_int8(torch.randn(1, 16), q, s) is None  # fp16 scales: the caller converts once
    assert cpu_matmul.linear_int8(torch.randn(1, 16, requires_grad=True), q, s.float()) is None
    with torch.no_grad():
        assert cpu_matmul.linear_int8(torch.randn(1, 16).double(), q, s.float()) is None
