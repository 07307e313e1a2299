"""`dclm eval` end to end on a tiny checkpoint and a mini suite; bad input; suites; download."""

import json
import shutil

import pytest

from dclm.cli import main
from dclm.eval import EvalConfig, run
from dclm.eval.tasks import load_suite, parse_suite

from .conftest import MC


def _cli(capsys, *argv):
    rc = main(["-q", *map(str, argv)])
    out, err = capsys.readouterr()
    return rc, out, err


def test_contract_command_writes_dclm_json_and_samples(tiny_dir, eval_root, tmp_path, capsys):
    out, samples = tmp_path / "eval.json", tmp_path / "samples"
    rc, stdout, err = _cli(capsys, "eval", "--model", tiny_dir, "--tasks", eval_root / "mini.yaml", "--data-dir", eval_root,
                           "--output", out, "--limit", 3, "--device", "cpu", "--dtype", "fp32", "--log-samples", samples,
                           "--no-progress")
    assert rc == 0, err
    doc = json.loads(out.read_text())
    icl = doc["eval_metrics"]["icl"]
    assert set(icl) == {"arc_easy", "winograd", "jeopardy", "triviaqa_sm_sub", "gsm8k_cot"}
    assert all(0.0 <= v <= 1.0 for v in icl.values())
    assert list(doc["missing_task_files"]) == ["squad"]
    assert doc["Core"].startswith("N/A") and doc["Extended_v1"].startswith("N/A") and doc["eval_version"] == "v2"
    assert "aggregated_task_categories_centered" in doc and "rw_small_centered" in doc
    recs = {p.stem: [json.loads(line) for line in p.read_text().splitlines()] for p in samples.glob("*.jsonl")}
    assert len(recs["arc_easy"]) == 3 and set(recs["arc_easy"][0]) >= {"task", "category", "index", "correct", "pred", "scores", "input_ids"}
    assert len(recs["arc_easy"][0]["input_ids"]) == 4 and recs["arc_easy"][0]["category"] is None
    jeo = recs["jeopardy"]
    assert {r["category"] for r in jeo} == {"a_cat", "b_cat"} and len(jeo) == 6  # --limit per category
    assert set(jeo[0]) >= {"pred_ids", "cont_ids", "ce_sum"}
    by_cat = {c: [r["correct"] for r in jeo if r["category"] == c] for c in ("a_cat", "b_cat")}
    assert icl["jeopardy"] == pytest.approx(sum(sum(v) / len(v) for v in by_cat.values()) / 2)
    assert set(recs["gsm8k_cot"][0]) >= {"output", "cleaned_output"}
    assert json.loads(stdout)["output"] == str(out)


def test_limited_run_gives_items_their_full_run_prompts(tiny_dir, eval_root, tmp_path):
    def samples(limit, name):
        cfg = EvalConfig(tasks=str(eval_root / "mini.yaml"), data_dir=str(eval_root), output=str(tmp_path / f"{name}.json"),
                         model=str(tiny_dir), only=("arc_easy", "jeopardy"), limit=limit,
                         log_samples=str(tmp_path / name), progress=False)
        run(cfg)
        return {t: [json.loads(x) for x in (tmp_path / name / f"{t}.jsonl").read_text().splitlines()] for t in ("arc_easy", "jeopardy")}

    full, lim = samples(None, "full"), samples(2, "lim")
    assert len(full["arc_easy"]) == len(MC)
    for task in full:
        for r in lim[task]:
            twin = next(f for f in full[task] if f["index"] == r["index"] and f["category"] == r["category"])
            assert r["input_ids"] == twin["input_ids"] and r["correct"] == twin["correct"]


def test_bad_input_is_one_line(tiny_dir, eval_root, tmp_path, capsys):
    base = ["eval", "--model", tiny_dir, "--output", tmp_path / "o.json", "--no-progress"]
    rc, _, err = _cli(capsys, *base, "--tasks", eval_root / "mini.yaml", "--data-dir", tmp_path / "nope")
    assert rc != 0 and "--data-dir" in err and len(err.strip().splitlines()) == 1
    rc, _, err = _cli(capsys, *base, "--tasks", "no_such_suite", "--data-dir", eval_root)
    assert rc != 0 and "unknown task suite 'no_such_suite'" in err and len(err.strip().splitlines()) == 1
    rc, _, err = _cli(capsys, *base, "--tasks", eval_root / "mini.yaml", "--data-dir", eval_root, "--only", "hellaswag")
    assert rc != 0 and "unknown task 'hellaswag'" in err
    bad = tmp_path / "bad"
    shutil.copytree(eval_root / "local_data", bad / "local_data")
    lines = (bad / "local_data/world_knowledge/mc.jsonl").read_text().splitlines()
    lines[2] = '{"query": "q", "choices": ["a"], '
    (bad / "local_data/world_knowledge/mc.jsonl").write_text("\n".join(lines) + "\n")
    rc, _, err = _cli(capsys, *base, "--tasks", eval_root / "mini.yaml", "--data-dir", bad, "--only", "arc_easy")
    assert rc != 0 and "mc.jsonl:3: not a JSON object" in err and len(err.strip().splitlines()) == 1
    lines[2] = '{"query": "q", "choices": ["a"]}'
    (bad / "local_data/world_knowledge/mc.jsonl").write_text("\n".join(lines) + "\n")
    rc, _, err = _cli(capsys, *base, "--tasks", eval_root / "mini.yaml", "--data-dir", bad, "--only", "arc_easy")
    assert rc != 0 and "mc.jsonl:3: missing field 'gold'" in err


def test_hf_model_without_transformers_names_the_real_extra(tiny_dir, eval_root, tmp_path, capsys, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == "transformers" else real(name))
    rc, _, err = _cli(capsys, "eval", "--hf-model", tiny_dir, "--tasks", eval_root / "mini.yaml", "--data-dir", eval_root,
                      "--output", tmp_path / "o.json", "--no-progress")
    assert rc != 0 and err.strip().endswith("--hf-model needs transformers: pip install 'dclm[model]'")


def test_bundled_suites_match_dclm_yamls(shared_dir):
    import yaml

    from dclm.eval.tables import TASKS

    sizes = {"light": 2, "medium": 12, "mmlu_and_lowvar": 23, "heavy": 53}
    for name, n in sizes.items():
        ours = load_suite(name)
        theirs = parse_suite(yaml.safe_load((shared_dir / "dclm_reference/eval" / f"{name}.yaml").read_text()), name)
        assert len(ours.tasks) == n and ours.tasks == theirs.tasks and ours.max_seq_len == 2048
    assert {t.label for t in load_suite("heavy").tasks} == set(TASKS)
    gsm = next(t for t in load_suite("heavy").tasks if t.label == "gsm8k_cot")
    assert gsm.stop == ("\n\n", "Q:", "Q: ") and gsm.prelimiter == "Q: " and gsm.cot_delimiter == " #### "


def test_download_from_file_urls(eval_root, tmp_path, capsys):
    suite = tmp_path / "s.yaml"
    suite.write_text((eval_root / "mini.yaml").read_text())
    rc, out, err = _cli(capsys, "eval", "download", "--dest", tmp_path / "dl", "--suite", suite,
                        "--base-url", (eval_root).as_uri())
    assert rc == 0, err
    res = json.loads(out)
    assert "local_data/world_knowledge/mc.jsonl" in res["fetched"]
    assert "local_data/reading_comprehension/squad.jsonl" in res["unavailable"]
    assert (tmp_path / "dl/local_data/world_knowledge/mc.jsonl").read_bytes() == (eval_root / "local_data/world_knowledge/mc.jsonl").read_bytes()
