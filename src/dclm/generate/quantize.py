"""Weight-only quantization: int8 per output row, or int4 in groups along the input dimension.

Every matrix of the model (each Linear, the LM head and the token embedding) is quantized; norms and
rotary buffers keep their dtype. A quantized checkpoint is the DCLM HF layout plus a `quantization` entry
in config.json (`method`, `format_version`, `bits`, `group_size`) and, per matrix, tensors `<name>.qweight`
and `.scales` (and `.zeros` for int4) in model.safetensors:
- int8: `qweight` int8 [N, K], `scales` fp16 [N]; w = q * s.
- int4: `qweight` uint8 [N, K/2]; `scales`, `zeros` fp16 [N, K/G]; w = q * s + z, q in [0, 15]. Inside each
  group of G inputs, byte b holds input b in its low nibble and input b + G/2 in its high nibble (the
  layout `dclm.model.cpu_matmul` computes from). G is the requested group size where it divides K, else
  the largest even divisor of K below it; an odd K cannot be packed and is refused.
Format version 1 (before the nibble layout above) paired adjacent inputs in a byte and is refused with a
line that says to quantize again.

This module is the plain reference: `QuantLinear` multiplies by the dequantized matrix. On the CPU,
`dclm.generate.cpu` swaps in modules that compute decoding's few rows straight from the packed weights.
`quantize_checkpoint` streams: one source tensor in memory at a time, quantized in blocks of rows.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from dclm.errors import DclmError

METHOD = "dclm-weight-only"
FORMAT_VERSION = 2
BITS = (8, 4)
_BLOCK_ROWS = 4096  # rows quantized at a time: bounds the float temporaries of a large matrix


def quantize_int8(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric per-row int8: w ~ q * scale, q in [-127, 127], scale stored in fp16 (and used rounded)."""
    q = torch.empty(w.shape, dtype=torch.int8)
    scales = torch.empty(w.shape[0], dtype=torch.float16)
    for r in range(0, w.shape[0], _BLOCK_ROWS):
        b = w[r:r + _BLOCK_ROWS].float()
        s = (b.abs().amax(dim=1, keepdim=True) / 127).clamp(min=2**-24).half()
        q[r:r + _BLOCK_ROWS] = torch.round(b / s.float()).clamp(-127, 127).to(torch.int8)
        scales[r:r + _BLOCK_ROWS] = s.squeeze(1)
    return q, scales


def quantize_int4(w: torch.Tensor, group: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Asymmetric int4 per group of `group` inputs (w ~ q * scale + zero, q in [0, 15]), packed as above."""
    rows, cols = w.shape
    if group % 2 or cols % group:
        raise DclmError(f"int4 groups of {group} do not tile {cols} inputs (the group must be even and divide them)")
    n = cols // group
    packed = torch.empty(rows, cols // 2, dtype=torch.uint8)
    scales = torch.empty(rows, n, dtype=torch.float16)
    zeros = torch.empty(rows, n, dtype=torch.float16)
    for r in range(0, rows, _BLOCK_ROWS):
        g = w[r:r + _BLOCK_ROWS].float().reshape(-1, n, group)
        lo, hi = g.amin(-1, keepdim=True), g.amax(-1, keepdim=True)
        s = ((hi - lo) / 15).clamp(min=2**-24).half()
        z = lo.half()
        q = torch.round((g - z.float()) / s.float()).clamp(0, 15).to(torch.uint8)
        half = group // 2
        packed[r:r + _BLOCK_ROWS] = (q[..., :half] | (q[..., half:] << 4)).reshape(-1, cols // 2)
        scales[r:r + _BLOCK_ROWS], zeros[r:r + _BLOCK_ROWS] = s.squeeze(-1), z.squeeze(-1)
    return packed, scales, zeros


def dequantize_int8(q: torch.Tensor, scales: torch.Tensor, dtype) -> torch.Tensor:
    return q.to(dtype) * scales[:, None].to(dtype)


def unpack_int4(packed: torch.Tensor, groups: int) -> torch.Tensor:
    """The codes [rows, groups, group] (uint8, 0..15) of packed int4 rows: low nibbles first, then high."""
    p = packed.reshape(packed.shape[0], groups, -1)
    return torch.cat((p & 0xF, p >> 4), dim=-1)


def dequantize_int4(packed: torch.Tensor, scales: torch.Tensor, zeros: torch.Tensor, dtype) -> torch.Tensor:
    q = unpack_int4(packed, scales.shape[1])
    w = q.to(dtype) * scales[..., None].to(dtype) + zeros[..., None].to(dtype)
    return w.reshape(scales.shape[0], -1)


def group_size_for(in_features: int, group: int) -> int:
    """The requested group if it divides the width, else the largest even divisor below it."""
    if group < 2 or group % 2:
        raise DclmError(f"the int4 group size must be an even number of at least 2, not {group}")
    if in_features % group == 0:
        return group
    for g in range(min(group, in_features), 1, -1):
        if in_features % g == 0 and g % 2 == 0:
            return g
    raise DclmError(f"cannot pack {in_features} inputs (an odd count) into int4 groups")


class QuantLinear(nn.Module):
    """A Linear over quantized weights; forward multiplies by the dequantized matrix (the plain twin)."""

    def __init__(self, in_features: int, out_features: int, bits: int, group: int, device=None):
        super().__init__()
        if bits not in BITS:
            raise DclmError(f"bits must be 8 or 4, not {bits}")
        if bits == 4 and (group % 2 or in_features % group):
            raise DclmError(f"int4 groups of {group} do not tile {in_features} inputs")
        self.in_features, self.out_features, self.bits, self.group = in_features, out_features, bits, group
        kw = {"device": device}
        if bits == 8:
            self.register_buffer("qweight", torch.empty(out_features, in_features, dtype=torch.int8, **kw))
            self.register_buffer("scales", torch.empty(out_features, dtype=torch.float16, **kw))
        else:
            n = in_features // group
            self.register_buffer("qweight", torch.empty(out_features, in_features // 2, dtype=torch.uint8, **kw))
            self.register_buffer("scales", torch.empty(out_features, n, dtype=torch.float16, **kw))
            self.register_buffer("zeros", torch.empty(out_features, n, dtype=torch.float16, **kw))

    @classmethod
    def from_weight(cls, w: torch.Tensor, bits: int, group: int) -> "QuantLinear":
        m = cls(w.shape[1], w.shape[0], bits, group)
        parts = quantize_int8(w.cpu()) if bits == 8 else quantize_int4(w.cpu(), group)
        for name, t in zip(("qweight", "scales", "zeros"), parts):
            setattr(m, name, t.to(w.device))
        return m

    def weight_as(self, dtype) -> torch.Tensor:
        if self.bits == 8:
            return dequantize_int8(self.qweight, self.scales, dtype)
        return dequantize_int4(self.qweight, self.scales, self.zeros, dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight_as(x.dtype))


class QuantEmbedding(nn.Module):
    """Token embedding with rows stored like QuantLinear's weight; only looked-up rows are dequantized."""

    def __init__(self, num: int, dim: int, bits: int, group: int, dtype: torch.dtype, device=None):
        super().__init__()
        self.inner = QuantLinear(dim, num, bits, group, device=device)
        self.dtype = dtype

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        q = self.inner
        flat = ids.reshape(-1)
        if q.bits == 8:
            rows = dequantize_int8(q.qweight[flat], q.scales[flat], self.dtype)
        else:
            rows = dequantize_int4(q.qweight[flat], q.scales[flat], q.zeros[flat], self.dtype)
        return rows.reshape(*ids.shape, -1)


def _targets(model):
    for name, module in model.named_modules():
        for child_name, child in module.named_children():
            if isinstance(child, (nn.Linear, nn.Embedding)):
                yield module, child_name, f"{name}.{child_name}" if name else child_name, child


def _group(bits: int, in_features: int, group: int) -> int:
    return group_size_for(in_features, group) if bits == 4 else in_features


def quantize_model(model, bits: int, group: int = 128):
    """In place: every Linear and the embedding become QuantLinear / QuantEmbedding."""
    if bits not in BITS:
        raise DclmError(f"bits must be 8 or 4, not {bits}")
    if model.args.weight_tying:
        raise DclmError("quantizing a model with tied embeddings is not supported")
    dtype = next(model.parameters()).dtype
    for parent, attr, _, child in list(_targets(model)):
        w = child.weight.detach()
        g = _group(bits, w.shape[1], group)
        if isinstance(child, nn.Embedding):
            q = QuantEmbedding(w.shape[0], w.shape[1], bits, g, dtype)
            q.inner = QuantLinear.from_weight(w, bits, g)
        else:
            q = QuantLinear.from_weight(w, bits, g)
        setattr(parent, attr, q)
    model.quantization = quantization_entry(bits, group)
    return model


def quantization_entry(bits: int, group: int) -> dict:
    return {"method": METHOD, "format_version": FORMAT_VERSION, "bits": bits, "group_size": group}


def check_quantization(quant, source: str) -> tuple[int, int]:
    """(bits, group) of a config's `quantization` entry, or one line saying what is wrong with it."""
    if not isinstance(quant, dict) or quant.get("method") != METHOD:
        method = quant.get("method") if isinstance(quant, dict) else quant
        raise DclmError(f"{source}: quantization method {method!r} is not {METHOD!r} (not made by `dclm quantize`)")
    version = quant.get("format_version", 1)
    if version != FORMAT_VERSION:
        age = "an older" if isinstance(version, int) and version < FORMAT_VERSION else "a newer"
        raise DclmError(f"{source}: quantized by {age} dclm (format version {version}; this one reads version "
                        f"{FORMAT_VERSION}); run `dclm quantize` on the original checkpoint again")
    bits, group = quant.get("bits"), quant.get("group_size")
    if bits not in BITS:
        raise DclmError(f"{source}: quantization bits {bits!r} is not 8 or 4")
    if not isinstance(group, int) or group < 2 or group % 2:
        raise DclmError(f"{source}: quantization group_size {group!r} is not an even number of at least 2")
    return bits, group


def _empty_quantized(args, bits: int, group: int, dtype: torch.dtype):
    """The quantized architecture with untouched storage, ready for load_state_dict(assign)."""
    from dclm.generate.load import skeleton

    model = skeleton(args)
    for parent, attr, _, child in list(_targets(model)):
        out_f, in_f = child.weight.shape
        g = _group(bits, in_f, group)
        if isinstance(child, nn.Embedding):
            q = QuantEmbedding(out_f, in_f, bits, g, dtype)
        else:
            q = QuantLinear(in_f, out_f, bits, g)
        setattr(parent, attr, q)
    model.quantization = quantization_entry(bits, group)
    return model


def load_quantized(model_dir: str | Path, cfg: dict, dtype: torch.dtype | None = None, maps: list | None = None):
    """A model written by `quantize_checkpoint` (on the CPU), its tensors views of the memory-mapped file."""
    from dclm.generate.weights import map_checkpoint
    from dclm.model.checkpoint import DTYPES, PREFIX, args_from_config

    d = Path(model_dir)
    bits, group = check_quantization(cfg.get("quantization"), str(d / "config.json"))
    args = args_from_config(cfg, str(d / "config.json"))
    dtype = dtype or DTYPES.get(cfg.get("torch_dtype"), torch.float32)
    model = _empty_quantized(args, bits, group, dtype)
    emb = "tok_embeddings."
    state = {}
    for k, v in map_checkpoint(d, maps).items():
        k = k[len(PREFIX):] if k.startswith(PREFIX) else k
        state[k.replace(emb, emb + "inner.", 1) if k.startswith(emb) else k] = v
    expected = model.state_dict()
    for name, t in state.items():
        if name not in expected:
            raise DclmError(f"{d}: unexpected tensor {name!r}")
        want = expected[name]
        if t.shape != want.shape:
            raise DclmError(f"{d}: tensor {name!r} has shape {list(t.shape)}, expected {list(want.shape)}")
        if not want.is_floating_point() and t.dtype != want.dtype:
            raise DclmError(f"{d}: tensor {name!r} is {t.dtype}, expected {want.dtype} for {bits}-bit weights")
        if t.is_floating_point() and not name.endswith(("inv_freq", ".scales", ".zeros")):
            state[name] = t.to(dtype)
        elif name.endswith((".scales", ".zeros")):
            state[name] = t.to(torch.float16)
    missing = sorted(set(expected) - set(state))
    if missing:
        raise DclmError(f"{d}: missing tensor {missing[0]!r}")
    model.load_state_dict(state, assign=True)
    return model.eval()


def quantize_checkpoint(src: str | Path, out: str | Path, bits: int, group: int = 128) -> dict:
    """Stream a DCLM-layout checkpoint into a quantized one: one source tensor read at a time (with plain
    reads, not a map, so resident memory stays at about the largest tensor), quantized in blocks of rows,
    written in order. Returns sizes in bytes."""
    from dclm.generate.weights import DTYPES as ST_DTYPES
    from dclm.generate.weights import SINGLE, Writer, checkpoint_files, read_header
    from dclm.io import atomic_open
    from dclm.model.checkpoint import DTYPES, PREFIX, hf_config_dict, read_config

    if bits not in BITS:
        raise DclmError(f"bits must be 8 or 4, not {bits}")
    src, out = Path(src), Path(out)
    args, cfg = read_config(src)
    if "quantization" in cfg:
        raise DclmError(f"{src} is already quantized; quantize the original checkpoint")
    if args.weight_tying:
        raise DclmError("quantizing a model with tied embeddings is not supported")
    plan, entries, src_bytes = [], [], 0
    for f in checkpoint_files(src):
        header, start, _ = read_header(f)
        for name, e in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0]):
            dtype, shape = ST_DTYPES[e["dtype"]], tuple(e["shape"])
            begin, end = e["data_offsets"]
            src_bytes += end - begin
            plan.append((f, start + begin, name, dtype, shape))
            if len(shape) == 2:
                rows, cols = shape
                g = _group(bits, cols, group)
                base = name.removesuffix(".weight")
                entries.append((base + ".qweight", torch.int8 if bits == 8 else torch.uint8,
                                (rows, cols) if bits == 8 else (rows, cols // 2)))
                entries.append((base + ".scales", torch.float16, (rows,) if bits == 8 else (rows, cols // g)))
                if bits == 4:
                    entries.append((base + ".zeros", torch.float16, (rows, cols // g)))
            else:
                entries.append((name, dtype, shape))
    names = {name.removeprefix(PREFIX) for _, _, name, _, _ in plan}
    if "tok_embeddings.weight" not in names or "output.weight" not in names:
        raise DclmError(f"{src}: no tok_embeddings.weight / output.weight (not an open_lm model)")
    out.mkdir(parents=True, exist_ok=True)
    writer = Writer(out / SINGLE, entries)
    try:
        for path, offset, name, dtype, shape in plan:
            t = _read_tensor(path, offset, dtype, shape)
            if len(shape) == 2:
                g = _group(bits, shape[1], group)
                parts = quantize_int8(t) if bits == 8 else quantize_int4(t, g)
                for suffix, p in zip((".qweight", ".scales", ".zeros"), parts):
                    writer.write(name.removesuffix(".weight") + suffix, p)
            else:
                writer.write(name, t)
            del t
        writer.close()
    except BaseException:
        writer.abort()
        raise
    qcfg = hf_config_dict(args, DTYPES.get(cfg.get("torch_dtype"), torch.float32))
    qcfg["quantization"] = quantization_entry(bits, group)
    with atomic_open(str(out / "config.json"), "w") as f:
        f.write(json.dumps(qcfg, indent=2) + "\n")
    for extra in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (src / extra).is_file() and not (out / extra).exists():
            (out / extra).write_bytes((src / extra).read_bytes())
    return {"source_bytes": src_bytes, "quantized_bytes": (out / SINGLE).stat().st_size}


def _read_tensor(path: Path, offset: int, dtype: torch.dtype, shape: tuple[int, ...]) -> torch.Tensor:
    t = torch.empty(shape, dtype=dtype)
    buf = t.view(-1).view(torch.uint8).numpy()
    with open(path, "rb") as f:
        f.seek(offset)
        if f.readinto(buf) != buf.size:
            raise DclmError(f"{path}: truncated")
    return t


def run_quantize(config):
    """`dclm quantize`: stream the checkpoint into its quantized form; with `eval_text`, score fp32, bf16
    and the quantized model on it."""
    import time

    from dclm.generate.config import QuantizeResult
    from dclm.runtime.config import ConfigError

    if config.bits not in BITS:
        raise ConfigError("bits", f"must be 8 or 4, not {config.bits}")
    if config.group_size < 2 or config.group_size % 2:
        raise ConfigError("group_size", f"must be an even number of at least 2, not {config.group_size}")
    if config.eval_text is not None and not Path(config.eval_text).is_file():
        raise ConfigError("eval_text", f"file not found: {config.eval_text}")
    t0 = time.perf_counter()
    sizes = quantize_checkpoint(config.model, config.output, config.bits, config.group_size)
    result = QuantizeResult(
        bits=config.bits, group_size=config.group_size if config.bits == 4 else None, output=str(config.output),
        source_bytes=sizes["source_bytes"], quantized_bytes=sizes["quantized_bytes"],
        seconds=round(time.perf_counter() - t0, 2),
        peak_rss_mb=peak_rss_mb())
    if config.eval_text is not None:
        from dclm.generate import load_for_inference
        from dclm.generate.tokenizer import load_tokenizer

        tokenizer = load_tokenizer(config.model, config.tokenizer)
        ids = tokenizer.encode(Path(config.eval_text).read_text(encoding="utf-8"))[: config.max_eval_tokens + 1]
        runs = [("fp32", config.model, torch.float32), ("bf16", config.model, torch.bfloat16),
                (f"int{config.bits}", config.output, torch.float32)]
        for name, path, dtype in runs:
            model = load_for_inference(path, dtype=dtype)
            result.perplexity[name] = round(perplexity(model, ids, window=config.eval_window), 4)
            del model
        result.eval_tokens = len(ids) - 1
        base = result.perplexity["fp32"]
        result.perplexity_change_pct = {k: round(100 * (v / base - 1), 3) for k, v in result.perplexity.items()
                                        if k != "fp32"}
    return result


def peak_rss_mb() -> float:
    """This process's peak resident memory: VmHWM where Linux has it (ru_maxrss also counts what a parent
    held when it forked this process), else ru_maxrss."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def model_bytes(model: nn.Module) -> int:
    """Bytes of parameters and persistent buffers (what the checkpoint holds)."""
    return sum(t.numel() * t.element_size() for t in model.state_dict().values())


@torch.inference_mode()
def perplexity(model, ids: list[int], window: int = 1024, device=None) -> float:
    """Token-level perplexity over non-overlapping windows (each scored from its own start)."""
    device = device or next(model.buffers()).device
    total, count = 0.0, 0
    for start in range(0, len(ids) - 1, window):
        chunk = torch.tensor(ids[start : start + window + 1], device=device)[None]
        if chunk.shape[1] < 2:
            break
        logits = model(chunk[:, :-1])
        total += F.cross_entropy(logits[0], chunk[0, 1:], reduction="sum").item()
        count += chunk.shape[1] - 1
    if count == 0:
        raise DclmError("held-out text is too short to measure perplexity")
    return math.exp(total / count)
