"""`dclm export onnx`: a DCLM checkpoint as an ONNX decoder with past-KV inputs and outputs, for ONNX Runtime.

The graph takes `input_ids` [B, T] and, per layer i, `past_key_i` / `past_value_i` [B, H, P, D] (P = 0 on the
first call), and returns `logits` [B, T, V] and `present_key_i` / `present_value_i` [B, H, P+T, D]: the
past with this call's keys (after rotary) and values appended. Positions are P..P+T-1, so one graph does
prefill and decode. The traced forward below is a plain twin of dclm.model.openlm's (same modules and
weights, no CPU fast paths, which a trace would freeze into the graph) and is checked against it in tests.
`--dtype fp16` stores and computes in float16; `--int8` applies ONNX Runtime's dynamic quantization
(int8 weights for every MatMul) to the fp32 graph. Weights go to one external-data file beside model.onnx,
so models over protobuf's 2 GB limit export too. The output directory also gets the tokenizer.json and
`dclm_onnx.json` (the shape the runner needs).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

from dclm.errors import DclmError
from dclm.export.configs import ONNXExportConfig

MODEL_FILE = "model.onnx"
DATA_FILE = "model.onnx.data"
META_FILE = "dclm_onnx.json"
OPSET = 17


@dataclass(frozen=True)
class ONNXExportResult:
    output: str
    dtype: str
    int8: bool
    bytes: int
    seconds: float


def _require(module: str, extra: str = "onnx"):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise DclmError(f"`dclm export onnx` needs {module}: pip install 'dclm[{extra}]'") from None


def decoder_module(model):
    """An nn.Module over `model`'s weights: (input_ids, *past) -> (logits, *present), traceable by ONNX."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    from dclm.model.openlm import apply_rotary

    class Decoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.m = model

        def forward(self, input_ids, *past):
            m, a = self.m, self.m.args

            def norm(mod, t):  # openlm.LayerNorm reads the width from t.shape, which a trace cannot keep constant
                return F.layer_norm(t, (a.dim,), mod.weight, None, mod.eps)

            B, T = input_ids.shape
            P = past[0].shape[2]
            pos = torch.arange(T, device=input_ids.device) + P
            cols = torch.arange(P + T, device=input_ids.device)
            allowed = cols[None, :] <= pos[:, None]  # [T, P+T]
            x = m.tok_embeddings(input_ids)
            present = []
            for i, layer in enumerate(m.layers):
                att = layer.attention
                y = norm(layer.attention_norm, x)
                q, k, v = F.linear(y, att.in_proj.weight).chunk(3, dim=-1)
                if att.apply_qk_norm:
                    q, k = norm(att.q_norm, q), norm(att.k_norm, k)
                q, k, v = (t.reshape(B, T, a.n_heads, a.head_dim).transpose(1, 2) for t in (q, k, v))
                cos, sin = att.pos_embed.cos_sin(pos[None], q.dtype)
                q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
                k = torch.cat([past[2 * i], k], dim=2)
                v = torch.cat([past[2 * i + 1], v], dim=2)
                present += [k, v]
                scores = torch.matmul(q, k.transpose(-1, -2)) * (a.head_dim ** -0.5)
                scores = scores.masked_fill(allowed.logical_not(), float("-inf"))
                o = torch.matmul(scores.softmax(-1), v).transpose(1, 2).reshape(B, T, a.dim)
                h = x + F.linear(o, att.out_proj.weight)
                ff = layer.feed_forward
                gate, up = F.linear(norm(layer.ffn_norm, h), ff.w12.weight).chunk(2, dim=-1)
                x = h + F.linear(F.silu(gate) * up, ff.w3.weight)
            logits = F.linear(norm(m.norm, x), m.output.weight).float()
            return (logits, *present)

    return Decoder().eval()


def io_names(n_layers: int) -> tuple[list[str], list[str]]:
    past = [f"past_{kind}_{i}" for i in range(n_layers) for kind in ("key", "value")]
    present = [f"present_{kind}_{i}" for i in range(n_layers) for kind in ("key", "value")]
    return ["input_ids", *past], ["logits", *present]


def _export_graph(model, path: Path, dtype) -> None:
    import torch

    a = model.args
    inputs, outputs = io_names(a.n_layers)
    ids = torch.zeros(1, 2, dtype=torch.long)
    past = [torch.zeros(1, a.n_heads, 3, a.head_dim, dtype=dtype) for _ in range(2 * a.n_layers)]
    axes = {"input_ids": {0: "batch", 1: "new"}, "logits": {0: "batch", 1: "new"}}
    for n in inputs[1:]:
        axes[n] = {0: "batch", 2: "past"}
    for n in outputs[1:]:
        axes[n] = {0: "batch", 2: "total"}
    # torch 2.13's TorchScript exporter (dynamo=False; the dynamo one needs onnxscript) warns that it is
    # deprecated and that shapes are traced; both are expected here
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(decoder_module(model), (ids, *past), str(path), input_names=inputs, output_names=outputs,
                          dynamic_axes=axes, opset_version=OPSET, dynamo=False)


def _single_data_file(src: Path, dst_dir: Path) -> None:
    """Re-save a model with all weights in one external-data file (the exporter may write one per tensor)."""
    onnx = _require("onnx")
    m = onnx.load(str(src), load_external_data=True)
    onnx.save_model(m, str(dst_dir / MODEL_FILE), save_as_external_data=True, all_tensors_to_one_file=True,
                    location=DATA_FILE, size_threshold=1024)


def export_onnx(cfg: ONNXExportConfig) -> ONNXExportResult:
    """Write `cfg.model` as an ONNX decoder directory (see the module docstring)."""
    _require("onnx")
    import torch

    from dclm.model.checkpoint import load_model, read_config

    if cfg.int8 and cfg.dtype != "fp32":
        raise DclmError("--int8 quantizes the fp32 graph; leave --dtype at fp32")
    t0 = time.perf_counter()
    args, _ = read_config(cfg.model)
    dtype = torch.float16 if cfg.dtype == "fp16" else torch.float32
    model = load_model(cfg.model, dtype=dtype)
    tok = Path(cfg.tokenizer) if cfg.tokenizer else Path(cfg.model) / "tokenizer.json"
    if cfg.tokenizer and not tok.is_file():
        raise DclmError(f"tokenizer not found: {tok}")
    out = Path(cfg.output)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / META_FILE).is_file())):
        raise DclmError(f"{out} exists and is not an earlier `dclm export onnx` output; choose a new --output")
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=out.name + ".part", dir=out.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(stage, 0o777 & ~umask)  # mkdtemp's 0700 would make the final directory private
    try:
        with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
            raw = Path(tmp) / MODEL_FILE
            _export_graph(model, raw, dtype)
            del model
            if cfg.int8:
                quant = _require("onnxruntime.quantization")
                q = Path(tmp) / "int8.onnx"
                quant.quantize_dynamic(str(raw), str(q), weight_type=quant.QuantType.QInt8,
                                       use_external_data_format=True)
                raw = q
            _single_data_file(raw, stage)
        if tok.is_file():
            shutil.copy(tok, stage / "tokenizer.json")
        meta = {"format": "dclm-onnx-decoder", "n_layers": args.n_layers, "n_heads": args.n_heads,
                "head_dim": args.head_dim, "vocab_size": args.vocab_size, "seq_len": args.seq_len,
                "dtype": cfg.dtype, "int8": cfg.int8, "opset": OPSET}
        (stage / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
        if out.exists():
            shutil.rmtree(out)
        os.replace(stage, out)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    size = sum(f.stat().st_size for f in out.iterdir() if f.name.startswith(MODEL_FILE))
    return ONNXExportResult(str(out), cfg.dtype, cfg.int8, size, round(time.perf_counter() - t0, 2))
