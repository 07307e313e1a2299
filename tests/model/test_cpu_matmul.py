"""The few-row CPU matmul used while decoding, against F.linear (its plain twin) and in the decode loop."""

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from dclm.generate.engine import Decoder
from dclm.generate.sampling import SamplingParams
from dclm.model import Transformer, cpu_matmul, get_config
from dclm.model.openlm import Linear


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
            lin = Linear(64, 64, bias=False)
            ok = cpu_matmul.linear(x, w) is None and torch.equal(lin(x), F.linear(x, lin.weight))
            os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_linear_module_keeps_gradients_and_values():
    lin = Linear(6, 5, bias=False)
    x = torch.randn(1, 6, requires_grad=True)
    lin(x).sum().backward()  # grad mode: F.linear, differentiable
    assert x.grad is not None and lin.weight.grad is not None
    with torch.no_grad():
        torch.testing.assert_close(lin(x), F.linear(x, lin.weight), rtol=1e-6, atol=1e-6)


def test_use_huge_pages_keeps_parameters_and_values(tiny_model):
    params = {n: (p, p.detach().clone()) for n, p in tiny_model.named_parameters()}
    moved = cpu_matmul.use_huge_pages(tiny_model)
    assert moved >= sum(m.weight.numel() * 4 for m in tiny_model.modules() if isinstance(m, torch.nn.Linear))
    for n, p in tiny_model.named_parameters():
        assert p is params[n][0] and torch.equal(p, params[n][1])
    assert cpu_matmul.use_huge_pages(tiny_model) == 0  # already there
    x = torch.randint(0, tiny_model.args.vocab_size, (1, 5))
    with torch.no_grad():
        tiny_model(x).sum()  # still runs on the moved weights


def test_use_huge_pages_moves_a_tied_weight_once():
    model = Transformer(dataclasses.replace(get_config("tiny"), weight_tying=True))
    assert model.output.weight is model.tok_embeddings.weight
    cpu_matmul.use_huge_pages(model)
    assert model.output.weight is model.tok_embeddings.weight


def test_decoding_with_and_without_the_fast_path_agree(tiny_model, monkeypatch):
    prompts = [[5, 9, 2], [7, 1, 8, 8, 3, 4, 6]]
    params = SamplingParams.greedy_decoding(12, eos_id=None)
    fast = [c.ids for c in Decoder(tiny_model).generate(prompts, params)]
    monkeypatch.setattr(cpu_matmul, "ENABLED", False)
    slow = [c.ids for c in Decoder(tiny_model).generate(prompts, params)]
    assert fast == slow
    ids = torch.tensor([prompts[1]])
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
