"""`dclm eval`: score a model on a task suite and write DCLM's eval JSON (spec §1.6).

A task's accuracy is the fraction of its items judged correct; a `has_categories` task's is the
unweighted mean of its categories' accuracies (DCLM's eval/eval_openlm_ckpt.py averages the per-category
logger keys). Tasks whose file is absent are skipped and listed; DCLM's aggregation then reports
Core/Extended as N/A.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Literal

from dclm.errors import DclmError
from dclm.runtime.config import ConfigError, arg

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvalConfig:
    tasks: str = arg(help="a suite (light, medium, mmlu_and_lowvar, heavy) or a task YAML (ours or DCLM's)")
    data_dir: str = arg(help="directory holding llm-foundry's local_data/ (or local_data itself)")
    output: str = arg(help="the eval JSON to write")
    model: str | None = arg(None, help="model directory in the DCLM/open_lm layout")
    hf_model: str | None = arg(None, help="a transformers causal LM directory (AutoModelForCausalLM)")
    tokenizer: str | None = arg(None, help="tokenizer.json or directory; default MODEL/tokenizer.json, else GPT-NeoX-20B")
    only: tuple[str, ...] = arg((), help="score only these task labels of the suite")
    batch_size: int = arg(16, help="contexts (or generation prompts) per forward")
    device: str | None = arg(None, help="cpu or cuda (default cuda when available)")
    dtype: Literal["fp32", "bf16", "fp16"] | None = arg(None, help="compute dtype (default bf16 on cuda, fp32 on cpu; fp32 is DCLM's reference)")
    limit: int | None = arg(None, help="score the first N items of each task (of each category)")
    log_samples: str | None = arg(None, help="directory for one JSONL of per-item records per task")
    max_seq_len: int | None = arg(None, help="context length (default: the suite's, 2048)")
    progress: bool = arg(True, help="progress bars")


@dataclass
class TaskResult:
    label: str
    accuracy: float
    items: int
    seconds: float
    categories: dict[str, float] = field(default_factory=dict)


@dataclass
class EvalResult:
    output: str
    doc: dict  # the eval JSON written
    tasks: list[TaskResult]
    missing: dict[str, str]  # label -> expected file


def _check(cfg: EvalConfig) -> None:
    if (cfg.model is None) == (cfg.hf_model is None):
        raise ConfigError("model", "give exactly one of --model DIR and --hf-model DIR")
    if cfg.batch_size < 1:
        raise ConfigError("batch_size", "must be at least 1")
    if cfg.limit is not None and cfg.limit < 1:
        raise ConfigError("limit", "must be at least 1")
    if not Path(cfg.data_dir).is_dir():
        raise ConfigError("data_dir", f"{cfg.data_dir}: no such directory")
    if cfg.device not in (None, "cpu", "cuda") and not str(cfg.device).startswith("cuda:"):
        raise ConfigError("device", f"{cfg.device!r}: use cpu or cuda")


def device_and_dtype(device: str | None, dtype: str | None):
    """(device, torch dtype): cuda when available unless told, bf16 on cuda and fp32 on cpu unless told."""
    import torch

    from dclm.model.checkpoint import DTYPES

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("device", "cuda asked for but no CUDA device is available")
    return device, DTYPES[dtype or ("bf16" if device.startswith("cuda") else "fp32")]


class Scorer:
    """The loaded model with the scorer and generator that suit it."""

    def __init__(self, cfg: EvalConfig):
        from dclm.generate.tokenizer import load_tokenizer

        device, dtype = device_and_dtype(cfg.device, cfg.dtype)
        model_dir = cfg.model or cfg.hf_model
        if not Path(model_dir).is_dir():
            raise ConfigError("model" if cfg.model else "hf_model", f"{model_dir}: no such directory")
        if cfg.model:
            from dclm.model.checkpoint import load_model

            self.model, self.ours = load_model(model_dir, device=device, dtype=dtype), True
            self.eos_id = 0  # GPT-NeoX <|endoftext|>, also llm-foundry's pad id for DCLM
        else:
            from dclm.extras import require

            require("--hf-model", "transformers")
            from transformers import AutoModelForCausalLM

            self.model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype).to(device).eval()
            self.ours = False
            eos = self.model.config.eos_token_id
            self.eos_id = (eos[0] if isinstance(eos, list) else eos) if eos is not None else 0
        self.model.eval()
        self.tokenizer = load_tokenizer(model_dir, cfg.tokenizer)
        self.batch_size = cfg.batch_size
        self.name = Path(model_dir).name

    def score(self, rows, item_of_row):
        if self.ours:
            from dclm.eval.prefix import score_shared_prefix

            return score_shared_prefix(self.model, rows, item_of_row, self.batch_size, pad_id=self.eos_id)
        from dclm.eval.score import score_batched

        return score_batched(self.model, rows, self.batch_size, pad_id=self.eos_id)

    def generate(self, prompts, max_new_tokens, stops):
        from dclm.eval.greedy import generate_hf, generate_ours

        if self.ours:
            return generate_ours(self.model, prompts, max_new_tokens, self.tokenizer, stops, self.batch_size, self.eos_id)
        return generate_hf(self.model, prompts, max_new_tokens, self.batch_size, self.eos_id, self.eos_id)


def _lowest(values: list[float]) -> int:
    """Index of the smallest perplexity, first on ties (llm-foundry: `subset.index(min(subset))`)."""
    import torch

    ppl = torch.exp(torch.tensor(values, dtype=torch.float32)).tolist()
    return ppl.index(min(ppl))


def score_items(scorer: Scorer, spec, items) -> list[dict]:
    """One record per item: correct plus the type's fields (see --log-samples)."""
    from dclm.eval.answers import decode_generated, final_answer, is_correct, normalize_answer

    if spec.type == "generation_task_with_answers":
        outs = scorer.generate([it.prompt for it in items], items[0].max_new_tokens if items else 1, spec.stop)
        records = []
        for it, ids in zip(items, outs):
            text = decode_generated(scorer.tokenizer, ids)
            cleaned = normalize_answer(final_answer(text, spec.stop, spec.cot_delimiter))
            records.append({"index": it.index, "correct": is_correct(cleaned, it.aliases), "output": text,
                            "cleaned_output": cleaned, "input_ids": [list(it.prompt)]})
        return records
    rows = [r for it in items for r in it.rows]
    owner = [k for k, it in enumerate(items) for _ in it.rows]
    scores = scorer.score(rows, owner)
    records, at = [], 0
    for it in items:
        s = scores[at:at + len(it.rows)]
        inputs = [list(r.context + r.continuation) for r in it.rows]
        at += len(it.rows)
        if spec.type == "language_modeling":
            records.append({"index": it.index, "correct": s[0].exact, "pred_ids": list(s[0].pred_ids),
                            "cont_ids": list(it.rows[0].continuation), "ce_sum": s[0].ce_sum, "input_ids": inputs})
        else:
            pred = _lowest([x.mean_ce for x in s])
            records.append({"index": it.index, "correct": pred == it.gold, "pred": pred,
                            "scores": [x.mean_ce for x in s], "input_ids": inputs})
    return records


def eval_task(scorer: Scorer, spec, path: Path, max_seq_len: int, limit: int | None, sample_log) -> TaskResult:
    from dclm.eval.data import read_task_file, split_categories
    from dclm.eval.prompts import PromptBuilder

    t0 = time.perf_counter()
    rows = read_task_file(path, spec.type)
    parts = split_categories(rows, path) if spec.has_categories else {None: rows}
    accs: dict[str | None, float] = {}
    n_items = 0
    for category, part in parts.items():
        items = PromptBuilder(spec, part, scorer.tokenizer, max_seq_len).build(limit)
        records = score_items(scorer, spec, items)
        accs[category] = sum(r["correct"] for r in records) / len(records)
        n_items += len(records)
        if sample_log is not None:
            for r in records:
                sample_log.write(json.dumps({"task": spec.label, "category": category, **r}) + "\n")
    acc = sum(accs.values()) / len(accs)
    cats = {c: a for c, a in accs.items() if c is not None}
    return TaskResult(spec.label, acc, n_items, time.perf_counter() - t0, cats)


def run(cfg: EvalConfig) -> EvalResult:
    """Score every task of the suite whose file is present; write the eval JSON atomically."""
    from dclm.eval.aggregate import aggregate
    from dclm.eval.tasks import load_suite, resolve_file, select_tasks
    from dclm.io import atomic_open
    from dclm.runtime.progress import progress_bar, progress_write

    _check(cfg)
    suite = select_tasks(load_suite(cfg.tasks), cfg.only)
    data_dir = Path(cfg.data_dir)
    present, missing = [], {}
    for spec in suite.tasks:
        p = resolve_file(data_dir, spec.file)
        (present.append((spec, p)) if p.is_file() else missing.__setitem__(spec.label, str(p)))
    if missing:
        log.warning("skipping %d task(s) without data under %s: %s", len(missing), data_dir, ", ".join(missing))
    if not present:
        raise DclmError(f"{data_dir}: none of the {len(suite.tasks)} task files of {suite.name} are there "
                        f"(expected e.g. {data_dir / suite.tasks[0].file})")
    scorer = Scorer(cfg)
    max_seq_len = cfg.max_seq_len or suite.max_seq_len
    results: list[TaskResult] = []
    sample_dir = Path(cfg.log_samples) if cfg.log_samples else None
    if sample_dir:
        sample_dir.mkdir(parents=True, exist_ok=True)
    with progress_bar(len(present), desc=f"eval {suite.name}", unit="task", enabled=cfg.progress) as bar:
        for spec, path in present:
            bar.set_postfix_str(spec.label)
            if sample_dir:
                with atomic_open(str(sample_dir / f"{spec.label.replace('/', '_')}.jsonl"), "w") as f:
                    res = eval_task(scorer, spec, path, max_seq_len, cfg.limit, f)
            else:
                res = eval_task(scorer, spec, path, max_seq_len, cfg.limit, None)
            results.append(res)
            if cfg.progress:
                progress_write(f"{spec.label}: accuracy {res.accuracy:.4f} ({res.items} items, "
                               f"{res.items / max(res.seconds, 1e-9):.1f} items/s)")
            bar.update(1)
    icl = {r.label: r.accuracy for r in results}
    doc = {"name": suite.name, "uuid": str(uuid.uuid4()), "model": scorer.name,
           "creation_date": datetime.now().strftime("%Y_%m_%d-%H_%M_%S"),
           "eval_metrics": {"icl": icl}}
    doc.update(aggregate(icl))
    doc["missing_task_files"] = missing
    if cfg.limit is not None:
        doc["limit"] = cfg.limit
    with atomic_open(cfg.output, "w") as f:
        f.write(json.dumps(doc, indent=4) + "\n")
    return EvalResult(cfg.output, doc, results, missing)
