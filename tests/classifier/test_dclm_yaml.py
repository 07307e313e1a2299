"""DCLM's own fasttext_filter.yaml, unchanged, against `dclm classifier score` + `select --threshold`."""

import shutil

import pytest

from dclm.process import ProcessConfig, run_process
from dclm.io import list_shards, read_pages, write_pages
from dclm.mappers import names
from dclm.classifier.model import DCLM_MODEL_DIR
from dclm.classifier.config import ScoreConfig, SelectConfig
from dclm.classifier.score import score_shards
from dclm.classifier.select import select_pages

from .conftest import make_pages

KEY = "fasttext_oh_eli5_vs_rw_v2_prob"


def process(pipeline, inputs, output, **kw):
    kw.setdefault("progress", False)
    return run_process(ProcessConfig(pipeline=pipeline, inputs=inputs, output=output, **kw))


def test_dclm_fasttext_filter_yaml_matches_score_and_select(shared_dir, trained, tmp_path, monkeypatch):
    yaml = shared_dir / "dclm_reference" / "baselines_configs" / "fasttext_filter.yaml"
    if not yaml.exists() or "quality_filter" not in names():
        pytest.skip("needs DCLM's fasttext_filter.yaml and the quality_filter mapper")

    monkeypatch.chdir(tmp_path)
    (tmp_path / DCLM_MODEL_DIR).mkdir(parents=True)
    shutil.copy(trained[0], tmp_path / DCLM_MODEL_DIR / "fasttext_oh_eli5.bin")  # DCLM's model_filename, resolved as DCLM does
    pages = make_pages(100, "hq", seed=21) + make_pages(100, "cc", seed=21)
    write_pages(str(tmp_path / "in" / "s.jsonl"), pages)
    score_shards(ScoreConfig(model="fasttext_oh_eli5.bin", inputs=[str(tmp_path / "in")],
                             output=str(tmp_path / "attrs"), key=KEY, workers=1, progress=False))
    scores = sorted(r[KEY] for r in read_pages(str(tmp_path / "attrs" / "s.jsonl"), text_key=None))
    median = scores[len(scores) // 2]
    # DCLM's YAML as is (its threshold 0.018112), then with the threshold moved to the median score
    for i, threshold in enumerate([0.018112, median]):
        cfg = tmp_path / f"fasttext_filter_{i}.yaml"
        cfg.write_text(yaml.read_text().replace("0.018112", repr(threshold)))
        assert process(str(cfg), [str(tmp_path / "in")], str(tmp_path / "out"), workers=1, progress=False).ok
        processed = [s for s in list_shards(str(tmp_path / "out" / cfg.stem)) if "processed_data" in s.rel]
        via_yaml = [(p["id"], p[KEY]) for s in processed for p in read_pages(s.url)]
        select_pages(SelectConfig(attributes=str(tmp_path / "attrs"), threshold=threshold,
                                  inputs=[str(tmp_path / "in")], output=str(tmp_path / f"sel{i}"), progress=False))
        via_select = [(p["id"], p[KEY]) for p in read_pages(str(tmp_path / f"sel{i}" / "s.jsonl"))]
        assert via_yaml == via_select and via_select
        assert len(via_select) == sum(x >= threshold for x in scores)
