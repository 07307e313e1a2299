"""Benchmark `dclm eval`: items/s of our scorer against llm-foundry's padded path on the same items, and
items/s of a whole suite. Prints one JSON object.

Comparison: for each task, the first --items items (DCLM's prompts) are scored twice in the same process,
interleaved: (a) llm-foundry 0.9.0's way (every row padded to 2048, full-vocabulary logits at every position,
4 rows a forward as DCLM's device_eval_batch_size gives for 4-choice items) and (b) dclm's shared-prefix
scorer; the decisions (argmin choice / exact match) must agree.

Run: flock /tmp/dclm-bench.lock python benchmarks/bench_eval.py [--model DIR] [--shape 20m] [--suite mmlu_and_lowvar]
With no --model, a random DCLM-format checkpoint of --shape is written to a temp dir with a byte-level BPE
tokenizer trained on the task files (GPT-NeoX's is not available offline). On a GPU: --device cuda
--shape 411m --suite heavy --suite-limit 0 times the full suite.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

DEFAULT_TASKS = ("arc_easy", "copa", "winograd", "lambada_openai", "jeopardy")


def make_checkpoint(out: Path, shape: str, data_dir: Path) -> Path:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    from dclm.model.checkpoint import save_model
    from dclm.model.configs import get_config
    from dclm.model.openlm import Transformer

    lines = [line for f in sorted(data_dir.glob("local_data/*/*.jsonl")) for line in f.read_text().split("\n")[:300]]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(lines, trainers.BpeTrainer(vocab_size=8192, special_tokens=["<|endoftext|>"],
                                                       initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                                       show_progress=False))
    torch.manual_seed(0)
    save_model(Transformer(get_config(shape)).eval(), out)
    tok.save(str(out / "tokenizer.json"))
    return out


def task_items(spec, path, tokenizer, n):
    from dclm.eval.data import read_task_file, split_categories
    from dclm.eval.prompts import PromptBuilder

    rows = read_task_file(path, spec.type)
    if spec.has_categories:
        rows = next(iter(split_categories(rows, path).values()))
    return PromptBuilder(spec, rows, tokenizer, 2048).build(n)


def decisions(spec_type, items, scores):
    from dclm.eval.runner import _lowest

    out, at = [], 0
    for it in items:
        s = scores[at:at + len(it.rows)]
        at += len(it.rows)
        out.append(s[0].exact if spec_type == "language_modeling" else _lowest([x.mean_ce for x in s]))
    return out


def compare(model, tokenizer, specs, data_dir, n_items, batch_size):
    import torch

    from dclm.eval.prefix import score_shared_prefix
    from dclm.eval.score import score_padded
    from dclm.eval.tasks import resolve_file

    per_task, tot = {}, {"items": 0, "rows": 0, "padded_s": 0.0, "fast_s": 0.0}
    warm = True
    for spec in specs:
        path = resolve_file(data_dir, spec.file)
        if not path.is_file():
            per_task[spec.label] = "missing"
            continue
        items = task_items(spec, path, tokenizer, n_items)
        rows = [r for it in items for r in it.rows]
        owner = [k for k, it in enumerate(items) for _ in it.rows]
        if warm:  # first calls pay one-off costs (numba kernels, allocator growth): keep them out of the timing
            score_padded(model, rows[:1], 2048, batch_size=4)
            score_shared_prefix(model, rows[:2], owner[:2], batch_size=batch_size)
            warm = False
        t0 = time.perf_counter()
        padded = score_padded(model, rows, 2048, batch_size=4)
        t1 = time.perf_counter()
        fast = score_shared_prefix(model, rows, owner, batch_size=batch_size)
        t2 = time.perf_counter()
        same = decisions(spec.type, items, padded) == decisions(spec.type, items, fast)
        worst = max(abs(a.mean_ce - b.mean_ce) for a, b in zip(padded, fast))
        per_task[spec.label] = {"type": spec.type, "items": len(items), "rows": len(rows),
                                "padded_items_per_s": round(len(items) / (t1 - t0), 3),
                                "dclm_items_per_s": round(len(items) / (t2 - t1), 2),
                                "speedup": round((t1 - t0) / (t2 - t1), 1), "same_decisions": same,
                                "max_abs_mean_ce_diff": worst}
        tot["items"] += len(items)
        tot["rows"] += len(rows)
        tot["padded_s"] += t1 - t0
        tot["fast_s"] += t2 - t1
        torch.cuda.empty_cache() if torch.cuda.is_available() else None
    summary = {"items": tot["items"],
               "padded_items_per_s": round(tot["items"] / tot["padded_s"], 3),
               "padded_seqs_per_s": round(tot["rows"] / tot["padded_s"], 3),
               "dclm_items_per_s": round(tot["items"] / tot["fast_s"], 2),
               "dclm_seqs_per_s": round(tot["rows"] / tot["fast_s"], 2),
               "speedup": round(tot["padded_s"] / tot["fast_s"], 1),
               "all_same_decisions": all(v["same_decisions"] for v in per_task.values() if isinstance(v, dict))}
    return per_task, summary


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=None, help="DCLM-format checkpoint dir (default: a random --shape one)")
    ap.add_argument("--shape", default="20m", help="model shape when --model is not given (default 20m)")
    ap.add_argument("--data-dir", default=str(REPO.parent / "shared" / "eval_data"))
    ap.add_argument("--tasks", nargs="+", default=list(DEFAULT_TASKS), help="tasks for the padded-path comparison")
    ap.add_argument("--items", type=int, default=6, help="items per task in the comparison (default 6)")
    ap.add_argument("--suite", default="mmlu_and_lowvar", help="suite to time through dclm.eval.run ('' to skip)")
    ap.add_argument("--suite-limit", type=int, default=40, help="--limit for the suite run (0 = every item)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default=None)
    args = ap.parse_args()

    import torch

    from dclm.eval import EvalConfig, run
    from dclm.eval.tasks import load_suite
    from dclm.generate.tokenizer import load_tokenizer
    from dclm.model.checkpoint import DTYPES, load_model

    data_dir = Path(args.data_dir)
    tmp = tempfile.TemporaryDirectory()
    model_dir = Path(args.model) if args.model else make_checkpoint(Path(tmp.name) / "ckpt", args.shape, data_dir)
    dtype = DTYPES[args.dtype or ("bf16" if args.device.startswith("cuda") else "fp32")]
    model = load_model(model_dir, device=args.device, dtype=dtype)
    tokenizer = load_tokenizer(model_dir)
    specs_by_label = {t.label: t for t in load_suite("heavy").tasks}
    specs = [specs_by_label[t] for t in args.tasks]
    report = {"model": str(model_dir) if args.model else f"random {args.shape}", "params": model.args.num_params(),
              "device": args.device, "dtype": str(dtype).replace("torch.", ""), "threads": torch.get_num_threads(),
              "loadavg_before": Path("/proc/loadavg").read_text().split()[:3]}
    if args.items > 0:
        report["per_task"], report["vs_llm_foundry_padded"] = compare(model, tokenizer, specs, data_dir, args.items,
                                                                      args.batch_size)
    if args.suite:
        t0 = time.perf_counter()
        res = run(EvalConfig(tasks=args.suite, data_dir=str(data_dir), output=str(Path(tmp.name) / "eval.json"),
                             model=str(model_dir), batch_size=args.batch_size, device=args.device, dtype=args.dtype,
                             limit=args.suite_limit or None, progress=False))
        wall = time.perf_counter() - t0
        items = sum(r.items for r in res.tasks)
        report["suite"] = {"suite": args.suite, "limit": args.suite_limit or None, "tasks_run": len(res.tasks),
                           "tasks_missing": sorted(res.missing), "items": items, "wall_s": round(wall, 1),
                           "items_per_s": round(items / wall, 2),
                           "per_task_items_per_s": {r.label: round(r.items / r.seconds, 1) for r in res.tasks}}
    report["loadavg_after"] = Path("/proc/loadavg").read_text().split()[:3]
    print(json.dumps(report, indent=2))
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
