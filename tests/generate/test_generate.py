"""Our decode loop, sampling and the generate CLI."""

import json
import os

import pytest
import torch

from dclm.cli import main
from dclm.generate.engine import Decoder, generate_text
from dclm.generate.quantize import quantize_model
from dclm.generate.sampling import SamplingParams, filter_top_k, filter_top_p, next_token
from dclm.generate.tokenizer import load_tokenizer

PROMPTS = [[5, 9, 2], [7, 1, 8, 8, 3, 4, 6], [11], [3, 3, 3, 3]]


def greedy(n=10, **kw):
    return SamplingParams.greedy_decoding(n, eos_id=None, **kw)


def naive_greedy(model, prompt, n):
    ids = list(prompt)
    for _ in range(n):
        with torch.no_grad():
            ids.append(int(model(torch.tensor([ids]))[0, -1].argmax()))
    return ids[len(prompt):]


def test_greedy_matches_full_recompute(tiny_model):
    out = Decoder(tiny_model).generate([PROMPTS[1]], greedy(12))
    assert out[0].ids == naive_greedy(tiny_model, PROMPTS[1], 12)
    assert out[0].finish_reason == "length"


def test_left_padded_batch_equals_one_at_a_time(tiny_model):
    dec = Decoder(tiny_model)
    batched = [c.ids for c in dec.generate(PROMPTS, greedy(10))]
    single = [dec.generate([p], greedy(10))[0].ids for p in PROMPTS]
    assert batched == single


def test_matches_transformers_generate(tiny_model):
    import dclm.hf

    hf = dclm.hf.from_transformer(tiny_model)
    with torch.no_grad():
        theirs = hf.generate(torch.tensor([PROMPTS[0]]), max_new_tokens=10, do_sample=False, eos_token_id=None)
    assert Decoder(tiny_model).generate([PROMPTS[0]], greedy(10))[0].ids == theirs[0, 3:].tolist()
    # with a repetition penalty as well (transformers applies it over the prompt too, as we do)
    with torch.no_grad():
        theirs = hf.generate(torch.tensor([PROMPTS[0]]), max_new_tokens=10, do_sample=False, eos_token_id=None,
                             repetition_penalty=1.3)
    assert Decoder(tiny_model).generate([PROMPTS[0]], greedy(10, repetition_penalty=1.3))[0].ids == theirs[0, 3:].tolist()


def test_eos_stops_a_row(tiny_model):
    first = Decoder(tiny_model).generate([PROMPTS[0]], greedy(3))[0].ids
    eos = first[2]
    out = Decoder(tiny_model).generate([PROMPTS[0], PROMPTS[1]], SamplingParams.greedy_decoding(10, eos_id=eos))
    assert out[0].ids == first[: first.index(eos)] and out[0].finish_reason == "eos"


def test_seeded_sampling_reproducible(tiny_model):
    p = SamplingParams(max_new_tokens=12, seed=7, eos_id=None, temperature=1.5, top_p=0.95)
    a = Decoder(tiny_model).generate(PROMPTS[:2], p)
    b = Decoder(tiny_model).generate(PROMPTS[:2], p)
    assert [c.ids for c in a] == [c.ids for c in b]
    c = Decoder(tiny_model).generate(PROMPTS[:2], SamplingParams(max_new_tokens=12, seed=8, eos_id=None, temperature=1.5, top_p=0.95))
    assert [x.ids for x in a] != [x.ids for x in c]


def test_filters_match_transformers_warpers():
    from transformers.generation.logits_process import (RepetitionPenaltyLogitsProcessor, TopKLogitsWarper,
                                                        TopPLogitsWarper)

    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 50, generator=g) * 3
    ids = torch.randint(0, 50, (3, 6), generator=g)
    for p in (0.1, 0.5, 0.8, 0.99):
        assert torch.equal(filter_top_p(logits, p), TopPLogitsWarper(p)(ids, logits.clone()))
    for k in (1, 5, 49):
        assert torch.equal(filter_top_k(logits, k), TopKLogitsWarper(k)(ids, logits.clone()))
    seen = torch.zeros(3, 50, dtype=torch.bool).scatter(1, ids, True)
    from dclm.generate.sampling import apply_repetition_penalty

    assert torch.allclose(apply_repetition_penalty(logits, seen, 1.1), RepetitionPenaltyLogitsProcessor(1.1)(ids, logits.clone()))


def test_greedy_is_argmax_without_penalty():
    logits = torch.tensor([[1.0, 3.0, 2.0]])
    seen = torch.tensor([[False, True, False]])
    assert next_token(logits, seen, SamplingParams.greedy_decoding(), None).item() == 1


def test_text_generation_with_stop_string(tiny_model, tiny_tokenizer_file):
    tok = load_tokenizer(path=str(tiny_tokenizer_file))
    p = SamplingParams.greedy_decoding(15, eos_id=None)
    full = generate_text(tiny_model, tok, ["the quick"], p)[0]
    assert full.text == tok.decode(full.ids)
    stop = full.text[len(full.text) // 2 : len(full.text) // 2 + 2]
    cut = generate_text(tiny_model, tok, ["the quick"], SamplingParams.greedy_decoding(15, eos_id=None, stop=[stop]))[0]
    assert cut.finish_reason == "stop" and stop not in cut.text and full.text.startswith(cut.text)


def test_generate_cli(tiny_dir, tmp_path, capsys):
    assert main(["generate", "--model", str(tiny_dir), "--prompt", "the lazy", "--greedy", "--max-new-tokens", "6"]) == 0
    streamed = capsys.readouterr().out
    assert streamed.startswith("the lazy") and streamed.endswith("\n")
    prompts = tmp_path / "p.jsonl"
    prompts.write_text("\n".join(json.dumps({"prompt": t}) for t in ["the fox", "a dog jumps over", "stop"]) + "\n")
    assert main(["generate", "--model", str(tiny_dir), "--prompts-file", str(prompts), "--greedy",
                 "--max-new-tokens", "6", "--batch-size", "2"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["prompt"] for r in rows] == ["the fox", "a dog jumps over", "stop"]
    # batched output equals one-prompt output
    assert main(["generate", "--model", str(tiny_dir), "--prompts-file", str(prompts), "--greedy",
                 "--max-new-tokens", "6", "--batch-size", "1"]) == 0
    assert [json.loads(line) for line in capsys.readouterr().out.splitlines()] == rows
    assert main(["generate", "--model", str(tiny_dir), "--prompt", "x", "--temperature", "0"]) == 2


@pytest.mark.gpu
def test_quantized_generate_on_cuda(tiny_model):
    m = quantize_model(tiny_model.to("cuda", torch.bfloat16), 4, 32)
    assert len(Decoder(m).generate([PROMPTS[0]], greedy(5))[0].ids) == 5


@pytest.mark.slow
def test_compiled_decode_step_matches_eager(tiny_model):
    eager = Decoder(tiny_model).generate(PROMPTS[:2], greedy(6))
    compiled = Decoder(tiny_model, compile=True)
    first = compiled.generate(PROMPTS[:2], greedy(6))
    again = compiled.generate(PROMPTS[:2], greedy(6))  # reuses the cache and the compiled step
    assert [c.ids for c in first] == [c.ids for c in again] == [c.ids for c in eager]


def test_greedy_pick_is_torchs_argmax_ties_included():
    logits = torch.randn(4, 1000, generator=torch.Generator().manual_seed(0))
    logits[1, 17] = logits[1, 900] = 50.0  # a tie: the first index wins, as torch's argmax
    logits[2] = 0.0
    seen = torch.zeros(4, 1000, dtype=torch.bool)
    picked = next_token(logits, seen, greedy(), None)
    assert picked.dtype == torch.int64 and torch.equal(picked, logits.argmax(-1))
    assert picked[1] == 17 and picked[2] == 0
    assert torch.equal(next_token(logits[:, ::2], seen[:, ::2], greedy(), None), logits[:, ::2].argmax(-1))  # strided


def test_openmp_threads_spin_briefly_unless_the_user_chose(monkeypatch):
    from dclm.generate import passive_openmp

    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    monkeypatch.delenv("GOMP_SPINCOUNT", raising=False)
    passive_openmp()
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE" and os.environ["GOMP_SPINCOUNT"] == "20000"
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    monkeypatch.delenv("GOMP_SPINCOUNT")
    passive_openmp()
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE" and "GOMP_SPINCOUNT" not in os.environ
