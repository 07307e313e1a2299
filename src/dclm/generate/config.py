"""The `dclm quantize` config and result (light: building the CLI imports no torch)."""

from __future__ import annotations

from dataclasses import dataclass, field

from dclm.runtime.config import arg


@dataclass(frozen=True)
class QuantizeConfig:
    model: str = arg(help="model directory in the DCLM HF layout (fp32, bf16 or fp16 safetensors, sharded or not)")
    bits: int = arg(help="8 (int8, one scale per output row) or 4 (int4, a scale and zero per group of inputs)")
    output: str = arg(help="output directory (config.json + model.safetensors; the tokenizer is copied along)")
    group_size: int = arg(128, help="int4 group size along the input dimension (even; where it does not divide "
                                    "a matrix's inputs, the largest even divisor below it)")
    eval_text: str | None = arg(None, help="held-out text file: print the perplexity of fp32, bf16 and the "
                                           "quantized model on it (loads the model three times)")
    tokenizer: str | None = arg(None, help="tokenizer for --eval-text (default MODEL/tokenizer.json, else GPT-NeoX)")
    max_eval_tokens: int = arg(4096, help="tokens of --eval-text to score")
    eval_window: int = arg(1024, help="tokens per scored window of --eval-text")


@dataclass
class QuantizeResult:
    bits: int
    group_size: int | None
    output: str
    source_bytes: int
    quantized_bytes: int
    seconds: float
    peak_rss_mb: float
    eval_tokens: int = 0
    perplexity: dict[str, float] = field(default_factory=dict)  # "fp32", "bf16", "int8" / "int4"
    perplexity_change_pct: dict[str, float] = field(default_factory=dict)  # against fp32
