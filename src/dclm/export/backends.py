"""Exported models as `dclm generate` backends: llama.cpp (a GGUF file) and ONNX Runtime (an ONNX export dir).

Each backend only turns tokens into next-token logits and owns its tokenizer; sampling, stop strings and
streaming are dclm.generate's own, so one prompt gives comparable output on every backend (greedy decoding
gives the same tokens where the logits agree). Prompts are decoded one at a time. Both runtimes use
`torch.get_num_threads()` threads (set OMP_NUM_THREADS to change it), the same as the torch backend.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from dclm.errors import DclmError

BACKENDS = ("torch", "onnx", "llama.cpp")


def _threads() -> int:
    import torch

    return torch.get_num_threads()


def amx_cpu() -> bool:
    """Whether this llama.cpp build runs on a CPU with AMX (it then repacks quantized weights for AMX)."""
    import llama_cpp

    return b"AMX_INT8 = 1" in llama_cpp.llama_print_system_info()


def load_llama(path: str | Path, **kwargs):
    """`llama_cpp.Llama(path, **kwargs)`, with llama.cpp's weight repacking (`--no-repack` in its CLI) turned
    off on AMX CPUs: there the AMX repack of Q8_0/Q4_0 weights segfaults in the first matmul
    (ggml-org/llama.cpp#20824; seen here with llama-cpp-python 0.3.36 for every quantized file). The
    Python API has no switch for it, so the default model params are patched for the one load."""
    import llama_cpp
    import llama_cpp.llama_cpp as capi

    if not amx_cpu():
        return llama_cpp.Llama(str(path), **kwargs)
    default = capi.llama_model_default_params

    def no_repack():
        params = default()
        params.use_extra_bufts = False
        return params

    capi.llama_model_default_params = no_repack
    try:
        return llama_cpp.Llama(str(path), **kwargs)
    finally:
        capi.llama_model_default_params = default


class LlamaCppTokenizer:
    """The GGUF's own vocabulary; special-token text in a prompt is matched, as HF's encode matches it."""

    def __init__(self, llm):
        self.llm = llm

    def encode(self, text: str) -> list[int]:
        return self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)

    def decode(self, ids) -> str:
        return self.llm.detokenize(list(ids), special=True).decode("utf-8", errors="replace")


class LlamaCppBackend:
    """A GGUF file in llama.cpp (llama-cpp-python). The KV cache is F32 by default: llama.cpp's default F16
    cache alone moves logits by ~5e-3 (issue 19), an F32 cache keeps them within 1e-4 of dclm's."""

    def __init__(self, path: str | Path, n_ctx: int | None = None, threads: int | None = None,
                 f32_cache: bool = True):
        try:
            import llama_cpp
        except ImportError:
            raise DclmError("--backend llama.cpp needs llama-cpp-python: pip install 'dclm[llamacpp]'") from None
        p = Path(path)
        if not p.is_file():
            raise DclmError(f"GGUF file not found: {p} (make one with `dclm export gguf`)")
        threads = threads or _threads()
        cache = {"type_k": llama_cpp.GGML_TYPE_F32, "type_v": llama_cpp.GGML_TYPE_F32} if f32_cache else {}
        try:
            self.llm = load_llama(p, n_ctx=n_ctx or 0, n_threads=threads, n_threads_batch=threads,
                                       n_batch=512, verbose=False, **cache)
        except ValueError as e:  # llama-cpp-python's "Failed to load model from file"
            raise DclmError(f"{p}: llama.cpp cannot load it ({e})") from None
        self.tokenizer = LlamaCppTokenizer(self.llm)
        self.vocab_size = self.llm.n_vocab()
        self.max_len = self.llm.n_ctx()

    def reset(self) -> None:
        self.llm.reset()

    def feed(self, ids: list[int]) -> np.ndarray:
        """Append tokens to the context; the logits after the last one [V] (float32)."""
        import llama_cpp

        self.llm.eval(ids)
        # without logits_all, llama-cpp-python keeps no scores; the context still holds the last row's logits
        row = llama_cpp.llama_get_logits_ith(self.llm.ctx, -1)
        return np.ctypeslib.as_array(row, shape=(self.vocab_size,)).astype(np.float32)


class OnnxBackend:
    """A `dclm export onnx` directory in ONNX Runtime (CPU provider), its past-KV outputs fed back in."""

    def __init__(self, path: str | Path, threads: int | None = None):
        try:
            import onnxruntime as ort
        except ImportError:
            raise DclmError("--backend onnx needs onnxruntime: pip install 'dclm[onnx]'") from None
        from dclm.export.onnx import META_FILE, MODEL_FILE, io_names
        from dclm.generate.tokenizer import load_tokenizer

        d = Path(path)
        if not (d / META_FILE).is_file() or not (d / MODEL_FILE).is_file():
            raise DclmError(f"{d}: not a `dclm export onnx` directory (no {META_FILE} / {MODEL_FILE})")
        self.meta = json.loads((d / META_FILE).read_text())
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or _threads()
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(d / MODEL_FILE), opts, providers=["CPUExecutionProvider"])
        self.inputs, _ = io_names(self.meta["n_layers"])
        self.dtype = np.float16 if self.meta["dtype"] == "fp16" else np.float32
        self.tokenizer = load_tokenizer(d)
        self.vocab_size = self.meta["vocab_size"]
        self.max_len = self.meta["seq_len"]
        self.reset()

    def reset(self) -> None:
        m = self.meta
        empty = np.zeros((1, m["n_heads"], 0, m["head_dim"]), self.dtype)
        self.past = [empty] * (2 * m["n_layers"])

    def feed(self, ids: list[int]) -> np.ndarray:
        feed = {"input_ids": np.asarray([ids], dtype=np.int64), **dict(zip(self.inputs[1:], self.past))}
        out = self.session.run(None, feed)
        self.past = out[1:]
        return out[0][0, -1].astype(np.float32)


def open_backend(name: str, path: str, tokenizer: str | None = None):
    if name == "llama.cpp":
        backend = LlamaCppBackend(path)
    elif name == "onnx":
        backend = OnnxBackend(path)
    else:
        raise DclmError(f"unknown backend {name!r}; known: {', '.join(BACKENDS)}")
    if tokenizer:
        from dclm.generate.tokenizer import load_tokenizer

        backend.tokenizer = load_tokenizer(None, tokenizer)
    return backend


def generate_ids(backend, prompt: list[int], params, stop_check=None, on_token=None):
    """One prompt through `backend` with dclm's sampler -> dclm.generate.engine.Completion."""
    import torch

    from dclm.generate.engine import Completion
    from dclm.generate.sampling import next_token

    if not prompt:
        raise DclmError("every prompt needs at least one token")
    if len(prompt) + params.max_new_tokens > backend.max_len:
        raise DclmError(f"prompt ({len(prompt)} tokens) + --max-new-tokens {params.max_new_tokens} exceeds the "
                        f"model's context of {backend.max_len}")
    generator = None
    if params.seed is not None and not params.greedy:
        generator = torch.Generator().manual_seed(params.seed)
    seen = torch.zeros(1, backend.vocab_size, dtype=torch.bool)
    seen[0, torch.tensor(prompt)] = True
    backend.reset()
    logits = backend.feed(list(prompt))
    out: list[int] = []
    for step in range(params.max_new_tokens):
        tok = int(next_token(torch.from_numpy(logits)[None], seen, params, generator)[0])
        seen[0, tok] = True
        if params.eos_id is not None and tok == params.eos_id:
            return Completion(list(prompt), out, "eos")
        out.append(tok)
        if stop_check is not None and (n := stop_check(0, out)) is not None:
            return Completion(list(prompt), out[:n], "stop")
        if on_token is not None:
            on_token(0, out)
        if step < params.max_new_tokens - 1:
            logits = backend.feed([tok])
    return Completion(list(prompt), out, "length")


def run_backend(args, prompts: list[str], params) -> int:
    """`dclm generate --backend onnx|llama.cpp`: --model is the exported file or directory."""
    import sys

    from dclm.generate.engine import Streamer, TextStopper, cut_at_stop

    backend = open_backend(args.backend, args.model, args.tokenizer)
    tok = backend.tokenizer
    stopper = TextStopper(tok, params.stop) if params.stop else None
    stream = len(prompts) == 1
    for prompt in prompts:
        streamer = Streamer(tok, params.stop) if stream else None
        if stream:
            sys.stdout.write(prompt)
            sys.stdout.flush()
        c = generate_ids(backend, tok.encode(prompt), params, stop_check=stopper, on_token=streamer)
        text = cut_at_stop(tok.decode(c.ids), params.stop)
        if streamer is not None:
            streamer.finish(text)
        else:
            print(json.dumps({"prompt": prompt, "completion": text, "finish_reason": c.finish_reason,
                              "new_tokens": len(c.ids)}, ensure_ascii=False))
    return 0
