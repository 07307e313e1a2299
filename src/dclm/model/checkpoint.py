"""Checkpoint I/O: the apple/DCLM-7B Hugging Face layout (safetensors + config.json) and open_lm `.pt` files.

The HF layout is the one format dclm writes for models: `config.json` (model_type "openlm", open_lm's flat
field names in DCLM-7B's key order) and `model.safetensors` (or shards + `model.safetensors.index.json`),
tensor names prefixed `model.` exactly as open_lm's HF wrapper saves them, rotary `inv_freq` buffers
included. Older spellings are read too: fields nested under `params_args_dict`, `model_norm` for
`norm_type`, `ffn_type` "swiglu"/"swiglu_torch", `attn_name` "torch_attn"/"auto"/"xformers_attn".
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch

from dclm.errors import DclmError
from dclm.model.configs import CONFIGS
from dclm.model.openlm import ModelArgs, Transformer

PREFIX = "model."
SAFETENSORS = "model.safetensors"
INDEX = "model.safetensors.index.json"

# open_lm options that are the same math as ours (exact softmax attention, packed SwiGLU, gain-only LN)
_NORMS = {"gain_only_lp_layer_norm", "gain_only_layer_norm"}
_FFNS = {"swiglu", "swiglu_torch"}
_ATTNS = {"torch_attn", "auto", "xformers_attn", None}
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16,
          "float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def hf_config_dict(args: ModelArgs, dtype: torch.dtype = torch.float32) -> dict:
    """config.json content, keys in the order of the released apple/DCLM-7B file."""
    return {
        "architectures": ["OpenLMForCausalLM"],
        "model_type": "openlm",
        "params": None,
        "apply_qk_norm": args.apply_qk_norm,
        "attn_activation": None,
        "attn_name": "torch_attn",
        "attn_seq_scalar": None,
        "attn_seq_scalar_alpha": None,
        "dim": args.dim,
        "ffn_type": "swiglu",
        "model": _label(args),
        "norm_type": "gain_only_lp_layer_norm",
        "moe_capacity_factor": 1.25,
        "moe_expert_model_parallelism": False,
        "moe_freq": 0,
        "moe_loss_weight": 0.1,
        "moe_num_experts": None,
        "moe_top_k": 2,
        "moe_weight_parallelism": False,
        "n_heads": args.n_heads,
        "n_layers": args.n_layers,
        "norm_eps": args.norm_eps,
        "positional_embedding_type": "rotary",
        "post_embed_norm": args.post_embed_norm,
        "qk_norm": args.apply_qk_norm,
        "seq_len": args.seq_len,
        "vocab_size": args.vocab_size,
        "weight_tying": args.weight_tying,
        "torch_dtype": str(dtype).removeprefix("torch."),
    }


def _label(args: ModelArgs) -> str:
    for name, known in CONFIGS.items():
        if known == args:
            return f"open_lm_{name}"
    return f"open_lm_d{args.dim}_l{args.n_layers}_h{args.n_heads}"


def args_from_config(cfg: dict, source: str = "config.json") -> ModelArgs:
    """ModelArgs from a config.json dict (flat, or the first upload's `params_args_dict` nesting)."""
    if cfg.get("model_type", "openlm") != "openlm":
        raise DclmError(f"{source}: model_type is {cfg.get('model_type')!r}, not 'openlm' (not an open_lm/DCLM model)")
    flat = {**(cfg.get("params_args_dict") or {}), **{k: v for k, v in cfg.items() if k != "params_args_dict"}}
    if "dim" not in flat and "hidden_dim" in flat:  # open_lm training-config spelling
        flat["dim"] = flat["hidden_dim"]
    missing = [k for k in ("dim", "n_layers", "n_heads") if flat.get(k) is None]
    if missing:
        raise DclmError(f"{source}: missing {', '.join(missing)}")
    norm = flat.get("norm_type") or flat.get("model_norm") or "gain_only_lp_layer_norm"
    checks = [
        ("norm_type", norm, _NORMS),
        ("ffn_type", flat.get("ffn_type", "swiglu"), _FFNS),
        ("attn_name", flat.get("attn_name"), _ATTNS),
        ("positional_embedding_type", flat.get("positional_embedding_type", "rotary"), {"rotary"}),
        ("moe_freq", flat.get("moe_freq") or 0, {0}),
    ]
    for key, value, allowed in checks:
        if value not in allowed:
            raise DclmError(f"{source}: {key}={value!r} is not supported (DCLM models use {sorted(map(str, allowed))})")
    try:
        return ModelArgs(
            dim=int(flat["dim"]),
            n_layers=int(flat["n_layers"]),
            n_heads=int(flat["n_heads"]),
            vocab_size=int(flat.get("vocab_size", 50432)),
            seq_len=int(flat.get("seq_len", 2048)),
            norm_eps=float(flat.get("norm_eps", 1e-5)),
            post_embed_norm=bool(flat.get("post_embed_norm", False)),
            weight_tying=bool(flat.get("weight_tying", False)),
            apply_qk_norm=bool(flat.get("apply_qk_norm", flat.get("qk_norm", True))),
        )
    except ValueError as e:
        raise DclmError(f"{source}: {e}") from None


def read_config(model_dir: str | Path) -> tuple[ModelArgs, dict]:
    """(ModelArgs, raw config dict) of a checkpoint directory, with one-line errors for bad input."""
    d = Path(model_dir)
    if not d.is_dir():
        raise DclmError(f"model directory not found: {d}")
    path = d / "config.json"
    if not path.is_file():
        raise DclmError(f"{d}: no config.json (not a Hugging Face model directory)")
    try:
        cfg = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise DclmError(f"{path}: not valid JSON ({e})") from None
    return args_from_config(cfg, str(path)), cfg


def strip_prefixes(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop DDP/FSDP `module.`, torch.compile `_orig_mod.` and the HF wrapper's `model.` prefixes."""
    out = {}
    for name, t in state.items():
        name = re.sub(r"^(?:(?:module|_orig_mod|model)\.)+", "", name)
        name = name.replace("._orig_mod.", ".")
        out[name] = t
    return out


def check_state_dict(args: ModelArgs, state: dict[str, torch.Tensor], source: str) -> dict[str, torch.Tensor]:
    """Validate names and shapes against the architecture; missing `inv_freq` buffers are filled in."""
    expected = {k: tuple(v.shape) for k, v in Transformer(args, init=False).to("meta").state_dict().items()}
    if args.weight_tying:
        expected.pop("output.weight")
        state = {k: v for k, v in state.items() if k != "output.weight"}
    unexpected = sorted(set(state) - set(expected))
    if unexpected:
        raise DclmError(f"{source}: unexpected tensor {unexpected[0]!r}" + (f" (+{len(unexpected) - 1} more)" if len(unexpected) > 1 else ""))
    missing = sorted(k for k in set(expected) - set(state) if not k.endswith("pos_embed.inv_freq"))
    if missing:
        raise DclmError(f"{source}: missing tensor {missing[0]!r}" + (f" (+{len(missing) - 1} more)" if len(missing) > 1 else ""))
    for name, t in state.items():
        if tuple(t.shape) != expected[name]:
            raise DclmError(f"{source}: tensor {name!r} has shape {list(t.shape)}, expected {list(expected[name])}")
    return state


def build_model(args: ModelArgs, state: dict[str, torch.Tensor], source: str, device="cpu", dtype=None) -> Transformer:
    """Transformer from a checked state dict; `dtype` casts the weights, the rotary buffers stay fp32."""
    state = check_state_dict(args, state, source)
    # a checkpoint without the rotary buffers (older exports) gets the standard frequencies
    for i in range(args.n_layers):
        name = f"layers.{i}.attention.pos_embed.inv_freq"
        if name not in state:
            state[name] = 1.0 / (args.rope_base ** (torch.arange(0, args.head_dim, 2, dtype=torch.float32) / args.head_dim))
    if dtype is not None:
        state = {k: v if k.endswith("inv_freq") else v.to(dtype) for k, v in state.items()}
    with torch.device("meta"):
        model = Transformer(args, init=False)
    model.load_state_dict(state, assign=True, strict=not args.weight_tying)
    if args.weight_tying:
        model.output.weight = model.tok_embeddings.weight
    return model.to(device).eval()


def read_safetensors(model_dir: Path, dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
    """All tensors of a (possibly sharded) checkpoint; floating weights cast to `dtype` one at a time, so a
    bf16 load of fp32 files never holds the fp32 copy of the whole model."""
    from safetensors import safe_open

    index = model_dir / INDEX
    if index.is_file():
        files = sorted(set(json.loads(index.read_text())["weight_map"].values()))
    elif (model_dir / SAFETENSORS).is_file():
        files = [SAFETENSORS]
    else:
        raise DclmError(f"{model_dir}: no {SAFETENSORS} or {INDEX}")
    state = {}
    for f in files:
        if not (model_dir / f).is_file():
            raise DclmError(f"{model_dir}: shard {f} listed in {INDEX} is missing")
        with safe_open(str(model_dir / f), framework="pt") as st:
            for name in st.keys():
                t = st.get_tensor(name)
                if dtype is not None and t.is_floating_point() and not name.endswith("inv_freq"):
                    t = t.to(dtype)
                state[name] = t
    return state


def load_model(model_dir: str | Path, device="cpu", dtype: torch.dtype | None = None) -> Transformer:
    """A checkpoint directory in the apple/DCLM-7B layout -> Transformer (eval mode)."""
    args, cfg = read_config(model_dir)
    d = Path(model_dir)
    if "quantization" in cfg:
        raise DclmError(f"{d} holds a quantized model; load it with dclm.generate.load_for_inference (or dclm generate)")
    raw = read_safetensors(d, dtype)
    if any(not k.startswith(PREFIX) for k in raw):
        bad = next(k for k in raw if not k.startswith(PREFIX))
        raise DclmError(f"{d}: tensor {bad!r} lacks the {PREFIX!r} prefix of the DCLM HF layout")
    state = {k[len(PREFIX):]: v for k, v in raw.items()}
    return build_model(args, state, str(d), device=device, dtype=dtype)


def save_model(model: Transformer, model_dir: str | Path, dtype: torch.dtype | None = None,
               max_shard_bytes: int = 5 * 2**30) -> Path:
    """Write config.json + safetensors (sharded above `max_shard_bytes`) in the apple/DCLM-7B layout."""
    return save_state_dict(model.args, model.state_dict(), model_dir, dtype=dtype, max_shard_bytes=max_shard_bytes)


def save_state_dict(args: ModelArgs, model_state: dict[str, torch.Tensor], model_dir: str | Path,
                    dtype: torch.dtype | None = None, max_shard_bytes: int = 5 * 2**30) -> Path:
    """`save_model` for a Transformer's state dict (e.g. one gathered from sharded training processes)."""
    from safetensors.torch import save_file

    from dclm.io import atomic_open

    d = Path(model_dir)
    d.mkdir(parents=True, exist_ok=True)
    state = {}
    for name, t in model_state.items():
        if args.weight_tying and name == "output.weight":
            continue
        t = t.detach().to("cpu")
        if dtype is not None and t.is_floating_point() and not name.endswith("inv_freq"):
            t = t.to(dtype)
        state[PREFIX + name] = t.contiguous()
    out_dtype = dtype or next(t.dtype for n, t in state.items() if not n.endswith("inv_freq"))
    shards: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for name, t in state.items():
        nbytes = t.numel() * t.element_size()
        if shards[-1] and size + nbytes > max_shard_bytes:
            shards.append({})
            size = 0
        shards[-1][name] = t
        size += nbytes
    for stale in list(d.glob("model*.safetensors")) + [d / INDEX]:
        stale.unlink(missing_ok=True)
    if len(shards) == 1:
        _save(save_file, shards[0], d / SAFETENSORS)
    else:
        weight_map = {}
        for i, shard in enumerate(shards, 1):
            fname = f"model-{i:05d}-of-{len(shards):05d}.safetensors"
            _save(save_file, shard, d / fname)
            weight_map.update({k: fname for k in shard})
        total = sum(t.numel() * t.element_size() for t in state.values())
        with atomic_open(str(d / INDEX), "w") as f:
            f.write(json.dumps({"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}, indent=2))
    with atomic_open(str(d / "config.json"), "w") as f:
        f.write(json.dumps(hf_config_dict(args, out_dtype), indent=2) + "\n")
    return d


def _save(save_file, tensors, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata={"format": "pt"})
    tmp.replace(path)


def load_openlm_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """State dict of an open_lm training checkpoint (`epoch_N.pt`), prefixes stripped; never unpickles code."""
    p = Path(path)
    if not p.is_file():
        raise DclmError(f"checkpoint not found: {p}")
    try:
        obj = torch.load(str(p), map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises UnpicklingError/RuntimeError with long messages
        raise DclmError(f"{p}: not a loadable weights-only torch checkpoint ({str(e).splitlines()[0]})") from None
    state = obj.get("state_dict", obj) if isinstance(obj, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise DclmError(f"{p}: no tensor state_dict inside")
    return strip_prefixes(state)


def infer_args(state: dict[str, torch.Tensor], n_heads: int | None = None, source: str = "checkpoint") -> ModelArgs:
    """ModelArgs from tensor shapes; the head count is not in the shapes, so it comes from a named DCLM
    config of the same width/depth/vocab or from `n_heads`."""
    try:
        vocab, dim = state["tok_embeddings.weight"].shape
    except KeyError:
        raise DclmError(f"{source}: no tok_embeddings.weight (not an open_lm model)") from None
    n_layers = len({int(m.group(1)) for k in state if (m := re.match(r"layers\.(\d+)\.", k))})
    kw = dict(dim=int(dim), n_layers=n_layers, vocab_size=int(vocab),
              apply_qk_norm="layers.0.attention.q_norm.weight" in state,
              weight_tying="output.weight" not in state,
              post_embed_norm="post_embed_norm.weight" in state)
    if "layers.0.attention.pos_embed.inv_freq" in state and n_heads is None:
        head_dim = 2 * state["layers.0.attention.pos_embed.inv_freq"].shape[0]
        n_heads = int(dim) // head_dim
    if n_heads is None:
        named = [a for a in CONFIGS.values() if (a.dim, a.n_layers, a.vocab_size) == (kw["dim"], n_layers, kw["vocab_size"])]
        if not named:
            raise DclmError(f"{source}: cannot tell the number of heads from the tensors; pass --n-heads")
        n_heads = named[0].n_heads
    return ModelArgs(n_heads=n_heads, **kw)


def save_openlm_checkpoint(model: Transformer, path: str | Path, epoch: int = 0) -> Path:
    """An open_lm-style `epoch_N.pt` ({"epoch", "name", "state_dict"}) that open_lm's --resume accepts."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    state = {"module." + k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tmp = p.with_name(p.name + ".tmp")
    torch.save({"epoch": epoch, "name": _label(model.args), "state_dict": state}, str(tmp))
    tmp.replace(p)
    return p
