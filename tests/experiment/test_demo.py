import json
import re
import shutil
import subprocess

import pytest

pytest.importorskip("torch")
pytest.importorskip("matplotlib")

from dclm.cli import main  # noqa: E402

STAGES = ("extract", "heuristics", "dedup", "quality", "tokenize", "train", "eval")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "run"
    assert main(["-q", "demo", "--output", str(out), "--size", "small", "--no-progress"]) == 0
    return out


def _numbers(summary: dict) -> dict:
    return {k: v for k, v in summary.items() if k != "timings"}


def test_demo_summary_names_every_stage(demo):
    summary = json.loads((demo / "summary.json").read_text())
    assert set(STAGES) <= {s["stage"] for s in summary["stages"]}
    by = {(s["arm"], s["stage"]): s for s in summary["stages"]}
    for stage in ("heuristics", "dedup", "quality"):  # the curation stages remove something
        assert by[("dclm-baseline", stage)]["removed"] > 0
        assert by[("dclm-baseline", stage)]["examples"]
    assert by[(None, "extract")]["removed"] > 0  # non-HTML and empty records
    arms = summary["arms"]
    raw, cur = arms["raw"], arms["dclm-baseline"]
    assert raw["train"]["tokens"] == cur["train"]["tokens"] > 0  # equal tokens
    assert cur["eval"]["heldout"]["perplexity"] < raw["eval"]["heldout"]["perplexity"]
    assert all(s["text"] for s in cur["eval"]["samples"])


def test_rerun_reuses_stages_and_reproduces(demo):
    before = json.loads((demo / "summary.json").read_text())
    assert main(["-q", "demo", "--output", str(demo), "--size", "small", "--no-progress"]) == 0
    after = json.loads((demo / "summary.json").read_text())
    assert _numbers(after) == _numbers(before)
    assert after["timings"]["total_s"] < before["timings"]["total_s"]


def test_report_renders_in_chromium(demo, tmp_path):
    html = (demo / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 5
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html) and "<script" not in html  # nothing fetched
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("chromium is not installed")
    # every <img> must have decoded: the page's title becomes the count of broken images
    probe = tmp_path / "probe.html"
    probe.write_text(html.replace("</body>", "<script>window.onload=()=>{document.title='broken:'+"
                                  "[...document.images].filter(i=>!i.complete||i.naturalWidth===0).length+"
                                  "' of '+document.images.length}</script></body>"))
    r = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", probe.as_uri()],
                       capture_output=True, text=True, timeout=120)
    m = re.search(r"<title>broken:(\d+) of (\d+)</title>", r.stdout)
    assert m, r.stderr[-500:]
    assert m.group(1) == "0" and int(m.group(2)) >= 5
