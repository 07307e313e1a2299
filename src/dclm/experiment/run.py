"""`run_experiment`: every arm of a spec through the same verbs, one model per arm at equal tokens, one report.

Layout under OUTPUT:
  pool/                  extracted pages (when the pool is WARC/WET), shared by every arm
  tokenizer/             the BPE trained on the pool (when the spec asks for one)
  arms/<arm>/            the arm's stage outputs: heuristics/, dedup/, quality/, tokens/, train/, eval/
  summary.json           every stage's documents and bytes in/out, removals, training curves, evaluation
  report.html            the same as a page a person reads (plots embedded)
Each stage is a verb with its own resume, so a rerun reuses every stage already done.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from dclm.errors import DclmError
from dclm.experiment.spec import Arm, Spec
from dclm.runtime.config import arg

log = logging.getLogger(__name__)
_WARC_SUFFIXES = (".warc", ".warc.gz", ".wet", ".wet.gz", ".arc.gz")
_EXAMPLES = 3


@dataclass(frozen=True)
class ExperimentConfig:
    spec: str = arg(positional=True, help="the experiment YAML (pool, tokenizer, arms, train, eval)")
    output: str = arg(help="experiment folder (stage outputs, summary.json, report.html)")
    workers: int = arg(0, help="processes for the data stages (0 = all cores)")
    progress: bool = arg(True, help="progress bars inside long stages")


@dataclass
class StageRecord:
    arm: str | None  # None: shared by every arm (extract, tokenizer)
    stage: str
    docs_in: int
    docs_out: int
    bytes_in: int
    bytes_out: int
    secs: float
    detail: dict = field(default_factory=dict)
    examples: list[str] = field(default_factory=list)  # starts of removed documents

    @property
    def removed(self) -> int:
        return self.docs_in - self.docs_out


@dataclass
class ExperimentResult:
    output: str
    summary: dict
    report: str


def _pages(path: str) -> list[tuple[str, str]]:
    """(key, text) of every page under `path`, in sorted shard order; the key tells a page from another."""
    from dclm.io import iter_pages, list_shards

    import hashlib

    out = []
    for shard in list_shards(path):
        for page in iter_pages(shard.url):
            text = page.get("text") if isinstance(page.get("text"), str) else ""
            out.append((page.get("url") or hashlib.sha1(text.encode()).hexdigest(), text))
    return out


def _measure(before: list[tuple[str, str]], after_path: str) -> tuple[list[tuple[str, str]], int, list[str]]:
    after = _pages(after_path)
    kept = {k for k, _ in after}
    examples = [t[:300] for k, t in before if k not in kept and t.strip()][:_EXAMPLES]
    return after, sum(len(t.encode()) for _, t in after), examples


def _nbytes(pages: list[tuple[str, str]]) -> int:
    return sum(len(t.encode()) for _, t in pages)


class _Stages:
    """Runs stages, keeps their records and prints one line per stage."""

    def __init__(self, emit):
        self.records: list[StageRecord] = []
        self.emit = emit

    def add(self, rec: StageRecord) -> StageRecord:
        self.records.append(rec)
        what = {"train": f"{rec.detail.get('steps')} steps on {rec.docs_in} contexts, final loss "
                          f"{rec.detail.get('final_loss') or float('nan'):.3f}",
                "eval": f"held-out perplexity {rec.detail.get('heldout_perplexity') or float('nan'):.2f}",
                "tokenizer": f"vocabulary {rec.detail.get('vocab_size')}"}.get(rec.stage)
        if what is None:
            what = f"{rec.docs_in} -> {rec.docs_out} docs" + (f" ({rec.removed} removed)" if rec.removed > 0 else "")
        self.emit(f"{rec.arm or 'shared':<14} {rec.stage:<11} {rec.secs:6.1f} s  {what}")
        return rec


def run_experiment(spec: Spec, output: str, workers: int = 0, progress: bool = True, emit=print) -> ExperimentResult:
    out = Path(output).resolve()
    out.mkdir(parents=True, exist_ok=True)
    workers = workers or spec.workers
    stages = _Stages(emit)
    t_all = time.perf_counter()

    pool_dir = _extract(spec, out, workers, progress, stages)
    pool_pages = _pages(pool_dir)
    tokenizer = _tokenizer(spec, out, pool_dir, stages)
    arms = {}
    for arm in spec.arms:
        arms[arm.name] = _run_arm(spec, arm, out, pool_dir, pool_pages, tokenizer, workers, progress, stages)

    summary = _relative(_summary(spec, stages.records, arms, time.perf_counter() - t_all), str(out) + "/")
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    from dclm.experiment.report import write_report

    report = write_report(summary, out / "report.html")
    return ExperimentResult(str(out), summary, str(report))


def _extract(spec: Spec, out: Path, workers: int, progress: bool, stages: _Stages) -> str:
    """The pool as page shards: WARC/WET inputs go through `dclm extract`; page shards are read as they are."""
    warcs = [p for p in spec.pool if p.endswith(_WARC_SUFFIXES) or Path(p).is_dir()
             and any(str(f).endswith(_WARC_SUFFIXES) for f in Path(p).rglob("*"))]
    if not warcs:
        pages = [pg for p in spec.pool for pg in _pages(p)]
        stages.add(StageRecord(None, "extract", len(pages), len(pages), _nbytes(pages), _nbytes(pages), 0.0,
                               {"note": "the pool is page shards already"}))
        if len(spec.pool) == 1:
            return spec.pool[0]
        raise DclmError("a pool of page shards must be one folder")
    from dclm.extract.config import ExtractConfig
    from dclm.extract.run import run_extract

    t0 = time.perf_counter()
    res = run_extract(ExtractConfig(inputs=tuple(spec.pool), output=str(out / "pool"), workers=workers,
                                    progress=progress))
    tot = res.totals()
    kept = tot["pages"]
    records = kept + tot["skipped_non_html"] + tot["skipped_oversized"] + tot["empty_extraction"] + tot["errors"]
    text_bytes = _nbytes(_pages(str(out / "pool")))
    stages.add(StageRecord(None, "extract", records, kept, tot["html_bytes"], text_bytes,
                           time.perf_counter() - t0,
                           {"removed_by_reason": {k: tot[k] for k in ("skipped_non_html", "skipped_oversized",
                                                                       "empty_extraction", "errors") if tot[k]},
                            "input_bytes": tot["input_bytes"]}))
    return str(out / "pool")


def _tokenizer(spec: Spec, out: Path, pool_dir: str, stages: _Stages) -> str:
    if not isinstance(spec.tokenizer, int):
        return spec.tokenizer
    path = out / "tokenizer" / "tokenizer.json"
    t0 = time.perf_counter()
    if not path.is_file():
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=spec.tokenizer, special_tokens=["<|endoftext|>"],
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
        tok.train_from_iterator((t for _, t in _pages(pool_dir)), trainer=trainer)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tok.save(str(tmp))
        tmp.replace(path)
    n = len(_pages(pool_dir))
    stages.add(StageRecord(None, "tokenizer", n, n, 0, 0, time.perf_counter() - t0,
                           {"kind": "byte-level BPE trained on the pool", "vocab_size": spec.tokenizer,
                            "path": str(path)}))
    return str(path)


def _run_arm(spec: Spec, arm: Arm, out: Path, pool_dir: str, pool_pages, tokenizer: str, workers: int,
             progress: bool, stages: _Stages) -> dict:
    d = out / "arms" / arm.name
    current, pages = pool_dir, pool_pages
    info: dict = {"stages": arm.stages}
    if arm.process:
        current, pages = _heuristics(arm, d, current, pages, workers, progress, stages)
    if arm.dedup is not None:
        current, pages = _dedup(arm, d, current, pages, spec.seed, workers, progress, stages)
    if arm.quality:
        current, pages, info["quality"] = _quality(arm, d, current, pages, pool_dir, spec.seed, workers, progress,
                                                   stages)
    tokens = _tokenize(spec, arm, d, current, pages, tokenizer, workers, progress, stages)
    info["train"] = _train(spec, arm, d, tokens, progress, stages)
    info["eval"] = _eval(spec, arm, d, info["train"], progress, stages)
    return info


def _heuristics(arm, d, current, pages, workers, progress, stages):
    from dclm.configs import resolve_config
    from dclm.process import ProcessConfig, run_process

    t0 = time.perf_counter()
    recipe = str(resolve_config(arm.process))
    res = run_process(ProcessConfig(pipeline=recipe, inputs=(current,), output=str(d / "heuristics"),
                                    workers=workers, progress=progress))
    if not res.ok:
        raise DclmError(f"arm {arm.name}: heuristics failed on {len(res.failed)} shard(s): {res.failed[0][1]}")
    new_dir = str(Path(res.output_dir) / "processed_data")
    after, nbytes, examples = _measure(pages, new_dir)
    removed = {t["name"]: t["removed"] for t in res.step_totals if t.get("removed")}
    stages.add(StageRecord(arm.name, "heuristics", len(pages), len(after), _nbytes(pages), nbytes,
                           time.perf_counter() - t0, {"recipe": recipe, "removed_by_step": removed}, examples))
    return new_dir, after


def _dedup(arm, d, current, pages, seed, workers, progress, stages):
    from dclm.dedup.bff import BffConfig, run_bff
    from dclm.runtime.config import to_dict

    t0 = time.perf_counter()
    s = arm.dedup
    target = d / "dedup"
    res = run_bff(BffConfig(inputs=(current,), output_directory=str(target),
                            expected_ngram_count=int(s.get("expected_ngram_count", 2_000_000)),
                            fp_rate=float(s.get("fp_rate", 0.01)), min_ngram_size=int(s.get("ngram", 13)),
                            max_ngram_size=int(s.get("ngram", 13)), filtering_threshold=float(s.get("threshold", 0.8)),
                            remove_type=s.get("remove_type", "old-both"), seed=seed, workers=workers,
                            progress=progress, save_bloom_filter=False))
    stats = to_dict(res)
    after, nbytes, examples = _measure(pages, str(target))
    detail = {k: v for k, v in stats.items() if isinstance(v, (int, float, str)) and "rss" not in k
              and not k.endswith(("_s", "secs", "seconds"))}  # timings belong to summary["timings"]
    stages.add(StageRecord(arm.name, "dedup", len(pages), len(after), _nbytes(pages), nbytes,
                           time.perf_counter() - t0, detail, examples))
    return str(target), after


def _quality(arm, d, current, pages, pool_dir, seed, workers, progress, stages):
    from dclm.classifier.config import ScoreConfig, SelectConfig
    from dclm.classifier.model import DEFAULT_KEY
    from dclm.classifier.score import score_shards
    from dclm.classifier.select import select_pages
    from dclm.classifier.train import FastTextParams, train_classifier

    t0 = time.perf_counter()
    q = arm.quality
    qd = d / "quality"
    model = q.get("model")
    card = {}
    if not model:
        model = str(qd / "classifier.bin")
        if not Path(model).is_file():
            train_classifier(list(q["positives"]), [pool_dir], model,
                             params=FastTextParams(bucket=int(q.get("bucket", 100_000)), seed=seed),
                             negative_sample=int(q.get("negatives", 400)), valid_fraction=0.1)
        card_path = qd / "classifier.card.json"
        card = json.loads(card_path.read_text()) if card_path.is_file() else {}
    score_shards(ScoreConfig(model=model, inputs=[current], output=str(qd / "attributes"), workers=workers,
                             progress=progress))
    selected = select_pages(SelectConfig(attributes=str(qd / "attributes"),
                                         keep_top_fraction=float(q.get("keep_fraction", 0.1)), inputs=[current],
                                         output=str(qd / "kept"), progress=progress))
    scores = [r[DEFAULT_KEY] for r in _records(qd / "attributes") if isinstance(r.get(DEFAULT_KEY), (int, float))]
    after, nbytes, examples = _measure(pages, str(qd / "kept"))
    metrics = card.get("valid_metrics", {})
    detail = {"threshold": selected.threshold, "keep_fraction": q.get("keep_fraction", 0.1),
              "valid_roc_auc": metrics.get("roc_auc"), "model": model}
    stages.add(StageRecord(arm.name, "quality", len(pages), len(after), _nbytes(pages), nbytes,
                           time.perf_counter() - t0, detail, examples))
    return str(qd / "kept"), after, {"scores": [round(s, 6) for s in scores], "threshold": selected.threshold}


def _records(directory: Path):
    from dclm.io import iter_pages, list_shards

    for shard in list_shards(str(directory)):
        yield from iter_pages(shard.url, text_key=None)


def _tokenize(spec, arm, d, current, pages, tokenizer, workers, progress, stages) -> str:
    from dclm.tokenize.run import tokenize_shuffle

    t0 = time.perf_counter()
    seq_len = _seq_len(spec)
    res = tokenize_shuffle([current], str(d / "tokens"), tokenizer=tokenizer, seqlen=seq_len + 1, seed=spec.seed,
                           chunk_size=256, workers=workers, memory_budget=1 << 30, progress=progress)
    stages.add(StageRecord(arm.name, "tokenize", len(pages), len(pages) - res.rejected, _nbytes(pages),
                           res.num_sequences * (seq_len + 1) * 2, time.perf_counter() - t0,
                           {"tokens": res.num_tokens, "contexts": res.num_sequences, "shards": res.num_shards,
                            "seqlen": seq_len + 1, "pad_tokens": res.pad_tokens}))
    return res.output


def _seq_len(spec: Spec) -> int:
    from dclm.train.scales import get_scale

    return int(spec.train.get("seq_len") or get_scale(spec.train["scale"]).model_args().seq_len)


def _train(spec, arm, d, tokens, progress, stages) -> dict:
    from dclm.train.config import TrainConfig
    from dclm.train.run import METRICS, run_train

    t0 = time.perf_counter()
    params = {"seed": spec.seed, "multiple_data_passes": True, "tensorboard": False, **spec.train}
    try:
        cfg = TrainConfig(data=(tokens,), output=str(d / "train"), resume="latest", progress=progress, **params)
    except TypeError as e:
        raise DclmError(f"train: {e}") from None
    r = run_train(cfg)
    records = [json.loads(x) for x in (Path(cfg.output) / METRICS).read_text().splitlines()]
    curve = [(rec["step"], rec["loss"]) for rec in records]
    n_ctx = json.loads((Path(tokens) / "index.json").read_text())["num_sequences"]
    stages.add(StageRecord(arm.name, "train", n_ctx, n_ctx, 0, 0, time.perf_counter() - t0,
                           {"steps": r.total_steps, "tokens": records[-1]["tokens"] if records else 0,
                            "final_loss": curve[-1][1] if curve else None, "model": r.model_dir}))
    return {"model": r.model_dir, "curve": curve, "steps": r.total_steps,
            "tokens": records[-1]["tokens"] if records else 0, "data_contexts": n_ctx}


def _eval(spec, arm, d, train: dict, progress, stages) -> dict:
    from dclm.experiment import evaluate

    t0 = time.perf_counter()
    ev = spec.eval
    result: dict = {}
    texts = evaluate.heldout_texts(ev["heldout"]) if ev.get("heldout") else []
    if texts:
        result["heldout"] = evaluate.perplexity(train["model"], texts, _seq_len(spec))
    if ev.get("data_dir"):
        (d / "eval").mkdir(parents=True, exist_ok=True)
        result.update(evaluate.icl(train["model"], ev.get("suite", "light"), ev["data_dir"],
                                   str(d / "eval" / "icl.json"), ev.get("limit"), progress))
    if ev.get("prompts"):
        result["samples"] = evaluate.samples(train["model"], list(ev["prompts"]), spec.seed)
    stages.add(StageRecord(arm.name, "eval", len(texts), len(texts), _nbytes([("", t) for t in texts]), 0,
                           time.perf_counter() - t0,
                           {"heldout_perplexity": (result.get("heldout") or {}).get("perplexity"),
                            "icl_tasks": len(result.get("icl", {})), "core": result.get("core")}))
    return result


def _relative(obj, prefix: str):
    """Paths inside the experiment folder written relative to it, so two folders' summaries compare equal."""
    if isinstance(obj, str):
        return obj[len(prefix):] if obj.startswith(prefix) else obj
    if isinstance(obj, dict):
        return {k: _relative(v, prefix) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_relative(v, prefix) for v in obj]
    return obj


def _summary(spec: Spec, records: list[StageRecord], arms: dict, secs: float) -> dict:
    """summary.json: everything but `timings` is a pure function of the spec and the seed."""
    return {
        "name": spec.name,
        "notes": spec.notes,
        "seed": spec.seed,
        "spec": {"pool": [str(p) for p in spec.pool], "tokenizer": spec.tokenizer,
                 "arms": [dataclasses.asdict(a) for a in spec.arms], "train": spec.train, "eval": spec.eval},
        "stages": [{"arm": r.arm, "stage": r.stage, "docs_in": r.docs_in, "docs_out": r.docs_out,
                    "removed": r.removed, "bytes_in": r.bytes_in, "bytes_out": r.bytes_out, "detail": r.detail,
                    "examples": r.examples} for r in records],
        "arms": {name: {"train": {k: v for k, v in a["train"].items() if k != "model"},
                        "eval": a["eval"], "quality": a.get("quality")} for name, a in arms.items()},
        "timings": {"total_s": round(secs, 2),
                    "stages": [{"arm": r.arm, "stage": r.stage, "secs": round(r.secs, 2)} for r in records]},
    }
