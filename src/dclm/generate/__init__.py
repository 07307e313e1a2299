"""Generation for open_lm/DCLM checkpoints: static-KV-cache decoding, sampling, batching, quantization."""

from __future__ import annotations

import os
from pathlib import Path


def passive_openmp() -> None:
    """Idle OpenMP threads spin for a moment, then sleep: OMP_WAIT_POLICY=PASSIVE with GOMP_SPINCOUNT=20000
    (about 0.4 ms of spinning on the 2-core Xeon this project measures on), unless the user set either.

    numba's parallel kernels run on torch's GNU OpenMP runtime (torch loads its libgomp into the global
    namespace and numba's pool binds to it: one thread team, in either import order), so a decode step's
    hundred-odd kernel launches find the workers still spinning from the last one (a launch about 1.6 µs
    against 8.7 µs for waking sleeping threads; 1.5 ms off every 411M token), and the threads stop taking
    cores half a millisecond after the work stops. libgomp's own default spins about ten times longer, and on
    a setup where two pools do meet (on the EPYC earlier figures came from, decoding ran several times slower
    with both spinning) the spinning stays short. libgomp reads the settings when it loads, so call this
    before importing torch."""
    if not {"OMP_WAIT_POLICY", "GOMP_SPINCOUNT"} & os.environ.keys():
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
        os.environ["GOMP_SPINCOUNT"] = "20000"


def load_for_inference(model_dir: str | Path, device: str = "cpu", dtype=None):
    """A Transformer from a DCLM-layout directory, plain or quantized by `dclm quantize`, ready to decode.

    The safetensors are memory-mapped and the weights view the map (cast only where `dtype` differs); on
    the CPU the decode kernels are swapped in (`dclm.generate.cpu`), which moves the matrices onto huge
    pages: the one copy of the weights the load makes (`dclm.generate.load`).
    """
    from dclm.generate.load import load_plain, release_maps
    from dclm.model.checkpoint import read_config

    args, cfg = read_config(model_dir)
    maps: list = []
    if "quantization" in cfg:
        from dclm.generate.quantize import load_quantized

        model = load_quantized(model_dir, cfg, dtype=dtype, maps=maps)
    else:
        model = load_plain(Path(model_dir), args, dtype, maps)
    if str(device).startswith("cpu"):
        from dclm.generate.cpu import install_cpu_kernels

        install_cpu_kernels(model)
        release_maps(maps)
    else:
        model = model.to(device)
    return model


def demo_generate(max_new_tokens: int = 8, seed: int = 0) -> dict:
    """Build a tiny random open_lm model, round-trip it through the DCLM HF layout in a temp dir, and
    greedy-decode a few tokens with our static-cache loop and with transformers' generate(); returns the
    token ids of both (they agree) and the parameter count. Used by `dclm demo`; takes about a second."""
    import tempfile

    import torch

    from dclm.generate.engine import Decoder
    from dclm.generate.sampling import SamplingParams
    from dclm.model.checkpoint import save_model
    from dclm.model.configs import get_config
    from dclm.model.openlm import Transformer

    torch.manual_seed(seed)
    model = Transformer(get_config("tiny")).eval()
    prompt = [1, 2, 3, 4, 5]
    with tempfile.TemporaryDirectory() as d:
        save_model(model, d)
        loaded = load_for_inference(d)
        import dclm.hf  # noqa: F401  (registers model_type "openlm")
        from transformers import AutoModelForCausalLM

        hf = AutoModelForCausalLM.from_pretrained(d)
    ours = Decoder(loaded).generate([prompt], SamplingParams.greedy_decoding(max_new_tokens, eos_id=None))[0].ids
    with torch.inference_mode():
        theirs = hf.generate(torch.tensor([prompt]), max_new_tokens=max_new_tokens, do_sample=False,
                             eos_token_id=None)[0, len(prompt):].tolist()
    return {"params": model.args.num_params(), "prompt": prompt, "dclm": ours, "transformers": theirs,
            "agree": ours == theirs}
