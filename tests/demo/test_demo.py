import json

from dclm.cli import main


def test_demo_runs_every_stage_and_resumes(tmp_path, capsys):
    out = tmp_path / "demo"
    args = ["-q", "demo", "--output", str(out), "--pages", "400", "--no-progress"]
    assert main(args) == 0
    summary = json.loads((out / "summary.json").read_text())
    stages = {s["stage"]: s for s in summary}
    assert list(stages) == ["pool", "heuristics", "dedup", "quality", "tokenize-shuffle", "model"]
    assert stages["pool"]["n_out"] == 400
    assert 0 < stages["heuristics"]["n_out"] < 400
    assert stages["heuristics"]["detail"]["removed_by_step"]
    assert 0 < stages["dedup"]["n_out"] < stages["heuristics"]["n_out"]  # planted duplicates are found
    assert 0 < stages["quality"]["n_out"] < stages["dedup"]["n_out"]
    assert 0.5 < stages["quality"]["detail"]["valid_roc_auc"] <= 1.0  # read from the card's valid_metrics
    assert stages["tokenize-shuffle"]["n_out"] > 0
    model = stages["model"]["detail"]
    assert model["loss_last"] < model["loss_first"] and model["sample"]
    assert "model" in capsys.readouterr().out
    first = (out / "heuristics/dclm_baseline_refinedweb/processed_data").rglob("*")
    before = {p: p.read_bytes() for p in first if p.is_file()}
    assert main(args) == 0  # a rerun resumes and changes nothing upstream of the model
    assert {p: p.read_bytes() for p in before} == before
