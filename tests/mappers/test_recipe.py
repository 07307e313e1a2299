"""DCLM's own dclm_baseline_refinedweb.yaml over generated web pages: every step has work to do."""

import copy

import pytest

from dclm.demo.webpages import generate_pages

FILTERS_WITHOUT_WORK = {"move_url_modifier", "detect_lang_whole_page_enricher", "word_counter_enricher"}


@pytest.fixture(scope="module")
def recipe_run(dclm_workdir, reference_dir, lid_model):
    import os

    from dclm.process.pipeline import build_mapper, load_pipeline
    from dclm.process.executor import run_step

    root = dclm_workdir
    cwd = os.getcwd()
    os.chdir(root)
    try:
        pipeline = load_pipeline(str(reference_dir / "baselines_configs" / "dclm_baseline_refinedweb.yaml"))
        steps = [s for s in pipeline.steps if not s.is_commit]
        fns = [build_mapper(s) for s in steps]

        def run(pages):
            stats = []
            for step, fn in zip(steps, fns):
                before = {id(p): p["text"] for p in pages}
                rejects = []
                pages, rec = run_step(step, fn, pages, rejects)
                modified = sum(1 for p in pages if before.get(id(p)) is not None and p["text"] != before[id(p)])
                stats.append((step.func, rec["removed"], modified, len(rejects)))
            return pages, stats

        pages = generate_pages(1000, seed=11)
        out, stats = run(copy.deepcopy(pages))
        out2, _ = run(copy.deepcopy(pages))
    finally:
        os.chdir(cwd)
    return pages, out, out2, stats


def test_every_step_has_work(recipe_run):
    _, out, _, stats = recipe_run
    assert len(stats) == 26
    for name, removed, modified, errors in stats:
        assert errors == 0, name
        if name in FILTERS_WITHOUT_WORK:
            continue
        assert removed + modified > 0, f"{name} neither removed nor modified any page"
    assert 0.3 < len(out) / 1000 < 0.9


def test_recipe_is_deterministic(recipe_run):
    _, out, out2, _ = recipe_run
    assert out == out2


def test_recipe_output_invariants(recipe_run):
    _, out, _, _ = recipe_run
    for page in out:
        assert page["url"] == page["metadata"]["WARC-Target-URI"]
        assert list(page["language_id_whole_page_fasttext"]) == ["en"]
        assert page["language_id_whole_page_fasttext"]["en"] > 0.65
        assert "\n\n\n" not in page["text"]
        assert page["text"] == page["text"].strip()


def test_generated_pages_are_seeded_and_varied():
    a = generate_pages(50, seed=1)
    assert a == generate_pages(50, seed=1)
    assert a != generate_pages(50, seed=2)
    assert generate_pages(80, seed=1)[:50] == a  # a page depends only on (seed, index)
    for p in a:
        assert set(p) >= {"text", "url", "metadata", "warcinfo"}
        assert p["metadata"]["WARC-Target-URI"] == p["url"]
    assert len({p["text"][:40] for p in a}) == 50
