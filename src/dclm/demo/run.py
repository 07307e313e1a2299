"""`dclm demo`: DCLM's whole loop on an embedded, seeded sample of web pages, on one machine, in minutes.

    pool (generated DCLM-Pool pages) -> heuristics (the DCLM-Baseline RefinedWeb recipe, `dclm process`)
    -> dedup (BFF old-both, 13-grams) -> quality (train a fastText classifier, score, keep the top share)
    -> tokenize-shuffle (open_lm shards) -> model (a tiny open_lm model saved in the DCLM-7B layout,
    loaded back and sampled)

Every stage is the same function the matching `dclm` verb calls, and each resumes on a rerun. Assets the
recipe names (banlists, the IANA TLD list, the language-ID model) come from `dclm assets fetch` when it
has been run; otherwise the demo writes small stand-in lists of its own (listed in the summary) and takes
the `lid.176.ftz` language-ID model as `dclm.assets.lid_model_path` finds it.
"""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from dclm.errors import DclmError

logger = logging.getLogger(__name__)

RECIPE = "dclm_baseline_refinedweb"
DEMO_TLDS = ["com", "org", "net", "edu", "gov", "io", "info", "blog", "news", "uk", "de", "fr", "es", "co", "us"]


@dataclass
class StageReport:
    stage: str
    docs_in: int
    docs_out: int
    secs: float
    output: str
    detail: dict = field(default_factory=dict)


def _count(directory: Path) -> int:
    from dclm.io import iter_pages, list_shards

    return sum(1 for s in list_shards(str(directory)) for _ in iter_pages(s.url, text_key=None))


def _recipe_assets(out: Path) -> tuple[dict[str, str], list[str]]:
    """Paths for the recipe's asset files: the fetched originals when present, else demo stand-ins."""
    from dclm.assets import find_asset
    from dclm.demo import webpages

    stand_ins = {
        "refinedweb_banned_domains_curated.txt": webpages.BANNED_DOMAINS,
        "refinedweb_banned_words_strict_reverse_engineered.txt": webpages.BANNED_URL_PARTS["strict"],
        "refinedweb_banned_words_hard_reverse_engineered.txt": webpages.BANNED_URL_PARTS["hard"],
        "refinedweb_banned_words_soft_reverse_engineered.txt": webpages.BANNED_URL_PARTS["soft"],
        "iana_tlds.txt": DEMO_TLDS,
    }
    paths, used_stand_ins = {}, []
    for name, items in stand_ins.items():
        found = find_asset(name)
        if found is None:
            found = out / "demo_assets" / name
            found.parent.mkdir(parents=True, exist_ok=True)
            found.write_text("\n".join(items) + "\n", encoding="utf-8")
            used_stand_ins.append(name)
        paths[name] = str(found)
    return paths, used_stand_ins


def _demo_recipe(out: Path, asset_paths: dict[str, str], lid_path: str) -> Path:
    """The bundled DCLM-Baseline recipe with its asset arguments pointed at concrete files."""
    from dclm.configs import resolve_config

    with open(resolve_config(RECIPE), encoding="utf-8") as f:
        cfg = yaml.safe_load(f)
    for entry in cfg:
        for step in entry["steps"]:
            if not isinstance(step, dict):
                continue
            if "banlist_from_fname" in step:
                step["banlist_from_fname"] = asset_paths[os.path.basename(step["banlist_from_fname"])]
            if step.get("func") == "url_removal_modifier":
                step["tlds_filepath"] = asset_paths["iana_tlds.txt"]
            if step.get("func") == "detect_lang_whole_page_enricher" and step.get("model") == "fasttext":
                step["model_path"] = lid_path
    path = out / f"{RECIPE}.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    return path


def _explanations(n: int, seed: int) -> list[dict]:
    """Positive examples for the quality classifier: ELI5-style question/answer texts."""
    from dclm.demo import webpages as w

    rng = random.Random(f"positives:{seed}")
    docs = []
    for i in range(n):
        noun, other = rng.choice(w.NOUNS), rng.choice(w.NOUNS)
        lines = [f"Question: Why does a {noun} need a {other}? Explain like I'm five."]
        for _ in range(rng.randint(3, 6)):
            lines.append(f"Think of a {rng.choice(w.NOUNS)} that {rng.choice(w.VERBS)} a {rng.choice(w.ADJECTIVES)} "
                         f"{rng.choice(w.NOUNS)}. Because the {noun} {rng.choice(w.VERBS)} the {other}, it "
                         f"{rng.choice(w.ADVERBS)} {rng.choice(w.VERBS)} what the {rng.choice(w.NOUNS)} needs.")
        lines.append(f"So the short answer is that the {noun} and the {other} work together.")
        docs.append({"text": "\n".join(lines), "id": f"eli5-{i}"})
    return docs


def run_demo(output: str = "dclm-demo", n_pages: int = 2000, seed: int = 0, workers: int = 2,
             overwrite: bool = False, progress: bool = True) -> list[StageReport]:
    """Run every stage into `output`; returns one report per stage (also written to summary.json)."""
    out = Path(output).resolve()
    if overwrite and out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    reports: list[StageReport] = []

    def stage(name: str):
        def deco(fn):
            t0 = time.perf_counter()
            logger.info("demo: %s", name)
            rep = fn()
            rep.secs = round(time.perf_counter() - t0, 2)
            reports.append(rep)
            return rep
        return deco

    @stage("pool")
    def pool():
        from dclm.demo.sample import write_sample_shards

        d = out / "pool"
        if not d.exists():
            write_sample_shards(str(d), n_pages=n_pages, n_shards=4, seed=seed, duplicate_fraction=0.1)
        return StageReport("pool", n_pages, _count(d), 0, str(d), {"generator": "dclm.demo.webpages", "seed": seed, "planted_duplicates": 0.1})

    @stage("heuristics")
    def heuristics():
        from dclm.assets import lid_model_path
        from dclm.pipeline import run_process

        asset_paths, stand_ins = _recipe_assets(out)
        lid = str(lid_model_path(download=True))
        recipe = _demo_recipe(out, asset_paths, lid)
        res = run_process(str(recipe), str(out / "pool"), str(out / "heuristics"), workers=workers, progress=progress)
        if not res.ok:
            raise DclmError(f"heuristics failed on {len(res.failed)} shard(s): {res.failed[0][1]}")
        removed = {t["name"]: t["removed"] for t in res.step_totals if t["removed"]}
        return StageReport("heuristics", res.pages_in, res.pages_out, 0, res.output_dir,
                           {"config": str(recipe), "removed_by_step": removed, "asset_stand_ins": stand_ins,
                            "lid_model": lid})

    @stage("dedup")
    def dedup():
        from dclm.dedup.bff import BffConfig, run_bff

        src = Path(heuristics.output) / "processed_data"
        d = out / "dedup"
        stats = run_bff(BffConfig(inputs=[str(src)], output_directory=str(d), expected_ngram_count=2_000_000,
                                  fp_rate=0.01, min_ngram_size=13, max_ngram_size=13, filtering_threshold=0.8,
                                  remove_type="old-both", seed=seed, threads=workers, progress=progress,
                                  no_save_bloom_filter=True))
        return StageReport("dedup", heuristics.docs_out, _count(d), 0, str(d),
                           {k: v for k, v in stats.items() if isinstance(v, (int, float, str))})

    @stage("quality")
    def quality():
        from dclm.io import write_pages
        from dclm.quality.score import score_shards
        from dclm.quality.select import select_pages
        from dclm.quality.train import FastTextParams, train_classifier

        d = out / "quality"
        pos = d / "positives" / "eli5_style.jsonl.zst"
        if not pos.exists():
            write_pages(str(pos), _explanations(400, seed))
        model = d / "demo_quality.bin"
        if not model.exists():
            train_classifier([str(pos.parent)], [str(out / "pool")], str(model),
                             params=FastTextParams(bucket=100_000, seed=seed), negative_sample=400, valid_fraction=0.1)
        card = json.loads((d / "demo_quality.card.json").read_text()) if (d / "demo_quality.card.json").exists() else {}
        score_shards(str(model), [str(dedup.output)], str(d / "attributes"), workers=workers, progress=progress)
        report = select_pages(str(d / "attributes"), keep_top_fraction=0.3, inputs=[str(dedup.output)],
                              output=str(d / "kept"), progress=progress)
        return StageReport("quality", dedup.docs_out, _count(d / "kept"), 0, str(d / "kept"),
                           {"threshold": report.get("threshold"), "valid_roc_auc": card.get("metrics", {}).get("roc_auc")})

    summary = [r.__dict__ for r in reports]
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return reports


def format_reports(reports: list[StageReport]) -> str:
    head = f"{'stage':<18} {'docs in':>8} {'docs out':>9} {'secs':>7}  output"
    lines = [head, "-" * len(head)]
    for r in reports:
        lines.append(f"{r.stage:<18} {r.docs_in:>8} {r.docs_out:>9} {r.secs:>7.1f}  {r.output}")
    return "\n".join(lines)
