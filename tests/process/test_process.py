import gzip
import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from dclm.cli import main
from dclm.io import read_pages, write_pages
from dclm.process import ProcessConfig, run_process
from dclm.process.pipeline import load_pipeline
from dclm.process.executor import process_pages

CONFIG = """
- source: web
  steps:
    - func: usermappers.drop_every_third
    - func: usermappers.split_some
    - func: usermappers.flaky
      _aggregate:
        n_chars: percentiles
    - commit
    - func: usermappers.shout
      suffix: "?"
"""


def process(pipeline, inputs, output, **kw):
    kw.setdefault("progress", False)
    return run_process(ProcessConfig(pipeline=pipeline, inputs=inputs, output=output, **kw))


def tree_bytes(root: Path, sub: str) -> dict[str, bytes]:
    base = root / sub
    return {str(p.relative_to(base)): p.read_bytes() for p in sorted(base.rglob("*")) if p.is_file()}


def records(path: Path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def test_every_page_is_accounted_for(workdir, make_shards):
    make_shards(workdir / "in", 4, 40)
    (workdir / "p.yaml").write_text(CONFIG)
    res = process("p.yaml", "in", "out", workers=1, progress=False)
    assert res.ok and res.done == 4 and res.pages_in == 160
    out = workdir / "out" / "p"
    for shard in range(4):
        stats = records(out / "stats" / "part0" / f"shard_{shard:03d}_stats.jsonl")
        steps = [r for r in stats if "pages_in" in r and r["name"] != "process_setup"]
        assert [s["name"] for s in steps] == ["usermappers.drop_every_third", "usermappers.split_some", "usermappers.flaky", "usermappers.shout"]
        for s in steps:
            assert s["pages_in"] == s["kept"] + s["removed"] + s["split"] + s["errors"]
        assert steps[1]["pages_out"] == steps[1]["kept"] + 2 * steps[1]["split"]
        assert set(steps[2]["n_chars"]) >= {"min", "max", "median", "p90", "mean"}
        assert [r["name"] for r in stats][-2:] == ["commit", "process_finished"]
        pages = read_pages(str(out / "processed_data" / "part0" / f"shard_{shard:03d}_processed.jsonl.gz"))
        assert len(pages) == steps[-1]["pages_out"]
        assert all(p["text"].endswith("?") and p["text"].isupper() for p in pages)
        rejects = records(out / "_rejects" / "part0" / f"shard_{shard:03d}.jsonl.gz.jsonl")
        assert len(rejects) == steps[2]["errors"] > 0
        assert all(r["step"] == "usermappers.flaky" and "cannot handle page" in r["reason"] for r in rejects)
        assert all(r["record"]["id"] % 7 == 2 and r["stage"] == "process" for r in rejects)
        assert all(r["file"].endswith(f"part0/shard_{shard:03d}.jsonl.gz") for r in rejects)
    rows = records(out / "global_stats.jsonl")
    assert rows[0]["name"] == "local" and rows[0]["num_successes"] == 4 and rows[0]["pages_in"] == 160
    # the summary totals add up over shards
    assert res.step_totals[0]["pages_in"] == 160


def test_rerun_skips_finished_shards_and_a_changed_config_is_refused(workdir, capsys, make_shards):
    make_shards(workdir / "in", 2, 10)
    (workdir / "p.yaml").write_text(CONFIG)
    assert process("p.yaml", "in", "out", workers=1, progress=False).done == 2
    again = process("p.yaml", "in", "out", workers=1, progress=False)
    assert again.skipped == 2 and again.done == 0 and again.pages_in == 20
    (workdir / "p.yaml").write_text(CONFIG.replace('"?"', '"!"'))
    assert main(["process", "--config", "p.yaml", "--input", "in", "--output", "out", "--workers", "1", "--no-progress"]) == 1
    assert "different config" in capsys.readouterr().out
    assert process("p.yaml", "in", "out", workers=1, overwrite=True, progress=False).done == 2


def test_resume_from_a_mid_pipeline_commit(workdir, make_shards):
    make_shards(workdir / "in", 3, 30)
    (workdir / "p.yaml").write_text(CONFIG)
    process("p.yaml", "in", "ref", workers=1, progress=False)
    process("p.yaml", "in", "out", workers=1, progress=False)
    # emulate a crash right after the `commit` step: the stats end at that commit and the output file holds
    # the pages as they were then (regenerated here from the first three steps)
    stats = workdir / "out/p/stats/part0/shard_001_stats.jsonl"
    recs = records(stats)
    first_commit = next(i for i, r in enumerate(recs) if r["name"] == "commit")
    out_file = workdir / "out/p/processed_data/part0/shard_001_processed.jsonl.gz"
    pages = read_pages(str(workdir / "in/part0/shard_001.jsonl.gz"))
    steps = list(load_pipeline("p.yaml").steps[:3])
    mid, _, _ = process_pages(steps, pages)
    write_pages(str(out_file), mid)
    recs[first_commit]["output_sha1"] = hashlib.sha1(out_file.read_bytes()).hexdigest()
    stats.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in recs[: first_commit + 1]))
    res = process("p.yaml", "in", "out", workers=1, progress=False)
    assert res.done == 1 and res.skipped == 2
    setup = [r for r in records(stats) if r["name"] == "process_setup"][-1]
    assert setup["resume_from_step"] == 4 and setup["graceful_continuation"]
    assert tree_bytes(workdir / "out/p", "processed_data") == tree_bytes(workdir / "ref/p", "processed_data")
    assert tree_bytes(workdir / "out/p", "_rejects") == tree_bytes(workdir / "ref/p", "_rejects")


def test_sigkill_midway_then_rerun_equals_uninterrupted_run(workdir, make_shards):
    make_shards(workdir / "in", 20, 25)
    (workdir / "slow.yaml").write_text(CONFIG.replace(
        "    - commit\n", "    - commit\n    - func: registered_slow\n      delay: 0.01\n"))
    cmd = [sys.executable, "-m", "dclm", "-q", "process", "--config", "slow.yaml", "--input", "in",
           "--mappers-module", "usermappers.py", "--workers", "2", "--no-progress"]
    subprocess.run(cmd + ["--output", "ref"], check=True, cwd=workdir)
    proc = subprocess.Popen(cmd + ["--output", "out"], cwd=workdir, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    done_dir = workdir / "out/slow/processed_data"
    deadline = time.time() + 120
    while time.time() < deadline:
        n = len(list(done_dir.rglob("*_processed.jsonl.gz"))) if done_dir.exists() else 0
        if n >= 5:
            break
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    n_done = len(list(done_dir.rglob("*_processed.jsonl.gz")))
    assert 0 < n_done < 20, n_done
    rerun = subprocess.run(cmd + ["--output", "out"], cwd=workdir, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    for sub in ("processed_data", "_rejects"):
        assert tree_bytes(workdir / "out/slow", sub) == tree_bytes(workdir / "ref/slow", sub)
    assert not list((workdir / "out").rglob(".tmp-*"))


def test_ray_gives_the_same_bytes_as_local(workdir, make_shards):
    ray = pytest.importorskip("ray")
    make_shards(workdir / "in", 6, 20)
    (workdir / "p.yaml").write_text(CONFIG)
    process("p.yaml", "in", "local", workers=1, progress=False)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        res = process("p.yaml", "in", "ray", ray=True, progress=False)
    finally:
        ray.shutdown()
    assert res.ok and res.done == 6
    for sub in ("processed_data", "_rejects"):
        assert tree_bytes(workdir / "ray/p", sub) == tree_bytes(workdir / "local/p", sub)


def test_bad_shards_fail_alone_with_a_clear_message(workdir, capsys, make_shards):
    make_shards(workdir / "in", 3, 20)
    broken = workdir / "in/part0/shard_001.jsonl.gz"
    broken.write_bytes(broken.read_bytes()[:-30])
    (workdir / "in/part0/shard_002.jsonl.gz").write_bytes(gzip.compress(
        b'{"id": 1, "text": "ok"}\n{oops\n\xff\xfe\n{"id": 4}\n{"id": 5, "text": 7}\n'))
    (workdir / "in/part0/shard_003.jsonl").symlink_to(workdir / "gone.jsonl")
    (workdir / "p.yaml").write_text(CONFIG)
    rc = main(["process", "--config", "p.yaml", "--input", "in", "--output", "out", "--workers", "1", "--no-progress"])
    assert rc == 1
    out = capsys.readouterr().out
    assert "shard part0/shard_001.jsonl.gz failed" in out and "truncated gzip" in out
    assert "shard part0/shard_003.jsonl failed" in out and "not found" in out
    assert (workdir / "out/p/processed_data/part0/shard_000_processed.jsonl.gz").exists()
    rejects = records(workdir / "out/p/_rejects/part0/shard_002.jsonl.gz.jsonl")
    assert [(r["step"], r["line"]) for r in rejects] == [
        (None, 2), (None, 3), ("usermappers.flaky", None), ("usermappers.flaky", None)]
    assert "invalid UTF-8" in rejects[1]["reason"]
    assert rejects[2]["reason"] == "KeyError: 'text'" and "TypeError" in rejects[3]["reason"]


@pytest.mark.parametrize("yaml_text, message", [
    ("- source: a\n  steps:\n    - func: no_such_mapper\n", "unknown func 'no_such_mapper'"),
    ("- source: a\n  steps:\n    - func: key_name_modfier\n", "did you mean key_name_modifier"),
    ("- source: a\n  steps:\n    - func: key_name_modifier\n      old_kye: x\n", "unknown argument 'old_kye' (did you mean old_key?)"),
    ("- source: a\n  steps: [\n", "bad YAML"),
    ("- source: a\n  steps:\n    - func: exact_dedup\n", "first step cannot be the global step"),
    ("- source: a\n  steps:\n    - func: key_name_modifier\n- source: b\n  steps: [commit]\n", "pick one with --source-name"),
])
def test_config_errors_are_one_line(workdir, capsys, yaml_text, message, make_shards):
    make_shards(workdir / "in", 1, 2)
    (workdir / "bad.yaml").write_text(yaml_text)
    rc = main(["process", "--config", "bad.yaml", "--input", "in", "--output", "out", "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and err.count("\n") == 1


def test_missing_input_and_empty_input(workdir, capsys):
    (workdir / "p.yaml").write_text("- source: a\n  steps:\n    - func: key_name_modifier\n")
    assert main(["process", "--config", "p.yaml", "--input", "nowhere", "--output", "out"]) == 2
    assert "input not found" in capsys.readouterr().err
    (workdir / "empty").mkdir()
    (workdir / "empty" / "e.jsonl").write_bytes(b"")
    assert main(["process", "--config", "p.yaml", "--input", "empty", "--output", "out", "--no-progress"]) == 0
    assert (workdir / "out/p/processed_data/e_processed.jsonl").read_bytes() == b""


def test_dclm_content_to_text_runs_unchanged(workdir, shared_dir):
    write_pages(str(workdir / "in" / "a.jsonl.zst"), [{"content": f"doc {i}", "id": i} for i in range(10)])
    cfg = shared_dir / "dclm_reference/baselines_configs/content_to_text.yaml"
    res = process(str(cfg), "in", "out", workers=1, progress=False)
    assert res.ok
    pages = read_pages(str(workdir / "out/content_to_text/processed_data/a_processed.jsonl.zst"))
    assert pages == [{"id": i, "text": f"doc {i}"} for i in range(10)]


def test_exact_dedup_splits_the_pipeline_into_chunks(workdir):
    pytest.importorskip("dclm.dedup.exact")
    for s in range(3):
        write_pages(str(workdir / "in" / f"s{s}.jsonl"),
                    [{"text": f"same text {i % 4}", "url": f"https://www.site{i}.com/a/?utm_x={s}", "id": s * 100 + i} for i in range(6)])
    (workdir / "d.yaml").write_text("""
- source: cc
  steps:
    - func: usermappers.slow
    - func: exact_dedup
      content_key: text
    - func: usermappers.shout
""")
    res = process("d.yaml", "in", "out", workers=1, progress=False)
    assert res.ok
    kept = [p for s in range(3) for p in read_pages(str(workdir / f"out/d/processed_data/s{s}_processed.jsonl"))]
    assert [p["text"] for p in kept] == [f"SAME TEXT {i}!" for i in range(4)]
    assert [p["id"] for p in kept] == [0, 1, 2, 3]
    rows = records(workdir / "out/d/global_stats.jsonl")
    assert [r["name"] for r in rows] == ["local", "exact_dedup", "local"]
    stats = records(workdir / "out/d/stats/s1_stats.jsonl")
    dedup = next(r for r in stats if r["name"] == "exact_dedup")
    assert dedup["pages_in"] == 6 and dedup["pages_out"] == 0
    again = process("d.yaml", "in", "out", workers=1, progress=False)
    assert again.ok and again.skipped == 3


SAMPLING = """
- source: web
  steps:
    - func: random_sampling_filter
      keep_probability: 0.5
    - commit
    - func: random_sampling_filter
      keep_probability: 0.5
"""


def test_global_random_is_seeded_per_shard_and_step(workdir, make_shards):
    import random

    make_shards(workdir / "in", 4, 60)
    (workdir / "s.yaml").write_text(SAMPLING)
    random.seed(123)
    before = random.getstate()
    one = process("s.yaml", "in", "one", workers=1, progress=False)
    assert random.getstate() == before  # an in-process run leaves the caller's generator alone
    two = process("s.yaml", "in", "two", workers=2, progress=False)
    assert one.done == two.done == 4
    kept = tree_bytes(workdir / "one/s", "processed_data")
    assert kept == tree_bytes(workdir / "two/s", "processed_data")
    per_shard = [[p["id"] % 1000 for p in read_pages(str(workdir / "one/s/processed_data" / rel))] for rel in sorted(kept)]
    assert len({tuple(ids) for ids in per_shard}) == 4  # each shard draws its own stream
    assert 0.1 < sum(map(len, per_shard)) / 240 < 0.4
    # the in-memory path draws the same stream for the same shard name
    pages = read_pages(str(workdir / "in/part0/shard_002.jsonl.gz"))
    out, _, _ = process_pages(list(load_pipeline("s.yaml").steps), pages, rel="part0/shard_002.jsonl.gz")
    assert [p["id"] % 1000 for p in out] == per_shard[2]
