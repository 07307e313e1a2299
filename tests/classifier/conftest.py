"""A seeded synthetic quality task: 'hq' pages lean on one vocabulary, 'cc' pages on another, both share
common words, so a classifier can separate them well but not perfectly."""

import random

import pytest

from dclm.io import write_pages

COMMON = [f"w{i}" for i in range(300)]
HQ_WORDS = [f"explain{i}" for i in range(60)]
CC_WORDS = [f"buy{i}" for i in range(60)]


def make_text(rng: random.Random, words: list[str], n_words: int, signal: float = 0.12) -> str:
    lines = []
    for _ in range(max(1, n_words // 12)):
        lines.append(" ".join(rng.choice(words) if rng.random() < signal else rng.choice(COMMON) for _ in range(12)))
    return "\n".join(lines) + "\n"


def make_pages(n: int, kind: str, seed: int, n_words: int = 60, prefix: str = "") -> list[dict]:
    rng = random.Random(f"{seed}/{kind}")
    words = HQ_WORDS if kind == "hq" else CC_WORDS
    return [{"id": f"{prefix}{kind}-{i}", "url": f"https://example.com/{prefix}{kind}/{i}",
             "text": make_text(rng, words, n_words)} for i in range(n)]


@pytest.fixture(scope="session")
def task_dir(tmp_path_factory):
    """positive/ and negative/ page shards (jsonl and jsonl.zst) for the synthetic task."""
    root = tmp_path_factory.mktemp("quality_task")
    hq = make_pages(1000, "hq", seed=1)
    cc = make_pages(1000, "cc", seed=1)
    write_pages(str(root / "positive" / "a.jsonl"), hq[:500])
    write_pages(str(root / "positive" / "b.jsonl.zst"), hq[500:])
    write_pages(str(root / "negative" / "pool.jsonl.gz"), cc)
    return root


@pytest.fixture(scope="session")
def trained(task_dir, tmp_path_factory):
    """(model path, card) trained once for the session with DCLM's recipe and a small bucket count."""
    from dclm.classifier.train import FastTextParams, train_classifier

    out = tmp_path_factory.mktemp("model") / "quality.bin"
    card = train_classifier([str(task_dir / "positive")], [str(task_dir / "negative")], str(out),
                            params=FastTextParams(bucket=50_000), valid_fraction=0.2).card
    return str(out), card


@pytest.fixture(scope="session")
def eval_shards(tmp_path_factory):
    """Mixed pages to score: two jsonl shards in nested folders and one parquet shard, plus pages without text."""
    root = tmp_path_factory.mktemp("to_score")
    a = make_pages(150, "hq", seed=7, prefix="a") + make_pages(350, "cc", seed=7, prefix="a")
    random.Random(3).shuffle(a)
    a.insert(10, {"id": "no-text", "url": "https://example.com/none"})
    a.insert(20, {"id": "list-text", "text": ["not", "a", "string"]})
    write_pages(str(root / "CC" / "part-0.jsonl.zst"), a)
    b = make_pages(60, "hq", seed=8, prefix="b") + make_pages(140, "cc", seed=8, prefix="b")
    b.append({"id": "empty", "url": "https://example.com/empty", "text": ""})
    write_pages(str(root / "CC" / "sub" / "part-1.jsonl"), b)
    c = make_pages(100, "cc", seed=9, prefix="c")
    write_pages(str(root / "other.parquet"), c)
    return root
