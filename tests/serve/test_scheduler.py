"""The continuous-batching scheduler against dclm.generate's one-batch decoder, without HTTP."""

import threading

import torch

from dclm.generate.engine import Decoder
from dclm.generate.sampling import SamplingParams
from dclm.model import Transformer, get_config
from dclm.serve.scheduler import GenRequest, Scheduler
from dclm.serve.text import TextTracker


class IdTokenizer:
    def decode(self, ids):
        return "".join(f"<{i}>" for i in ids)


def run_all(scheduler, jobs):
    """Submit (prompt, params) jobs at once; return [(ids, finish_reason)] in job order."""
    done = [threading.Event() for _ in jobs]
    texts, finals = [""] * len(jobs), [None] * len(jobs)

    def sink_for(i):
        def sink(e):
            texts[i] += e.text
            if e.finish_reason or e.error:
                finals[i] = e
                done[i].set()
        return sink

    for i, (prompt, params) in enumerate(jobs):
        scheduler.submit(GenRequest(prompt, params, sink_for(i)))
    for d in done:
        assert d.wait(30)
    ids = [[int(t) for t in s.strip("<>").split("><") if t] for s in texts]
    return ids, finals


def test_continuous_batching_matches_decoder():
    torch.manual_seed(0)
    model = Transformer(get_config("tiny")).eval()
    prompts = [[1, 2, 3, 4, 5], [7, 8], list(range(9, 30)), [3], [5, 6, 7], [11] * 4, [40, 41]]
    lengths = [12, 3, 20, 7, 15, 1, 9]
    ref = [Decoder(model).generate([p], SamplingParams.greedy_decoding(n, eos_id=None))[0].ids
           for p, n in zip(prompts, lengths)]
    sched = Scheduler(model, IdTokenizer(), max_batch_size=3, max_tokens_per_batch=16).start()
    try:  # 7 requests through 3 slots: requests join as others leave
        ids, finals = run_all(sched, [(p, SamplingParams.greedy_decoding(n, eos_id=None))
                                      for p, n in zip(prompts, lengths)])
        assert ids == ref
        assert [f.finish_reason for f in finals] == ["length"] * len(prompts)
        assert [f.completion_tokens for f in finals] == lengths
        assert sched.snapshot()["peak_batch"] == 3
    finally:
        sched.stop()


def test_seeded_sampling_ignores_batch_neighbours_and_context_limit():
    torch.manual_seed(0)
    model = Transformer(get_config("tiny")).eval()
    sched = Scheduler(model, IdTokenizer(), max_batch_size=4, context_length=24).start()
    try:
        p = SamplingParams(max_new_tokens=10, temperature=1.0, top_p=0.9, seed=3, eos_id=None)
        alone, _ = run_all(sched, [([1, 2, 3], p)])
        crowd, _ = run_all(sched, [([9, 9], SamplingParams(max_new_tokens=10, seed=1, eos_id=None)), ([1, 2, 3], p)])
        assert crowd[1] == alone[0]
        ids, finals = run_all(sched, [([1] * 20, SamplingParams.greedy_decoding(10, eos_id=None))])
        assert finals[0].finish_reason == "length" and len(ids[0]) == 4  # the cache holds 24 columns
    finally:
        sched.stop()


def test_text_tracker_holds_back_possible_stops():
    class Chars:
        def decode(self, ids):
            return "".join(chr(i) for i in ids)

    t = TextTracker(Chars(), ["END"])
    out = [t.push(ord(c)) for c in "abcEN"]
    assert "".join(d for d, _ in out) == "abc" and not any(hit for _, hit in out)
    assert t.push(ord("X")) == ("ENX", False)
    t2 = TextTracker(Chars(), ["END"])
    got = "".join(t2.push(ord(c))[0] for c in "xyEN")
    assert t2.push(ord("D")) == ("", True) and got + t2.flush() == "xy"
