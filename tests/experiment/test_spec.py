import pytest

from dclm.errors import DclmError
from dclm.experiment.spec import load_spec, parse_spec

GOOD = {"name": "x", "pool": {"paths": ["crawl/"]}, "tokenizer": {"train_bpe": 512},
        "arms": [{"name": "raw"}, {"name": "cur", "process": "dclm_baseline_refinedweb", "dedup": {"ngram": 13},
                                    "quality": {"positives": "pos/", "keep_fraction": 0.2}}],
        "train": {"scale": "smoke"}, "eval": {"heldout": "clean/"}}


def test_paths_are_taken_from_the_spec_folder(tmp_path):
    spec = parse_spec(GOOD, base=tmp_path)
    assert spec.pool == (str(tmp_path / "crawl"),) and spec.tokenizer == 512
    assert spec.arms[0].stages == [] and spec.arms[1].stages == ["process", "dedup", "quality"]
    assert spec.arms[1].quality["positives"] == [str(tmp_path / "pos")]
    assert spec.eval["heldout"] == [str(tmp_path / "clean")]


@pytest.mark.parametrize("change, needle", [
    ({"colour": 1}, "unknown key"),
    ({"arms": []}, "at least one"),
    ({"arms": [{"name": "a"}, {"name": "a"}]}, "distinct"),
    ({"arms": [{"name": "a", "quality": {"keep_fraction": 0.5}}]}, "positives"),
    ({"arms": [{"name": "a", "quality": {"positives": ["p"], "keep_fraction": 2}}]}, "keep_fraction"),
    ({"train": {}}, "scale"),
    ({"pool": {}}, "pool needs paths"),
    ({"tokenizer": {"train_bpe": 10}}, "train_bpe"),
])
def test_bad_specs_are_one_line(change, needle):
    with pytest.raises(DclmError, match=needle):
        parse_spec({**GOOD, **change})


def test_load_spec_errors(tmp_path):
    with pytest.raises(DclmError, match="no such"):
        load_spec(str(tmp_path / "none.yaml"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("arms: [unclosed\n")
    with pytest.raises(DclmError, match="not valid YAML"):
        load_spec(str(bad))
