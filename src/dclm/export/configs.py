"""The parameters of `dclm export gguf` and `dclm export onnx` (light: the CLI builds its flags from them)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from dclm.runtime.config import arg

OUTTYPES = ("f32", "f16", "bf16", "q8_0", "q4_0")


@dataclass(frozen=True)
class GGUFExportConfig:
    model: str = arg(help="checkpoint: a directory in the apple/DCLM-7B layout, or an open_lm .pt file")
    output: str = arg(help="the .gguf file to write")
    outtype: Literal["f32", "f16", "bf16", "q8_0", "q4_0"] = arg(
        "f16", help="type of the weight matrices (norm gains stay f32)")
    tokenizer: str | None = arg(None, help="tokenizer.json to embed (default: MODEL/tokenizer.json, else GPT-NeoX-20B)", show_default=False)
    name: str | None = arg(None, help="general.name (default: the config's `model` label or the file name)", show_default=False)
    source_url: str | None = arg(None, help="general.source.url to record (e.g. https://huggingface.co/apple/DCLM-7B)", show_default=False)
    n_heads: int | None = arg(None, help="head count of a .pt checkpoint whose shapes do not tell it", show_default=False)
    progress: bool = arg(True, help="show a progress bar")


@dataclass(frozen=True)
class ONNXExportConfig:
    model: str = arg(help="checkpoint directory in the apple/DCLM-7B layout")
    output: str = arg(help="directory to write (model.onnx, model.onnx.data, tokenizer.json, dclm_onnx.json)")
    dtype: Literal["fp32", "fp16"] = arg("fp32", help="weight and compute dtype")
    int8: bool = arg(False, help="int8 weights via ONNX Runtime dynamic quantization (from the fp32 graph)")
    tokenizer: str | None = arg(None, help="tokenizer.json to copy beside the model (default: MODEL/tokenizer.json)", show_default=False)
