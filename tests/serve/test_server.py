"""`dclm serve` end to end: the official openai client, concurrency, errors, disconnects, SIGTERM."""

from concurrent.futures import ThreadPoolExecutor

import pytest

openai = pytest.importorskip("openai")
import httpx2 as httpx  # noqa: E402  (openai's own HTTP client)

PROMPTS = ["the quick brown", "fox", "jumps over the lazy dog.", "A stop", "User: the", "lazy lazy"]


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)


def complete(client, prompt, n=12, **kw):
    r = client.completions.create(model="tiny", prompt=prompt, max_tokens=n, temperature=0, **kw)
    return r.choices[0].text, r.choices[0].finish_reason, r.usage


def test_completions_and_models(client, server):
    text, reason, usage = complete(client, "the quick brown", n=10)
    assert reason == "length" and usage.completion_tokens == 10
    assert usage.prompt_tokens > 0 and usage.total_tokens == usage.prompt_tokens + 10
    assert [m.id for m in client.models.list().data] == ["tiny", "ft"]
    assert httpx.get(server.url + "/health").json()["status"] == "ok"


def test_streaming_matches_non_streaming(client):
    text, _, _ = complete(client, "the quick brown", n=16)
    chunks = list(client.completions.create(model="tiny", prompt="the quick brown", max_tokens=16, temperature=0,
                                            stream=True, stream_options={"include_usage": True}))
    assert "".join(c.choices[0].text for c in chunks if c.choices) == text
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    assert chunks[-1].usage.completion_tokens == 16

    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "the lazy dog"}]
    full = client.chat.completions.create(model="tiny", messages=messages, max_tokens=12, temperature=0)
    assert full.choices[0].message.role == "assistant" and full.usage.completion_tokens <= 12
    streamed = client.chat.completions.create(model="tiny", messages=messages, max_tokens=12, temperature=0,
                                              stream=True)
    parts = [c.choices[0].delta.content or "" for c in streamed]
    assert "".join(parts) == full.choices[0].message.content


def test_concurrent_greedy_equals_sequential(client, server):
    lengths = [5, 20, 9, 30, 14, 3]
    sequential = [complete(client, p, n)[:2] for p, n in zip(PROMPTS, lengths)]
    with ThreadPoolExecutor(len(PROMPTS)) as pool:
        concurrent = list(pool.map(lambda pn: complete(client, *pn)[:2], zip(PROMPTS, lengths)))
    assert concurrent == sequential
    assert httpx.get(server.url + "/health").json()["peak_batch"] > 1  # they really shared decode steps


def test_seed_and_stop(client):
    kw = dict(model="tiny", prompt="the quick", max_tokens=20, temperature=0.9, top_p=0.9)
    a = client.completions.create(seed=7, **kw).choices[0].text
    with ThreadPoolExecutor(3) as pool:  # a seeded request samples the same tokens inside a batch
        same = list(pool.map(lambda _: client.completions.create(seed=7, **kw).choices[0].text, range(3)))
    assert same == [a] * 3
    text, _, _ = complete(client, "the quick brown", n=20)
    stop = text[len(text) // 2 : len(text) // 2 + 2]
    cut, reason, _ = complete(client, "the quick brown", n=20, stop=[stop])
    assert reason == "stop" and cut == text[: text.index(stop)]


def test_errors_are_openai_4xx_and_server_keeps_serving(client, server):
    url = server.url + "/v1/completions"
    cases = [
        (dict(content=b"{not json"), 400, "invalid_json"),
        (dict(json={"model": "nope", "prompt": "x"}), 404, "model_not_found"),
        (dict(json={"model": "tiny", "prompt": "the " * 200}), 400, "context_length_exceeded"),
        (dict(json={"model": "tiny", "prompt": "x", "max_tokens": 65}), 400, None),
        (dict(json={"model": "tiny", "prompt": "x", "temperature": -1}), 400, None),
        (dict(json={"model": "tiny"}), 400, None),
        (dict(content=b'{"model": "tiny", "prompt": "' + b"a" * 5000 + b'"}'), 413, "request_too_large"),
    ]
    for kwargs, status, code in cases:
        r = httpx.post(url, headers={"content-type": "application/json"}, **kwargs)
        assert r.status_code == status, r.text
        err = r.json()["error"]
        assert err["message"] and err["type"] == "invalid_request_error" and err["code"] == code
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
    assert complete(client, "fox", n=4)[1] == "length"


def test_adapter_chosen_by_model_name(client, tiny_dir, adapter_dir):
    import dclm.hf  # noqa: F401
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from dclm.generate.engine import generate_text
    from dclm.generate.sampling import SamplingParams
    from dclm.generate.tokenizer import load_tokenizer

    merged = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_dir), adapter_dir).merge_and_unload()
    tok = load_tokenizer(tiny_dir)
    want = generate_text(merged.model, tok, ["the lazy"], SamplingParams.greedy_decoding(10))[0].text

    def ask(model):
        r = client.completions.create(model=model, prompt="the lazy", max_tokens=10, temperature=0)
        return r.choices[0].text

    with ThreadPoolExecutor(4) as pool:  # base and adapter rows in the same decode steps
        got = list(pool.map(ask, ["ft", "tiny", "ft", "tiny"]))
    assert got[0] == got[2] == want
    assert got[1] == got[3] == ask("tiny") != want


def test_disconnected_stream_leaves_the_batch(client, server):
    with httpx.stream("POST", server.url + "/v1/completions", timeout=30,
                      json={"model": "tiny", "prompt": "the", "max_tokens": 64, "stream": True,
                            "temperature": 0, "stop": ["never"]}) as r:
        next(r.iter_lines())  # one event, then hang up
    assert complete(client, "fox", n=8)[1] == "length"
    health = httpx.get(server.url + "/health").json()
    assert health["running"] == 0 and health["waiting"] == 0


def test_sigterm_shuts_down_cleanly(tiny_dir, start_server):
    s = start_server("--model", str(tiny_dir))
    r = httpx.post(s.url + "/v1/completions", json={"model": "tiny", "prompt": "the", "max_tokens": 4})
    assert r.status_code == 200
    rc, out = s.stop()
    assert rc == 0, out
    assert "Application shutdown complete" in out and "stopped after 1 requests" in out
