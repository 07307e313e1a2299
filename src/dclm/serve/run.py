"""run_serve: load the model (and adapters), build the app, serve until SIGTERM/SIGINT."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from dclm.errors import DclmError
from dclm.runtime.config import ConfigError
from dclm.serve.config import ServeConfig, ServeResult

log = logging.getLogger(__name__)


def _missing_extra(e: ImportError):
    return DclmError(f"dclm serve needs {e.name}: pip install 'dclm[serve]'")


def device_and_dtype(device: str, dtype: str):
    import torch

    from dclm.model.checkpoint import DTYPES

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device", "cuda asked for but no CUDA device is available")
    if dtype == "auto":
        dtype = "bf16" if device == "cuda" else "fp32"
    return device, DTYPES[dtype]


def build_state(config: ServeConfig):
    """Model, tokenizer, adapters and scheduler for `config` (the scheduler is not started yet)."""
    try:
        import fastapi  # noqa: F401
        import sse_starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as e:
        raise _missing_extra(e) from None
    from dclm.generate import load_for_inference
    from dclm.generate.tokenizer import load_tokenizer
    from dclm.serve.app import ServerState
    from dclm.serve.scheduler import Scheduler

    device, dtype = device_and_dtype(config.device, config.dtype)
    model = load_for_inference(config.model, device=device, dtype=dtype)
    tokenizer = load_tokenizer(config.model, config.tokenizer)
    tokenizer.check_fits(model.args.vocab_size, config.model)
    base = config.served_model_name or Path(config.model).resolve().name
    models = {base: 0}
    router = None
    if config.adapter:
        from dclm.serve.lora import attach_adapters

        named = config.adapters()
        if base in named:
            raise ConfigError("adapter", f"{base!r} is already the base model's name")
        router = attach_adapters(model, list(named.values()))
        models.update({name: i + 1 for i, name in enumerate(named)})
    context = config.context_length or model.args.seq_len
    max_prompt = config.max_prompt_tokens or context - 1
    if max_prompt >= context:
        raise ConfigError("max_prompt_tokens", f"must be below the context length {context}")
    scheduler = Scheduler(model, tokenizer, max_batch_size=config.max_batch_size, context_length=context,
                          max_tokens_per_batch=config.max_tokens_per_batch, adapters=router)
    return ServerState(scheduler=scheduler, tokenizer=tokenizer, models=models, base_name=base,
                       max_prompt_tokens=max_prompt, max_new_tokens_limit=config.max_new_tokens_limit,
                       max_body_bytes=config.max_body_bytes, api_key=config.api_key, created=int(time.time()))


def _server_class():
    import contextlib
    import signal

    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn re-raises SIGTERM/SIGINT once it has shut down, which kills the process by signal; we
        stop the same graceful way but return, so `dclm serve` reports and exits 0."""

        @contextlib.contextmanager
        def capture_signals(self):
            previous = {s: signal.signal(s, self.handle_exit) for s in (signal.SIGINT, signal.SIGTERM)}
            try:
                yield
            finally:
                for s, handler in previous.items():
                    signal.signal(s, handler)

    return Server


def run_serve(config: ServeConfig) -> ServeResult:
    """Serve until SIGTERM or SIGINT; open requests get `graceful_timeout` seconds to finish."""
    state = build_state(config)
    import uvicorn

    from dclm.serve.app import build_app

    _Server = _server_class()

    if config.host not in ("127.0.0.1", "localhost", "::1") and not config.api_key:
        log.warning("listening on %s without --api-key: anyone who can reach it can use the model", config.host)
    server = _Server(uvicorn.Config(build_app(state), host=config.host, port=config.port, log_level="info",
                                           timeout_graceful_shutdown=config.graceful_timeout, access_log=False))
    try:
        server.run()
    except SystemExit:  # uvicorn exits this way when it cannot bind
        raise DclmError(f"cannot serve on {config.host}:{config.port} (see the log above)") from None
    finally:
        state.scheduler.stop()
    stats = state.scheduler.snapshot()
    return ServeResult(url=f"http://{config.host}:{config.port}/v1", requests=stats["requests_done"],
                       tokens_generated=stats["tokens_generated"])
