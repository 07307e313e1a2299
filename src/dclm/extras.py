"""Which optional extra (pyproject.toml `[project.optional-dependencies]`) brings which import.

A verb whose extra is missing must say so in one line instead of a traceback: `require` checks up front
(before any work is done), and `dclm.cli.main` maps a stray `ModuleNotFoundError` through `extra_for`.
"""

from __future__ import annotations

import importlib.util

from dclm.errors import DclmError

# top-level import name -> extra that installs it
EXTRA_OF_MODULE = {
    "torch": "model", "transformers": "model", "safetensors": "model",
    "ray": "ray",
    "resiliparse": "extract", "fastwarc": "extract", "brotli": "extract", "trafilatura": "extract",
    "justext": "extract", "lxml_html_clean": "extract", "bs4": "extract",
    "kenlm": "kenlm", "sentencepiece": "kenlm",
    "nltk": "nltk", "punkt": "nltk",
    "gguf": "export",
    "onnx": "onnx", "onnxruntime": "onnx",
    "llama_cpp": "llamacpp",
    "matplotlib": "report",
    "lm_eval": "lmeval",
    "peft": "finetune",
    "fastapi": "serve", "uvicorn": "serve", "sse_starlette": "serve",
}


def extra_for(module: str | None) -> str | None:
    """The extra that installs `module` (a dotted name is looked up by its top level), or None."""
    return EXTRA_OF_MODULE.get((module or "").split(".")[0])


def missing_extra_message(what: str, module: str) -> str:
    extra = extra_for(module)
    return f"{what} needs {module}: pip install 'dclm[{extra}]'" if extra else f"{what} needs {module}"


def require(what: str, *modules: str) -> None:
    """Raise one DclmError naming the extra if any of `modules` is not importable (nothing is imported)."""
    for module in modules:
        if importlib.util.find_spec(module) is None:
            raise DclmError(missing_extra_message(what, module))
