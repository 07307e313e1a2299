"""ServeConfig (the `dclm serve` flags) and ServeResult."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from dclm.runtime.config import ConfigError, arg


@dataclass(frozen=True)
class ServeConfig:
    model: str = arg(help="model directory in the DCLM HF layout (or one made by `dclm quantize`)")
    host: str = arg("127.0.0.1", help="address to listen on (loopback by default; anything else is reachable "
                    "from the network, so set --api-key)")
    port: int = arg(8000, help="TCP port (0 = any free port)")
    adapter: tuple[str, ...] = arg((), metavar="NAME=DIR", help="LoRA adapter from `dclm finetune`, served as "
                                   "model NAME (repeatable)")
    served_model_name: str | None = arg(None, help="model name of the base model (default: the directory's name)")
    tokenizer: str | None = arg(None, help="tokenizer.json (default MODEL/tokenizer.json, else GPT-NeoX-20B)")
    device: Literal["auto", "cpu", "cuda"] = arg("auto", help="device (auto = cuda when available)")
    dtype: Literal["auto", "fp32", "bf16", "fp16"] = arg("auto", help="compute dtype (auto = bf16 on cuda, fp32 on cpu)")
    max_batch_size: int = arg(16, help="requests decoded together (KV-cache slots)")
    max_tokens_per_batch: int = arg(2048, help="prompt + decode tokens admitted per scheduler step")
    context_length: int | None = arg(None, help="tokens per request, prompt + completion (default: the model's seq_len)")
    max_prompt_tokens: int | None = arg(None, help="longest prompt accepted (default: context length - 1)")
    max_new_tokens_limit: int = arg(1024, help="largest max_tokens a request may ask for")
    max_body_bytes: int = arg(1 << 20, help="largest request body in bytes")
    api_key: str | None = arg(None, help="require `Authorization: Bearer KEY` on /v1 routes")
    graceful_timeout: float = arg(30.0, help="seconds open requests get to finish after SIGTERM")

    def __post_init__(self):
        for name in ("max_batch_size", "max_tokens_per_batch", "max_new_tokens_limit", "max_body_bytes"):
            if getattr(self, name) < 1:
                raise ConfigError(name, "must be at least 1")
        if not 0 <= self.port < 65536:
            raise ConfigError("port", "must be in [0, 65535]")
        for spec in self.adapter:
            name, sep, path = spec.partition("=")
            if not sep or not name or not path:
                raise ConfigError("adapter", f"{spec!r} is not NAME=DIR")
        if self.context_length is not None and self.context_length < 2:
            raise ConfigError("context_length", "must be at least 2")
        if self.max_prompt_tokens is not None and self.max_prompt_tokens < 1:
            raise ConfigError("max_prompt_tokens", "must be at least 1")

    def adapters(self) -> dict[str, str]:
        return dict(spec.split("=", 1) for spec in self.adapter)


@dataclass
class ServeResult:
    url: str
    requests: int
    tokens_generated: int
