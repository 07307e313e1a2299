"""`dclm experiment SPEC.yaml --output DIR`."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    from dclm.experiment.run import ExperimentConfig
    from dclm.runtime.config import add_config_arguments

    p = sub.add_parser(
        "experiment",
        help="a controlled DCLM comparison: curation arms -> same model, same tokens -> same evaluation",
        description="Run every arm of SPEC.yaml (raw pool, processing recipe, BFF dedup, fastText selection; any "
        "may be omitted) through the same verbs, train the same scale on the same number of tokens per arm, "
        "evaluate each the same way (held-out perplexity, ICL suite, samples), and write summary.json and a "
        "self-contained report.html. Stages already done are reused. The spec format is in "
        "dclm/experiment/spec.py.",
    )
    add_config_arguments(p, ExperimentConfig)
    p.set_defaults(func=_run)


def print_result(result) -> None:
    arms = result.summary["arms"]
    for name, a in arms.items():
        h = a["eval"].get("heldout") or {}
        ppl = f"{h['perplexity']:.2f}" if h.get("perplexity") else "n/a"
        core = f", CORE {a['eval']['core']:.4f}" if isinstance(a["eval"].get("core"), float) else ""
        print(f"{name}: held-out perplexity {ppl} after {a['train']['tokens']:,} training tokens{core}")
    print(f"summary: {result.output}/summary.json")
    print(f"report:  {result.report}")


def _run(ns: argparse.Namespace) -> int:
    from dclm.extras import require

    require("dclm experiment", "torch", "transformers", "safetensors", "matplotlib")
    from dclm.experiment.run import ExperimentConfig, run_experiment
    from dclm.experiment.spec import load_spec
    from dclm.runtime.config import config_from_args

    cfg = config_from_args(ExperimentConfig, ns)
    print_result(run_experiment(load_spec(cfg.spec), cfg.output, workers=cfg.workers, progress=cfg.progress))
    return 0
