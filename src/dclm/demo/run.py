"""`dclm demo`: `dclm experiment` on an embedded spec and an embedded raw crawl, built at run time.

    crawl (seeded web pages written as WARC responses, with non-HTML and empty records) -> extract
    arm raw:            tokenize -> train -> eval
    arm dclm-baseline:  heuristics (the DCLM-Baseline RefinedWeb recipe) -> dedup (BFF old-both, 13-grams)
                        -> quality (fastText trained on held-aside clean explanations vs the pool, top share)
                        -> tokenize -> train -> eval
Both arms train the same `smoke`-scale model on the same number of tokens with a BPE trained on the pool, and
are scored on held-out clean articles (perplexity), the prompts below, and the ICL suite when
`--eval-data-dir` holds task files. Assets the recipe names (banlists, the IANA TLD list, the language-ID
model) come from `dclm assets fetch` when it has been run; otherwise the demo writes small stand-in lists of
its own (listed in the summary) and takes `lid.176.ftz` as `dclm.assets.lid_model_path` finds it.
"""

from __future__ import annotations

import json
import logging
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml

from dclm.runtime.config import arg

logger = logging.getLogger(__name__)

RECIPE = "dclm_baseline_refinedweb"
DEMO_TLDS = ["com", "org", "net", "edu", "gov", "io", "info", "blog", "news", "uk", "de", "fr", "es", "co", "us"]


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


# pages in the crawl, training tokens per arm (steps x 16 sequences x 128 tokens), held-out articles
SIZES = {"small": {"pages": 500, "tokens": 16 * 128 * 50, "heldout": 50},
         "default": {"pages": 2000, "tokens": 16 * 128 * 300, "heldout": 200}}
PROMPTS = ["The garden", "Why does the river", "In the morning the teacher"]
DEMO_SEQ_LEN = 128
DEMO_VOCAB = 2048


@dataclass(frozen=True)
class DemoConfig:
    output: str = arg("dclm-demo", help="experiment folder (stage outputs, summary.json, report.html)")
    size: Literal["small", "default"] = arg("default", help="small: a 500-page crawl and 50 training steps per arm "
                                            "(about 2 minutes); default: 2,000 pages and 300 steps")
    seed: int = arg(0, help="seed of the crawl and of every seeded stage")
    eval_data_dir: str | None = arg(None, help="llm-foundry local_data folder: also run the ICL suite (light)")
    eval_limit: int | None = arg(50, help="items per ICL task when --eval-data-dir is given")
    workers: int = arg(2, help="processes for the data stages")
    progress: bool = arg(True, help="progress bars inside long stages")


def build_inputs(cfg: DemoConfig, out: Path) -> dict:
    """The crawl, the classifier's positives, the held-out text and the recipe under OUT/inputs; the spec."""
    from dclm.assets import lid_model_path
    from dclm.demo.sample import plant_duplicates
    from dclm.demo.warc import write_warc
    from dclm.demo.webpages import clean_articles, generate_pages
    from dclm.io import write_pages

    size = SIZES[cfg.size]
    inputs = out / "inputs"
    crawl = inputs / "crawl"
    if not crawl.is_dir():
        pages = generate_pages(size["pages"], seed=cfg.seed)
        plant_duplicates(pages, 0.1, cfg.seed)
        for k in range(4):
            write_warc(str(crawl / f"CC-DEMO-{k:05d}.warc.gz"), pages[k::4], seed=cfg.seed)
    positives = inputs / "positives" / "eli5_style.jsonl.zst"
    if not positives.exists():
        write_pages(str(positives), _explanations(400, cfg.seed))
    heldout = inputs / "heldout" / "clean_articles.jsonl.zst"
    if not heldout.exists():
        write_pages(str(heldout), clean_articles(size["heldout"], cfg.seed + 1))
    asset_paths, stand_ins = _recipe_assets(inputs)
    recipe = _demo_recipe(inputs, asset_paths, str(lid_model_path(download=True)))
    ev = {"heldout": [str(heldout.parent)], "prompts": PROMPTS}
    if cfg.eval_data_dir:
        ev.update({"data_dir": cfg.eval_data_dir, "suite": "light", "limit": cfg.eval_limit})
    return {
        "name": f"dclm demo ({cfg.size}, seed {cfg.seed})",
        "notes": "Recipe assets: " + (f"demo stand-ins for {', '.join(stand_ins)} (run `dclm assets fetch` for "
                                      "DCLM's own)" if stand_ins else "DCLM's, from the asset cache"),
        "seed": cfg.seed,
        "workers": cfg.workers,
        "pool": {"paths": [str(crawl)]},
        "tokenizer": {"train_bpe": DEMO_VOCAB},
        "arms": [
            {"name": "raw"},
            {"name": "dclm-baseline", "process": str(recipe), "dedup": {"ngram": 13, "threshold": 0.8},
             "quality": {"positives": [str(positives.parent)], "keep_fraction": 0.3}},
        ],
        "train": {"scale": "smoke", "seq_len": DEMO_SEQ_LEN, "tokens": size["tokens"], "log_every": 5},
        "eval": ev,
    }


def run_demo(cfg: DemoConfig):
    """Build the embedded inputs and run the experiment; returns the ExperimentResult."""
    from dclm.experiment.run import run_experiment
    from dclm.experiment.spec import parse_spec

    out = Path(cfg.output).resolve()
    out.mkdir(parents=True, exist_ok=True)
    spec_dict = build_inputs(cfg, out)
    (out / "inputs" / "experiment.yaml").write_text(yaml.safe_dump(spec_dict, sort_keys=False), encoding="utf-8")
    return run_experiment(parse_spec(spec_dict), str(out), workers=cfg.workers, progress=cfg.progress)
