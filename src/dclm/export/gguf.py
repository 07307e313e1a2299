"""`dclm export gguf`: a DCLM checkpoint as a GGUF file that stock llama.cpp, llama-cpp-python and ollama load.

The model is written as llama.cpp's `olmoe` architecture (dclm.export.olmoe explains why that is exact) and
the tokenizer as a `gpt2` BPE vocabulary with pre-tokenizer `olmo` (dclm.export.vocab). Tensors are planned
first (the GGUF header lists every tensor's type and size), then made, converted and written one at a time,
so the memory needed is a small multiple of the largest tensor whatever the model size. The file is written
under a temporary name and renamed when complete.
"""

from __future__ import annotations

import logging
import os
import resource
import time
from dataclasses import dataclass
from pathlib import Path

from dclm.errors import DclmError
from dclm.export.configs import OUTTYPES, GGUFExportConfig
from dclm.runtime.config import ConfigError


@dataclass(frozen=True)
class GGUFExportResult:
    output: str
    outtype: str
    bytes: int
    tensors: int
    params: int
    seconds: float
    peak_rss_bytes: int


def _ggml_type(outtype: str, matrix: bool):
    from gguf import GGMLQuantizationType as T

    if not matrix:
        return T.F32
    return {"f32": T.F32, "f16": T.F16, "bf16": T.BF16, "q8_0": T.Q8_0, "q4_0": T.Q4_0}[outtype]


def _file_type(outtype: str):
    from gguf import LlamaFileType as F

    return {"f32": F.ALL_F32, "f16": F.MOSTLY_F16, "bf16": F.MOSTLY_BF16, "q8_0": F.MOSTLY_Q8_0,
            "q4_0": F.MOSTLY_Q4_0}[outtype]


def tensor_nbytes(shape: tuple[int, ...], qtype) -> int:
    """Bytes of a tensor of `shape` stored as ggml type `qtype` (blocks along the last dimension)."""
    from gguf import GGML_QUANT_SIZES

    block, size = GGML_QUANT_SIZES[qtype]
    n = 1
    for s in shape:
        n *= s
    if shape[-1] % block:
        raise DclmError(f"a row of {shape[-1]} values is not a whole number of {qtype.name} blocks of {block}")
    return n // block * size


def _import_gguf():
    try:
        import gguf
    except ImportError:
        raise DclmError("`dclm export gguf` needs the gguf package: pip install 'dclm[export]'") from None
    return gguf


def _tokenizer_json(cfg: GGUFExportConfig, src) -> tuple[str, str]:
    from dclm.tokenize.tokenizer import NEOX_NAME, resolve_tokenizer_json

    where = cfg.tokenizer or (str(src.tokenizer_path) if src.tokenizer_path else NEOX_NAME)
    return resolve_tokenizer_json(where), where


def export_gguf(cfg: GGUFExportConfig) -> GGUFExportResult:
    """Write `cfg.model` as a GGUF file; refuses (DclmError) a checkpoint the olmoe graph cannot run exactly."""
    gguf = _import_gguf()
    logging.getLogger("gguf").setLevel(logging.WARNING)  # its writer logs every file plan at INFO
    from dclm.export import olmoe
    from dclm.export.source import open_checkpoint
    from dclm.export.vocab import PRE_TOKENIZER, gguf_vocab
    from dclm.runtime.progress import progress_bar

    if cfg.outtype not in OUTTYPES:
        raise ConfigError("outtype", f"must be one of {', '.join(OUTTYPES)}")
    t0 = time.perf_counter()
    src = open_checkpoint(cfg.model, n_heads=cfg.n_heads)
    why = olmoe.unsupported_reason(src)
    if why:
        raise DclmError(f"{cfg.model}: cannot be written exactly for llama.cpp: {why}")
    a = src.args
    text, where = _tokenizer_json(cfg, src)
    vocab = gguf_vocab(text, a.vocab_size, where)
    tensors = olmoe.plan(src)

    out = Path(cfg.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + f".part{os.getpid()}")
    w = gguf.GGUFWriter(str(tmp), olmoe.ARCH)
    try:
        w.add_name(cfg.name or src.name)
        w.add_description("DCLM open_lm model exported by dclm (LayerNorms written as RMSNorms over centred "
                          "inputs, dense SwiGLU as one expert)")
        if cfg.source_url:
            w.add_source_url(cfg.source_url)
        w.add_context_length(a.seq_len)
        w.add_embedding_length(a.dim)
        w.add_block_count(a.n_layers)
        w.add_feed_forward_length(a.ffn_hidden)
        w.add_head_count(a.n_heads)
        w.add_head_count_kv(a.n_heads)
        w.add_rope_dimension_count(a.head_dim)
        w.add_rope_freq_base(a.rope_base)
        w.add_layer_norm_rms_eps(a.norm_eps)
        w.add_expert_count(1)
        w.add_expert_used_count(1)
        w.add_file_type(_file_type(cfg.outtype))
        w.add_quantization_version(gguf.GGML_QUANT_VERSION)
        w.add_tokenizer_model("gpt2")
        w.add_tokenizer_pre(PRE_TOKENIZER)
        w.add_token_list(vocab.tokens)
        w.add_token_types(vocab.types)
        w.add_token_merges(vocab.merges)
        if vocab.eot_id is not None:
            w.add_bos_token_id(vocab.eot_id)
            w.add_eos_token_id(vocab.eot_id)
            w.add_unk_token_id(vocab.eot_id)
        if vocab.pad_id is not None:
            w.add_pad_token_id(vocab.pad_id)
        w.add_add_bos_token(False)  # DCLM's card encodes prompts without BOS
        w.add_add_eos_token(False)
        import numpy as np

        for t in tensors:
            qtype = _ggml_type(cfg.outtype, t.matrix)
            w.add_tensor_info(t.name, t.shape, np.dtype(np.float32), tensor_nbytes(t.shape, qtype), raw_dtype=qtype)
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_ti_data_to_file()
        with progress_bar(len(tensors), desc="export gguf", unit="tensor", enabled=cfg.progress) as bar:
            for t, data in olmoe.produce(tensors):
                w.write_tensor_data(gguf.quants.quantize(data, _ggml_type(cfg.outtype, t.matrix)))
                del data
                bar.update(1)
        w.close()
        os.replace(tmp, out)
    except BaseException:
        w.close()
        tmp.unlink(missing_ok=True)
        raise
    return GGUFExportResult(
        output=str(out), outtype=cfg.outtype, bytes=out.stat().st_size, tensors=len(tensors),
        params=a.num_params(), seconds=round(time.perf_counter() - t0, 2),
        peak_rss_bytes=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
