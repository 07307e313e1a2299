"""On a local Ray, every data stage writes the same bytes as the process pool (one Ray for the module: it
takes seconds to start). `dclm process` has its own such test in tests/process."""

import dataclasses
import io

import pytest

from dclm.io import write_pages

ray = pytest.importorskip("ray")

TEXT = "The committee reviewed the annual budget and agreed to meet again next week to finish the plan. "


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    from dclm.runtime.jobs import init_ray

    init_ray(num_cpus=2)
    yield
    ray.shutdown()


def tree(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _shards(root, n=3):
    for s in range(n):
        pages = [{"id": f"{s}-{i}", "url": f"http://ex{i % 4}.com/{i}",
                  "text": TEXT * (1 + i % 3) + ("buy cheap now" if i % 2 else "explain why")} for i in range(40)]
        pages += [{"id": f"{s}-dup", "text": TEXT}, {"id": f"{s}-none"}]
        write_pages(str(root / f"part{s}.jsonl.gz"), pages)


def test_dedup_exact(tmp_path):
    from dclm.dedup.exact import ExactDedupConfig, run_exact_dedup

    _shards(tmp_path / "in")
    pool = run_exact_dedup(ExactDedupConfig(inputs=[str(tmp_path / "in")], output_directory=str(tmp_path / "pool"),
                                            workers=2, progress=False))
    on_ray = run_exact_dedup(ExactDedupConfig(inputs=[str(tmp_path / "in")], output_directory=str(tmp_path / "ray"),
                                              ray=True, progress=False))
    assert pool.pages_removed > 0
    assert dataclasses.replace(pool, secs=0) == dataclasses.replace(on_ray, secs=0)
    assert tree(tmp_path / "pool") == tree(tmp_path / "ray")


def test_classifier_score_and_select(tmp_path):
    from dclm.classifier.config import ScoreConfig, SelectConfig
    from dclm.classifier.score import score_shards
    from dclm.classifier.select import select_pages
    from dclm.classifier.train import FastTextParams, train_classifier

    write_pages(str(tmp_path / "pos/a.jsonl"), [{"text": f"explain the reason {i} carefully"} for i in range(50)])
    write_pages(str(tmp_path / "neg/a.jsonl"), [{"text": f"buy cheap deal {i} now"} for i in range(50)])
    model = str(tmp_path / "m.bin")
    train_classifier([str(tmp_path / "pos")], [str(tmp_path / "neg")], model, params=FastTextParams(bucket=10_000))
    _shards(tmp_path / "in")
    for name, kw in (("pool", {"workers": 2}), ("ray", {"ray": True})):
        score_shards(ScoreConfig(model=model, inputs=[str(tmp_path / "in")], output=str(tmp_path / f"{name}-attrs"),
                                 progress=False, **kw))
        select_pages(SelectConfig(attributes=str(tmp_path / f"{name}-attrs"), keep_top_fraction=0.5,
                                  inputs=[str(tmp_path / "in")], output=str(tmp_path / f"{name}-kept"),
                                  progress=False, **kw))
    drop_paths = lambda t: {k: v for k, v in t.items() if not k.endswith(".json")}  # manifests name their folder
    assert drop_paths(tree(tmp_path / "pool-attrs")) == drop_paths(tree(tmp_path / "ray-attrs"))
    assert drop_paths(tree(tmp_path / "pool-kept")) == drop_paths(tree(tmp_path / "ray-kept"))
    assert any(k.startswith("_rejects/") for k in tree(tmp_path / "ray-attrs"))


def test_extract(tmp_path):
    pytest.importorskip("resiliparse")
    pytest.importorskip("warcio")
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    from dclm.extract import ExtractConfig, run_extract

    def extract(inputs, output, **kw):
        return run_extract(ExtractConfig(inputs=inputs, output=output, progress=False, **kw))

    for n in range(3):
        path = tmp_path / "in" / f"f{n}.warc.gz"
        path.parent.mkdir(exist_ok=True)
        with open(path, "wb") as f:
            w = WARCWriter(f, gzip=True)
            for i in range(5):
                body = f"<html><body><article><p>{n} {i} {TEXT}</p></article></body></html>".encode()
                http = StatusAndHeaders("200 OK", [("Content-Type", "text/html")], protocol="HTTP/1.1")
                w.write_record(w.create_warc_record(f"http://ex.com/{n}/{i}", "response", payload=io.BytesIO(body),
                                                    http_headers=http))
    pool = extract([str(tmp_path / "in")], str(tmp_path / "pool"), workers=2)
    on_ray = extract([str(tmp_path / "in")], str(tmp_path / "ray"), ray=True)
    assert pool.ok and on_ray.ok and pool.totals() == on_ray.totals()
    pages = lambda t: {k: v for k, v in t.items() if not k.startswith("stats/")}  # stats carry timings
    assert pages(tree(tmp_path / "pool")) == pages(tree(tmp_path / "ray")) and len(pages(tree(tmp_path / "ray"))) == 3
