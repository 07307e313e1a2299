import json
import subprocess
import sys

import pytest

from dclm.errors import DclmError
from dclm.eval.aggregate import aggregate, centered, reaggregate
from dclm.eval.tables import TASKS


@pytest.fixture
def published(shared_dir):
    return shared_dir / "dclm_reference" / "eval" / "published_results" / "evaluation_open_lm_dclm_7b_8k.json"


def test_reproduces_published_dclm7b_scores(published):
    doc = json.loads(published.read_text())
    out = reaggregate(doc)
    for key in ("Core_v1", "Core_v2", "Extended_v1", "Extended_v2", "Core", "Extended", "aggregated_results",
                "rw_small", "rw_small_centered", "95%_CI_above_centered", "99%_CI_above_centered",
                "low_variance_datasets", "low_variance_datasets_centered"):
        assert out[key] == pytest.approx(doc[key], abs=1e-6), key
    for cat, value in doc["aggregated_task_categories_centered"].items():
        assert out["aggregated_task_categories_centered"][cat] == pytest.approx(value, abs=1e-6)
    assert out["missing tasks"] == "[]"


def test_table_has_53_tasks_and_centering():
    assert len(TASKS) == 53
    assert TASKS["commonsense_qa"] == ("commonsense reasoning", 20, 40.3)
    assert centered(0.625, 25) == pytest.approx(0.5)
    assert centered(0.3, 0) == 0.3


def test_missing_task_gives_na_like_dclm():
    icl = {t: 0.5 for t in TASKS}
    del icl["squad"]
    icl["not_a_task"] = 0.9  # ignored, as DCLM's metadata .map ignores it
    out = aggregate(icl)
    assert out["Core"] == "N/A due to missing tasks: ['squad']"
    assert out["Extended_v1"].startswith("N/A due to missing tasks")
    assert out["rw_small"] == 0.5 and out["aggregated_results"] == 0.5
    assert out["low_variance_datasets"] == 0.5  # means skip absent tasks (pandas NaN skipping)
    assert out["missing tasks"] == "['squad']"
    with pytest.raises(DclmError, match="eval_metrics.icl"):
        reaggregate({"eval_metrics": {}})


def test_cli_aggregate(tmp_path, published):
    out = tmp_path / "agg.json"
    r = subprocess.run([sys.executable, "-m", "dclm", "eval", "aggregate", str(published), "--output", str(out)],
                       capture_output=True, text=True, check=True)
    head = json.loads(r.stdout)
    assert head["Core_v2"] == pytest.approx(0.5596126827249299, abs=1e-6)
    assert json.loads(out.read_text())["Extended_v1"] == pytest.approx(0.4538447428718087, abs=1e-6)
    bad = subprocess.run([sys.executable, "-m", "dclm", "eval", "aggregate", str(tmp_path / "nope.json")],
                         capture_output=True, text=True)
    assert bad.returncode != 0 and len(bad.stderr.strip().splitlines()) == 1
