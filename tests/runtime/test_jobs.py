import argparse
import math
from dataclasses import dataclass

import pytest

from dclm.runtime.config import ConfigError, add_config_arguments, arg, config_from_args
from dclm.runtime.jobs import Execution, resolve_workers, run_jobs
from dclm.runtime.rejects import RejectLog, read_rejects, rejects_path
from dclm.runtime.resume import digest, input_fingerprint, is_done, mark_done


# a library function: spawned workers must import it, and the tests package is not importable there
square = math.factorial


@pytest.mark.parametrize("workers", [1, 2])
def test_results_in_job_order(workers):
    seen = []
    out = run_jobs(square, list(range(7)), workers=workers, progress=False, on_result=lambda j, r: seen.append(j))
    assert out == [math.factorial(x) for x in range(7)]
    assert sorted(seen) == list(range(7))


def test_ray_gives_the_pool_results():
    pytest.importorskip("ray")
    assert run_jobs(square, [3, 1, 2], workers=2, ray=True, progress=False) == [6, 1, 2]


def test_workers_zero_is_all_cores_and_negative_is_refused():
    assert resolve_workers(0) >= 1 and resolve_workers(3) == 3
    with pytest.raises(ConfigError, match="workers"):
        resolve_workers(-1)


@dataclass(frozen=True, kw_only=True)
class StageConfig(Execution):
    output: str = arg(help="out")


def test_execution_flags_are_shared_by_stage_configs():
    p = argparse.ArgumentParser()
    add_config_arguments(p, StageConfig)
    c = config_from_args(StageConfig, p.parse_args(["--output", "o", "--workers", "2", "--no-progress"]))
    assert (c.workers, c.ray, c.progress, c.output) == (2, False, False, "o")
    assert c.run(square, [2, 3], desc="t") == [2, 6]


def test_reject_log_layout_and_schema(tmp_path):
    log = RejectLog(str(tmp_path), "a/b.jsonl", "extract", "in/a/b.jsonl")
    log.on_read_reject(3, "malformed JSON", "{oops")
    log.add("no text", {"url": "u"}, step="page_length_filter")
    assert log.flush() == 2
    assert log.path == rejects_path(str(tmp_path), "a/b.jsonl") == f"{tmp_path}/_rejects/a/b.jsonl.jsonl"
    recs = read_rejects(str(tmp_path))
    assert recs[0] == {"stage": "extract", "step": None, "file": "in/a/b.jsonl", "line": 3,
                       "reason": "malformed JSON", "record": "{oops"}
    assert recs[1]["step"] == "page_length_filter" and recs[1]["line"] is None
    RejectLog(str(tmp_path), "a/b.jsonl", "extract", "in/a/b.jsonl").flush()
    assert read_rejects(str(tmp_path)) == []


def test_done_marker_is_digest_checked(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text("x\n")
    d1 = digest({"k": 1}, input_fingerprint(str(src)))
    mark_done(str(tmp_path / "out"), "in.jsonl", d1, {"pages": 1})
    assert is_done(str(tmp_path / "out"), "in.jsonl", d1) == {"pages": 1}
    assert is_done(str(tmp_path / "out"), "in.jsonl", digest({"k": 2}, input_fingerprint(str(src)))) is None
    src.write_text("xy\n")
    assert is_done(str(tmp_path / "out"), "in.jsonl", digest({"k": 1}, input_fingerprint(str(src)))) is None
