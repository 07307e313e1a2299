"""`dclm demo`: `dclm experiment` on an embedded spec and an embedded raw crawl, built at run time.

    crawl (seeded web pages written as WARC responses, with non-HTML and empty records) -> extract
    arm raw:            tokenize -> train -> eval
    arm dclm-baseline:  heuristics (the DCLM-Baseline RefinedWeb recipe) -> dedup (BFF old-both, 13-grams)
                        -> quality (fastText trained on held-aside clean articles vs the pool, top share)
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


# pages in the crawl, training tokens per arm (steps x 16 sequences x 128 tokens), held-out articles. Past
# ~100 steps on this synthetic crawl the raw arm overtakes the curated one on held-out perplexity (README).
SIZES = {"small": {"pages": 500, "tokens": 16 * 128 * 50, "heldout": 50},
         "default": {"pages": 2000, "tokens": 16 * 128 * 60, "heldout": 200}}
PROMPTS = ["The garden", "Why does the river", "In the morning the teacher"]
DEMO_SEQ_LEN = 128
DEMO_VOCAB = 2048


@dataclass(frozen=True)
class DemoConfig:
    output: str = arg("dclm-demo", help="experiment folder (stage outputs, summary.json, report.html)")
    size: Literal["small", "default"] = arg("default", help="small: a 500-page crawl and 50 training steps per arm "
                                            "(about 30 s); default: 2,000 pages and 60 steps (about a minute)")
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

    size = SIZES[cfg.size]
    inputs = out / "inputs"
    crawl = inputs / "crawl"
    if not crawl.is_dir():
        pages = generate_pages(size["pages"], seed=cfg.seed)
        plant_duplicates(pages, 0.1, cfg.seed)
        for k in range(4):
            write_warc(str(crawl / f"CC-DEMO-{k:05d}.warc.gz"), pages[k::4], seed=cfg.seed)
    # held-aside clean prose (seeds of their own, disjoint from each other and from the crawl), published and
    # extracted like the crawl so that the classifier and the perplexity see content, not formatting
    positives = _extracted(inputs / "positives", clean_articles(400, cfg.seed + 2), cfg.seed + 2)
    heldout = _extracted(inputs / "heldout", clean_articles(size["heldout"], cfg.seed + 1), cfg.seed + 1)
    asset_paths, stand_ins = _recipe_assets(inputs)
    recipe = _demo_recipe(inputs, asset_paths, str(lid_model_path(download=True)))
    ev = {"heldout": [str(heldout)], "prompts": PROMPTS}
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
             "quality": {"positives": [str(positives)], "keep_fraction": 0.3}},
        ],
        "train": {"scale": "smoke", "seq_len": DEMO_SEQ_LEN, "log_every": 5,
                  **({"tokens": size["tokens"]} if size["tokens"] else {})},
        "eval": ev,
    }


def _extracted(directory: Path, pages: list[dict], seed: int) -> Path:
    """`pages` written as one WARC (no non-HTML or empty records) and run through `dclm extract`."""
    from dclm.demo.warc import write_warc
    from dclm.extract.config import ExtractConfig
    from dclm.extract.run import run_extract

    warc = directory / "warc" / "clean.warc.gz"
    if not warc.exists():
        for i, page in enumerate(pages):
            page["url"] = f"https://clean-prose.example/{directory.name}/{i}"
        write_warc(str(warc), pages, seed=seed, non_html=0.0, empty=0.0)
    run_extract(ExtractConfig(inputs=(str(warc),), output=str(directory / "pages"), workers=1, progress=False))
    return directory / "pages"


def run_demo(cfg: DemoConfig):
    """Build the embedded inputs and run the experiment; returns the ExperimentResult."""
    from dclm.experiment.run import run_experiment
    from dclm.experiment.spec import parse_spec

    out = Path(cfg.output).resolve()
    out.mkdir(parents=True, exist_ok=True)
    spec_dict = build_inputs(cfg, out)
    (out / "inputs" / "experiment.yaml").write_text(yaml.safe_dump(spec_dict, sort_keys=False), encoding="utf-8")
    return run_experiment(parse_spec(spec_dict), str(out), workers=cfg.workers, progress=cfg.progress)
