import json
import os
import shutil

import numpy as np
import orjson
import pytest

from dclm.cli import main
from dclm.errors import DclmError
from dclm.process import ProcessConfig, run_process
from dclm.io import list_shards, read_pages, write_pages
from dclm.mappers import get
from dclm.classifier.model import CC_LABEL, DCLM_MODEL_DIR, hq_probs, load_model, resolve_model
from dclm.classifier.config import ScoreConfig
from dclm.classifier.score import score_shards
from dclm.runtime.rejects import read_rejects

from .conftest import make_pages

KEY = "fasttext_oh_eli5_vs_rw_v2_prob"


def process(pipeline, inputs, output, **kw):
    kw.setdefault("progress", False)
    return run_process(ProcessConfig(pipeline=pipeline, inputs=inputs, output=output, **kw))


def dclm_classify(model, content):
    """DCLM's classify_fasttext_hq_prob, line for line: the single-string, per-page twin."""
    text = " ".join(content.strip().splitlines())
    pred_label, pred_prob = model.predict(text)
    hq_prob = pred_prob[0]
    if pred_label[0] == CC_LABEL:
        hq_prob = 1 - hq_prob
    return hq_prob


def _sidecars(out):
    return {s.rel: read_pages(s.url, text_key=None) for s in list_shards(str(out))}


@pytest.fixture(scope="module")
def scored(trained, eval_shards, tmp_path_factory):
    out = tmp_path_factory.mktemp("scores")
    result = score_shards(ScoreConfig(model=trained[0], inputs=[str(eval_shards)], output=str(out), key=KEY,
                                      workers=1, batch_size=64, progress=False))
    return out, result


def test_sidecars_mirror_inputs_line_for_line(scored, eval_shards):
    out, result = scored
    assert sorted(_sidecars(out)) == ["CC/part-0.jsonl.zst", "CC/sub/part-1.jsonl", "other.jsonl.zst"]
    for shard in list_shards(str(eval_shards)):
        pages = read_pages(shard.url, text_key=None)
        recs = read_pages(str(out / (shard.rel if not shard.rel.endswith(".parquet") else "other.jsonl.zst")), text_key=None)
        assert len(recs) == len(pages)
        for page, rec in zip(pages, recs):
            assert rec["id"] == page["id"] and rec.get("url") == page.get("url")
            assert (rec[KEY] is None) == (not isinstance(page.get("text"), str))
    t = result.totals()
    assert (t["pages"], t["scored"], t["rejects"], t["shards_failed"]) == (803, 801, 2, 0)


def test_scores_equal_dclm_single_predict_and_the_enricher(scored, eval_shards, trained):
    out, _ = scored
    model = load_model(trained[0])
    enricher = get("classify_fasttext_hq_prob_enricher")(model_filename=trained[0], key=KEY)
    n = 0
    for shard in list_shards(str(eval_shards)):
        pages = [p for p in read_pages(shard.url, text_key=None) if isinstance(p.get("text"), str)]
        recs = [r for r in read_pages(str(out / shard.rel.replace(".parquet", ".jsonl.zst")), text_key=None) if r[KEY] is not None]
        batch = enricher.map_batch([dict(p) for p in pages])
        for page, rec, res in zip(pages, recs, batch):
            one = enricher(dict(page))[0][KEY]
            assert rec[KEY] == one == res[0][KEY] == dclm_classify(model, page["text"])
            assert type(one) is float
            n += 1
    assert n == 801


def test_pages_without_text_are_counted_rejects(scored):
    out, _ = scored
    rejects = read_rejects(str(out))
    assert [(r["record"]["id"], r["reason"]) for r in rejects] == [
        ("no-text", "missing 'text'"), ("list-text", "'text' is list, not a string")]
    assert {(r["stage"], r["step"]) for r in rejects} == {("classifier score", None)}
    assert all(r["file"].endswith("part-0.jsonl.gz") or "part-0" in r["file"] for r in rejects)
    manifest = json.loads(open(out / "_score.json").read())
    assert manifest["complete"] and manifest["key"] == KEY and manifest["totals"]["rejects"] == 2


def test_resume_skips_done_shards_and_refuses_another_model(scored, trained, eval_shards, tmp_path):
    out, first = scored
    again = score_shards(ScoreConfig(model=trained[0], inputs=[str(eval_shards)], output=str(out), key=KEY,
                                     workers=1, progress=False))
    assert all(s.skipped for s in again.shards) and again.totals() == {**first.totals(), "shards_skipped": 3}
    with pytest.raises(DclmError, match="another model or key"):
        score_shards(ScoreConfig(model=trained[0], inputs=[str(eval_shards)], output=str(out), key="other",
                                 workers=1, progress=False))
    # a crash mid-run leaves some sidecars: the rerun finishes the rest and the bytes equal an uninterrupted run
    part = tmp_path / "part"
    shutil.copytree(out, part)
    os.remove(part / "CC" / "sub" / "part-1.jsonl")
    redo = score_shards(ScoreConfig(model=trained[0], inputs=[str(eval_shards)], output=str(part), key=KEY,
                                    workers=1, progress=False))
    assert [s.skipped for s in redo.shards] == [True, False, True]
    assert (part / "CC" / "sub" / "part-1.jsonl").read_bytes() == (out / "CC" / "sub" / "part-1.jsonl").read_bytes()


def test_parallel_workers_give_identical_bytes(scored, trained, eval_shards, tmp_path):
    out, _ = scored
    score_shards(ScoreConfig(model=trained[0], inputs=[str(eval_shards)], output=str(tmp_path), key=KEY, workers=2,
                             batch_size=7, progress=False))
    for rel in ("CC/part-0.jsonl.zst", "CC/sub/part-1.jsonl", "other.jsonl.zst"):
        assert (tmp_path / rel).read_bytes() == (out / rel).read_bytes()


def test_enricher_in_a_yaml_pipeline(trained, tmp_path, monkeypatch):

    pages = make_pages(40, "hq", seed=3) + make_pages(40, "cc", seed=3)
    write_pages(str(tmp_path / "in" / "s.jsonl"), pages)
    (tmp_path / "q.yaml").write_text(
        f"- source: cc\n  steps:\n    - func: classify_fasttext_hq_prob_enricher\n      model_filename: {trained[0]}\n"
        f"      key: {KEY}\n")
    result = process(str(tmp_path / "q.yaml"), [str(tmp_path / "in")], str(tmp_path / "out"), workers=1, progress=False)
    assert result.ok
    processed = [p for p in (tmp_path / "out").rglob("*.jsonl") if "processed_data" in str(p)]
    got = read_pages(str(processed[0]))
    side = tmp_path / "side"
    score_shards(ScoreConfig(model=trained[0], inputs=[str(tmp_path / "in")], output=str(side), key=KEY, workers=1,
                             progress=False))
    assert [p[KEY] for p in got] == [r[KEY] for r in read_pages(str(side / "s.jsonl"), text_key=None)]


def test_enricher_refuses_to_overwrite_a_key(trained):
    enrich = get("classify_fasttext_hq_prob_enricher")(model_filename=trained[0])
    with pytest.raises(ValueError, match="cannot overwrite"):
        enrich({"text": "a", "fasttext_hq_prob": 0.3})
    ok = get("classify_fasttext_hq_prob_enricher")(model_filename=trained[0], overwrite=True)
    assert ok({"text": "a", "fasttext_hq_prob": 0.3})[0]["fasttext_hq_prob"] != 0.3


def test_model_resolution(trained, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / DCLM_MODEL_DIR).mkdir(parents=True)
    shutil.copy(trained[0], tmp_path / DCLM_MODEL_DIR / "fasttext_oh_eli5.bin")
    assert resolve_model("fasttext_oh_eli5.bin") == os.path.join(DCLM_MODEL_DIR, "fasttext_oh_eli5.bin")
    assert resolve_model(trained[0]) == trained[0]
    with pytest.raises(DclmError, match="fastText model not found: nope.bin"):
        resolve_model("nope.bin")
    monkeypatch.setenv("DCLM_ASSETS_DIR", str(tmp_path / "cache"))
    (tmp_path / "cache").mkdir()
    shutil.copy(trained[0], tmp_path / "cache" / "cached.bin")
    assert resolve_model("cached.bin") == str(tmp_path / "cache" / "cached.bin")


def test_missing_or_bad_model_is_a_one_line_error(eval_shards, tmp_path, capsys):
    rc = main(["classifier", "score", "--model", str(tmp_path / "missing.bin"), "--input", str(eval_shards),
               "--output", str(tmp_path / "o"), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("dclm: fastText model not found") and err.count("\n") == 1
    (tmp_path / "bad.bin").write_bytes(b"not a model")
    rc = main(["classifier", "score", "--model", str(tmp_path / "bad.bin"), "--input", str(eval_shards),
               "--output", str(tmp_path / "o"), "--no-progress"])
    assert rc == 2 and "cannot load fastText model" in capsys.readouterr().err
    with pytest.raises(DclmError, match="fastText model not found"):
        get("classify_fasttext_hq_prob_enricher")(model_filename="missing_model.bin")


def test_cli_score(trained, eval_shards, tmp_path, capsys):
    rc = main(["classifier", "score", "--model", trained[0], "--input", str(eval_shards / "CC" / "sub"),
               "--output", str(tmp_path), "--workers", "1", "--no-progress"])
    assert rc == 0 and "scored 201 of 201 pages" in capsys.readouterr().out
    recs = read_pages(str(tmp_path / "part-1.jsonl"), text_key=None)
    assert all(isinstance(r["fasttext_hq_prob"], float) for r in recs)


def test_batching_is_exact_for_odd_texts(trained):
    model = load_model(trained[0])
    texts = ["", "  \n\n ", "one line", "a\r\nb\u2028c\x0bd\x85e", "tab\tsep\x00nul", "ünïcödé 🙂 текст", "x " * 5000]
    assert hq_probs(model, texts) == [float(dclm_classify(model, t)) for t in texts]
    assert np.all(np.isfinite(hq_probs(model, texts)))


def test_same_relative_path_under_two_inputs_is_refused(trained, tmp_path):
    write_pages(str(tmp_path / "x" / "a.jsonl"), make_pages(3, "hq", seed=1))
    write_pages(str(tmp_path / "y" / "a.jsonl"), make_pages(3, "cc", seed=1))
    with pytest.raises(DclmError, match="same relative path 'a.jsonl'"):
        score_shards(ScoreConfig(model=trained[0], inputs=[str(tmp_path / "x"), str(tmp_path / "y")],
                                 output=str(tmp_path / "o"), workers=1, progress=False))
