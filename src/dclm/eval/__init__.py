"""DCLM's in-context-learning evaluation (CORE / EXTENDED) with llm-foundry 0.9.0's prompts and scoring."""

from dclm.eval.runner import EvalConfig, EvalResult, TaskResult, run

__all__ = ["EvalConfig", "EvalResult", "TaskResult", "run"]
