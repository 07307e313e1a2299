"""The lm-evaluation-harness adapter against dclm.eval's scorer and a direct forward pass (tiny random model)."""

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("lm_eval")

from lm_eval.api.instance import Instance  # noqa: E402
from lm_eval.api.model import LM  # noqa: E402
from lm_eval.api.registry import get_model  # noqa: E402

from dclm.eval.lmeval import DclmLM  # noqa: E402


def _requests(kind, args_list):
    return [Instance(request_type=kind, doc={}, arguments=args, idx=i) for i, args in enumerate(args_list)]


@pytest.fixture(scope="module")
def lm(tiny_dir):
    return DclmLM(pretrained=str(tiny_dir), batch_size=3, device="cpu", dtype="float32")


def _direct_logprob(model, ctx, cont):
    """Sum of log p(continuation | context) from one full forward of context + continuation, and greedy-ness."""
    ids = torch.tensor([list(ctx) + list(cont)])
    with torch.inference_mode():
        logp = model(ids)[0].double().log_softmax(-1)
    pos = torch.arange(len(ctx) - 1, len(ctx) + len(cont) - 1)
    target = torch.tensor(list(cont))
    return float(logp[pos, target].sum()), bool((logp[pos].argmax(-1) == target).all())


def test_registered_as_an_lm_eval_model():
    import lm_eval.api.registry as registry

    assert get_model("dclm") is DclmLM and issubclass(DclmLM, LM)
    assert "hf" in registry.model_registry  # registering first did not hide lm-eval's own models


def test_entry_point_names_the_class():
    from importlib.metadata import EntryPoint

    ep = EntryPoint(name="dclm", value="dclm.eval.lmeval:DclmLM", group="lm_eval.models")
    assert ep.load() is DclmLM  # the value pyproject.toml declares


def test_loglikelihood_equals_a_direct_forward_and_dclm_eval(lm):
    from dclm.eval.prompts import Row
    from dclm.eval.score import score_padded

    pairs = [("Question: what is item 1?\nAnswer:", " red 1"), ("Question: what is item 1?\nAnswer:", " blue"),
             ("Question: what is item 1?\nAnswer: ", "green sea"),  # trailing space moves to the continuation
             ("Tom saw 3 cats because Tom", " was curious."), ("", "fact number 4")]
    got = lm.loglikelihood(_requests("loglikelihood", pairs), disable_tqdm=True)
    rows = []
    for (ctx, cont), (ll, greedy) in zip(pairs, got):
        if ctx:
            c = ctx.rstrip()
            whole = lm.tok_encode(c + ctx[len(c):] + cont)
            c_ids = lm.tok_encode(c)
            c_ids, k_ids = c_ids, whole[len(c_ids):]
        else:
            c_ids, k_ids = [0], lm.tok_encode(cont)
        rows.append(Row(tuple(c_ids), tuple(k_ids)))
        want, want_greedy = _direct_logprob(lm.model, c_ids, k_ids)
        assert ll == pytest.approx(want, abs=1e-4) and greedy == want_greedy
    padded = score_padded(lm.model, rows, max_seq_len=64, batch_size=2)
    assert [ll for ll, _ in got] == pytest.approx([-s.ce_sum for s in padded], abs=1e-4)
    assert [g for _, g in got] == [s.exact for s in padded]


def test_long_inputs_lose_their_left_end(tiny_dir):
    short = DclmLM(pretrained=str(tiny_dir), device="cpu", max_length=8, max_gen_toks=2)
    ctx, cont = " ".join(f"w{i}" for i in range(40)), " w40 w41"
    (ll, _), = short.loglikelihood(_requests("loglikelihood", [(ctx, cont)]), disable_tqdm=True)
    whole = short.tok_encode(ctx + cont)
    n = len(whole) - len(short.tok_encode(ctx))
    seq = whole[-9:]  # max_length + 1 tokens: 8 inputs, the last n of them predicting the continuation
    assert ll == pytest.approx(_direct_logprob(short.model, seq[:-n], seq[-n:])[0], abs=1e-4)


def test_rolling_loglikelihood_predicts_every_token_once(tiny_dir):
    short = DclmLM(pretrained=str(tiny_dir), device="cpu", max_length=16, max_gen_toks=4)
    text = "HISTORY: fact number 1 answer 1 " * 6
    ids = short.tok_encode(text)
    assert len(ids) > 16  # several windows
    (got,) = short.loglikelihood_rolling(_requests("loglikelihood_rolling", [(text,)]), disable_tqdm=True)
    from lm_eval.utils import get_rolling_token_windows, make_disjoint_window

    windows = list(map(make_disjoint_window, get_rolling_token_windows(ids, 0, 16, 1)))
    assert sorted(t for _, k in windows for t in k) == sorted(ids)  # each token predicted once
    assert got == pytest.approx(sum(_direct_logprob(short.model, c, k)[0] for c, k in windows), abs=1e-4)


def test_generate_until_is_dclm_greedy_cut_at_the_stop(lm):
    from dclm.eval.answers import decode_generated
    from dclm.eval.greedy import generate_ours

    prompts = ["Question: what is 2 plus one?\nAnswer:", "What is 3 times two?"]
    reqs = _requests("generate_until", [(p, {"until": ["\n\n", "Q:"], "max_gen_toks": 6}) for p in prompts]
                     + [(prompts[0], {"until": "e", "max_gen_toks": 3})])
    got = lm.generate_until(reqs, disable_tqdm=True)
    for req, text in zip(reqs, got):
        p, kw = req.args
        until = [kw["until"]] if isinstance(kw["until"], str) else kw["until"]
        (ids,) = generate_ours(lm.model, [lm.tok_encode(p)], kw["max_gen_toks"], lm.tokenizer, until, 1)
        want = decode_generated(lm.tokenizer, ids)
        for s in until:
            want = want.split(s)[0]
        assert text == want
    with pytest.raises(Exception, match="greedily"):
        lm.generate_until(_requests("generate_until", [(prompts[0], {"do_sample": True, "temperature": 0.7})]))


def test_simple_evaluate_runs_a_local_task(lm, tmp_path, monkeypatch):
    """lm-eval's own evaluator on a task over a local JSONL (no hub): the accuracy it reports is the adapter's."""
    import json

    from lm_eval import evaluator
    from lm_eval.api.task import ConfigurableTask

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "cache"))
    docs = [{"q": f"Question: what is item {i}?", "choices": [f" red {i}", " blue"], "gold": i % 2} for i in range(4)]
    (tmp_path / "test.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    task = ConfigurableTask(config={
        "task": "dclm_local", "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"test": str(tmp_path / "test.jsonl")}}, "test_split": "test",
        "output_type": "multiple_choice", "doc_to_text": "{{q}}\nAnswer:", "doc_to_choice": "{{choices}}",
        "doc_to_target": "{{gold}}", "metric_list": [{"metric": "acc", "aggregation": "mean", "higher_is_better": True}]})
    res = evaluator.evaluate(lm=lm, task_dict={"dclm_local": task}, verbosity="ERROR")
    acc = res["results"]["dclm_local"]["acc,none"]
    picks = []
    for i in range(4):
        lls = [ll for ll, _ in lm.loglikelihood(_requests("loglikelihood", [
            (f"Question: what is item {i}?\nAnswer:", c) for c in (f" red {i}", " blue")]), disable_tqdm=True)]
        picks.append(int(lls[1] > lls[0]) == i % 2)
    assert acc == pytest.approx(sum(picks) / 4)


def test_bad_arguments_are_config_errors(tiny_dir, tmp_path):
    from dclm.runtime.config import ConfigError

    with pytest.raises(ConfigError, match="no such directory"):
        DclmLM(pretrained=str(tmp_path / "nope"))
    with pytest.raises(ConfigError, match="batch_size"):
        DclmLM(pretrained=str(tiny_dir), device="cpu", batch_size="many")
    with pytest.raises(ConfigError, match="dtype"):
        DclmLM(pretrained=str(tiny_dir), device="cpu", dtype="int8")
    assert DclmLM(pretrained=str(tiny_dir), device="cpu", batch_size="auto", max_batch_size=8).batch_size == 8
