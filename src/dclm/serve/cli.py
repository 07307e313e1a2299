"""`dclm serve`."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    from dclm.serve.config import ServeConfig
    from dclm.runtime.config import add_config_arguments

    p = sub.add_parser(
        "serve",
        help="OpenAI-compatible HTTP server with continuous batching",
        description="Serve a DCLM/open_lm checkpoint (and LoRA adapters from `dclm finetune`) over "
        "/v1/completions, /v1/chat/completions (plain-text chat template), /v1/models and /health, with "
        "SSE streaming. Requests join and leave the running decode batch at token boundaries. Stops "
        "cleanly on SIGTERM. Needs pip install 'dclm[serve]'.",
    )
    add_config_arguments(p, ServeConfig)
    p.set_defaults(func=_run)


def _run(ns) -> int:
    import sys

    from dclm.generate import passive_openmp

    passive_openmp()  # before torch loads
    from dclm.runtime.config import config_from_args
    from dclm.serve.config import ServeConfig
    from dclm.serve.run import run_serve

    result = run_serve(config_from_args(ServeConfig, ns))
    print(f"dclm serve: stopped after {result.requests} requests, {result.tokens_generated} tokens generated",
          file=sys.stderr)
    return 0
