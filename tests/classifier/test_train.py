import json

import pytest

from dclm.cli import main
from dclm.errors import DclmError
from dclm.io import write_pages
from dclm.classifier.model import CC_LABEL, HQ_LABEL, hq_probs, load_model
from dclm.classifier.train import FastTextParams, card_path, train_classifier

from .conftest import make_pages

SMALL = FastTextParams(bucket=50_000)


def test_synthetic_task_reaches_auc(trained):
    path, card = trained
    m = card["valid_metrics"]
    assert m["examples"] == 400 and m["positives"] + m["negatives"] == 400
    assert m["roc_auc"] >= 0.95
    assert m["precision"] is not None and m["recall"] is not None


def test_model_card(trained):
    path, card = trained
    on_disk = json.loads(open(card_path(path)).read())
    assert on_disk == card
    assert card["positive"]["examples"] == 1000 and card["negative"]["examples"] == 1000
    assert card["positive"]["shards"] == 2 and card["train_examples"] == 1600
    hp = card["hyperparameters"]
    assert (hp["lr"], hp["dim"], hp["ws"], hp["epoch"], hp["minCount"], hp["wordNgrams"], hp["thread"], hp["seed"]) == \
        (0.1, 100, 5, 5, 1, 2, 1, 42)
    assert card["reproducible"] and card["fasttext"].startswith("fasttext")
    assert len(card["model_sha256"]) == 64
    assert sorted(load_model(path).labels) == [CC_LABEL, HQ_LABEL]


def test_same_seed_same_model(task_dir, tmp_path):
    kw = dict(params=SMALL, max_examples_per_class=300, valid_fraction=0.1)
    pos, neg = [str(task_dir / "positive")], [str(task_dir / "negative")]
    a = train_classifier(pos, neg, str(tmp_path / "a.bin"), **kw).card
    b = train_classifier(pos, neg, str(tmp_path / "b.bin"), **kw).card
    assert a["model_sha256"] == b["model_sha256"]
    texts = [p["text"] for p in make_pages(50, "hq", seed=99) + make_pages(50, "cc", seed=99)]
    assert hq_probs(load_model(str(tmp_path / "a.bin")), texts) == hq_probs(load_model(str(tmp_path / "b.bin")), texts)
    c = train_classifier(pos, neg, str(tmp_path / "c.bin"), params=FastTextParams(bucket=50_000, seed=7),
                         max_examples_per_class=300, valid_fraction=0.1).card
    assert c["model_sha256"] != a["model_sha256"]


def test_sampling_limits(task_dir, tmp_path):
    card = train_classifier([str(task_dir / "positive")], [str(task_dir / "negative")], str(tmp_path / "m.bin"),
                            params=SMALL, max_examples_per_class=200, negative_sample=120).card
    assert card["positive"]["examples"] == 200 and card["positive"]["eligible_pages"] == 1000
    assert card["negative"]["examples"] == 120 and card["negative"]["sampled"]
    assert card["valid_metrics"] is None and card["train_examples"] == 320


def test_empty_positive_set(tmp_path, task_dir):
    write_pages(str(tmp_path / "pos" / "a.jsonl"), [{"id": 1, "url": "x"}, {"text": "  \n "}])
    with pytest.raises(DclmError, match="no positive examples in --positive .*1 without text, 1 empty"):
        train_classifier([str(tmp_path / "pos")], [str(task_dir / "negative")], str(tmp_path / "m.bin"), params=SMALL)
    assert not (tmp_path / "m.bin").exists()


def test_cli_train_errors_are_one_line(tmp_path, task_dir, capsys):
    (tmp_path / "empty").mkdir()
    write_pages(str(tmp_path / "empty" / "a.jsonl"), [])
    rc = main(["classifier", "train", "--positive", str(tmp_path / "empty"), "--negative", str(task_dir / "negative"),
               "--output", str(tmp_path / "m.bin"), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("dclm: no positive examples") and err.count("\n") == 1
    rc = main(["classifier", "train", "--positive", str(tmp_path / "missing"), "--negative", str(task_dir / "negative"),
               "--output", str(tmp_path / "m.bin")])
    assert rc == 2 and "input not found" in capsys.readouterr().err
    rc = main(["classifier", "train", "--positive", str(task_dir / "positive"), "--negative", str(task_dir / "negative"),
               "--output", str(tmp_path / "m.bin"), "--valid-fraction", "1.5"])
    assert rc == 2 and "--valid-fraction" in capsys.readouterr().err


def test_cli_train(tmp_path, task_dir, capsys):
    rc = main(["classifier", "train", "--positive", str(task_dir / "positive"), "--negative", str(task_dir / "negative"),
               "--output", str(tmp_path / "cli.bin"), "--bucket", "20000", "--max-examples-per-class", "200",
               "--valid-fraction", "0.25", "--no-progress"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "ROC-AUC" in out and (tmp_path / "cli.card.json").exists()


def test_inputs_with_the_same_file_names_are_all_read(tmp_path, task_dir):
    write_pages(str(tmp_path / "x" / "a.jsonl"), make_pages(30, "hq", seed=1))
    write_pages(str(tmp_path / "y" / "a.jsonl"), make_pages(20, "hq", seed=2))
    card = train_classifier([str(tmp_path / "x"), str(tmp_path / "y"), str(tmp_path / "x" / "a.jsonl")],
                            [str(task_dir / "negative")], str(tmp_path / "m.bin"), params=SMALL, negative_sample=50).card
    assert card["positive"]["shards"] == 2 and card["positive"]["examples"] == 50


def test_result_carries_the_card(task_dir, tmp_path):
    out = str(tmp_path / "m.bin")
    result = train_classifier([str(task_dir / "positive")], [str(task_dir / "negative")], out, params=SMALL,
                              max_examples_per_class=100, valid_fraction=0.2)
    assert result.model == out and result.card_path == card_path(out)
    assert json.loads(open(result.card_path).read()) == result.card
    assert (result.positive_examples, result.negative_examples, result.train_examples + result.valid_examples) == (100, 100, 200)
    assert result.valid_metrics == result.card["valid_metrics"] and result.valid_metrics["examples"] == 40
