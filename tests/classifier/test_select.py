import json
import shutil

import pytest

from dclm.cli import main
from dclm.errors import DclmError
from dclm.io import list_shards, read_pages, write_pages
from dclm.classifier.config import ScoreConfig, SelectConfig
from dclm.classifier.score import score_shards
from dclm.classifier.select import select_pages

KEY = "fasttext_oh_eli5_vs_rw_v2_prob"


@pytest.fixture(scope="module")
def attrs(trained, eval_shards, tmp_path_factory):
    out = tmp_path_factory.mktemp("attrs")
    score_shards(ScoreConfig(model=trained[0], inputs=[str(eval_shards)], output=str(out), key=KEY, workers=1,
                             progress=False))
    return out


def _all_scores(attrs):
    scores = []
    for s in list_shards(str(attrs)):
        scores += [r[KEY] for r in read_pages(s.url, text_key=None) if r[KEY] is not None]
    return scores


def _report(config):
    """select_pages' report dict, after checking that the result's fields repeat it."""
    result = select_pages(config)
    for name in ("pages", "scored_pages", "unscored_pages", "kept_pages", "threshold", "output"):
        assert getattr(result, name) == result.report[name]
    return result.report


def test_keep_top_fraction_keeps_ten_percent_and_reports_threshold(attrs, eval_shards, tmp_path):
    rep = _report(SelectConfig(attributes=str(attrs), keep_top_fraction=0.1, inputs=[str(eval_shards)],
                                    output=str(tmp_path / "kept"), progress=False))
    scored = rep["scored_pages"]
    assert scored == 801 and rep["unscored_pages"] == 2
    assert abs(rep["kept_pages"] - 0.1 * scored) <= 1
    scores = _all_scores(attrs)
    assert rep["threshold"] == sorted(scores, reverse=True)[rep["kept_pages"] - 1]
    kept = [p for s in list_shards(str(tmp_path / "kept")) if s.rel != "_select_report.json"
            for p in read_pages(s.url, text_key=None)]
    assert len(kept) == rep["kept_pages"]
    assert all(p[KEY] >= rep["threshold"] for p in kept)
    assert sorted(s.rel for s in list_shards(str(tmp_path / "kept"))) == ["CC/part-0.jsonl.zst", "CC/sub/part-1.jsonl", "other.parquet"]
    on_disk = json.loads((tmp_path / "kept" / "_select_report.json").read_text())
    assert on_disk["threshold"] == rep["threshold"] and sum(b["count"] for b in on_disk["histogram"]) == 801
    assert sum(b["count"] for b in on_disk["histogram_kept"]) == rep["kept_pages"]
    assert on_disk["ties"]["kept_at_threshold"] >= 1


def test_threshold_is_dclm_quality_filter(attrs, eval_shards, tmp_path):
    scores = _all_scores(attrs)
    t = sorted(scores)[len(scores) // 2]
    rep = _report(SelectConfig(attributes=str(attrs), threshold=t, inputs=[str(eval_shards)],
                                    output=str(tmp_path), progress=False, add_score=False))
    assert rep["kept_pages"] == sum(s >= t for s in scores)
    kept = read_pages(str(tmp_path / "CC" / "sub" / "part-1.jsonl"))
    assert kept and all(KEY not in p for p in kept)


def test_rethresholding_reads_only_sidecars(attrs, eval_shards, tmp_path, monkeypatch):
    import dclm.classifier.select as sel

    full = _report(SelectConfig(attributes=str(attrs), keep_top_fraction=0.25, inputs=[str(eval_shards)],
                                     progress=False))
    read = []
    real = sel.iter_pages
    monkeypatch.setattr(sel, "iter_pages", lambda url, *a, **k: read.append(url) or real(url, *a, **k))
    alone = _report(SelectConfig(attributes=str(attrs), keep_top_fraction=0.25, progress=False,
                                      report=str(tmp_path / "r.json")))
    assert read and all(url.startswith(str(attrs)) for url in read)
    assert alone["kept_pages"] == full["kept_pages"] and alone["threshold"] == full["threshold"]
    assert alone["key"] == KEY and (tmp_path / "r.json").exists()
    same = _report(SelectConfig(attributes=str(attrs), threshold=full["threshold"], progress=False))
    assert same["kept_pages"] >= full["kept_pages"]


def test_changed_shard_is_detected(attrs, eval_shards, tmp_path):
    src = tmp_path / "in"
    shutil.copytree(eval_shards, src)
    pages = read_pages(str(src / "CC" / "sub" / "part-1.jsonl"), text_key=None)
    write_pages(str(src / "CC" / "sub" / "part-1.jsonl"), pages[1:] + pages[:1])
    with pytest.raises(DclmError, match="changed after scoring"):
        select_pages(SelectConfig(attributes=str(attrs), threshold=0.0, inputs=[str(src)],
                                  output=str(tmp_path / "o"), progress=False))


def test_select_errors(attrs, eval_shards, tmp_path, capsys):
    with pytest.raises(DclmError, match="output: needs inputs"):
        select_pages(SelectConfig(attributes=str(attrs), threshold=0.5, output=str(tmp_path)))
    with pytest.raises(DclmError, match="no complete _score.json"):
        select_pages(SelectConfig(attributes=str(tmp_path), threshold=0.5))
    with pytest.raises(DclmError, match="no key 'nope'"):
        select_pages(SelectConfig(attributes=str(attrs), threshold=0.5, key="nope"))
    rc = main(["classifier", "select", "--attributes", str(attrs), "--keep-top-fraction", "2"])
    assert rc == 2 and "--keep-top-fraction: must be in [0, 1]" in capsys.readouterr().err
    rc = main(["classifier", "select", "--attributes", str(tmp_path / "x"), "--input", str(eval_shards), "--threshold", "0.5"])
    assert rc == 2 and "run `dclm classifier score` first" in capsys.readouterr().err


def test_cli_select_report_to_stdout(attrs, capsys):
    rc = main(["classifier", "select", "--attributes", str(attrs), "--keep-top-fraction", "0.1", "--no-progress"])
    rep = json.loads(capsys.readouterr().out)
    assert rc == 0 and rep["kept_pages"] == 80 and rep["mode"] == "keep_top_fraction"
