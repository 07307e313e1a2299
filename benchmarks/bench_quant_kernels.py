"""Decode-shape kernel candidates side by side: ms per 411M layer (its four matrices) at 1 and 8 rows.

dclm's numba kernels (`dclm.model.cpu_matmul`: float32, bf16, int8, int4; bf16 weights times a bf16
model's bf16 activations go through `dclm.model.cpu_dot` on CPUs with AVX-512 BF16) against torch's
F.linear (float32, bf16) and torch's weight-only kernels (`torch._weight_int8pack_mm`, `torch._weight_int4pack_mm_for_cpu` on
weights repacked by `cpu_matmul.to_int4pack`; both with bf16 activations), and on CPUs with AVX-512 VNNI
dclm's int4 x int8 kernel (`dclm.model.cpu_vnni`, dclm's int4 decode path there). --layers copies of the layer are
swept per call so the weights come from memory, not from the last-level cache (on a CPU with a last-level
cache as large as the 300 MB of the Xeon this project measures on, the int8 and int4 copies still fit); the candidates take turns in
every repeat and the best repeat counts. Outputs are not compared here (tests do that for dclm's
kernels; the torch kernels are timed only). (torchao is not installed in this environment, so its CPU layouts
are not measured.)

    python benchmarks/bench_quant_kernels.py --layers 12 --repeats 3

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import time

from dclm.generate import passive_openmp

passive_openmp()  # before torch loads, as the CLI does

SHAPES = [(3072, 1024), (1024, 1024), (5632, 1024), (1024, 2816)]  # in_proj, out_proj, w12, w3 of 411M
GROUP = 128


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    import torch
    import torch.nn.functional as F

    from dclm.generate.quantize import quantize_int4, quantize_int8
    from dclm.model import cpu_matmul as cm
    from dclm.model import cpu_vnni

    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    layers = []
    for _ in range(args.layers):
        mats = []
        for n, k in SHAPES:
            w = torch.randn(n, k, generator=g) / k**0.5
            q, s = quantize_int8(w)
            p, s4, z4 = quantize_int4(w, GROUP)
            tp, tsz = cm.to_int4pack(p, s4, z4)  # dclm's repack into torch's int4 layout
            mats.append({
                "k": k, "w": w, "wb": w.bfloat16(), "q": q, "s": s.float(), "sb": s.bfloat16(), "p": p,
                "s4": s4.float(), "z4": z4.float(),
                "tp": tp, "tsz": tsz,
            })
        layers.append(mats)
    out = {"threads": args.threads, "layers_swept": args.layers, "torch": torch.__version__,
           "loadavg_before": [round(x, 2) for x in os.getloadavg()]}
    for rows in (1, 8):
        x = {k: torch.randn(rows, k, generator=g) for k in (1024, 2816)}
        xb = {k: v.bfloat16() for k, v in x.items()}
        cands = {
            "torch F.linear fp32": lambda m: F.linear(x[m["k"]], m["w"]),
            "numba fp32": lambda m: cm.linear(x[m["k"]], m["w"]),
            "torch F.linear bf16": lambda m: F.linear(xb[m["k"]], m["wb"]),
            "numba bf16 (float32 x)": lambda m: cm.linear(x[m["k"]], m["wb"]),
            "numba bf16 (bf16 x; AVX-512 BF16 dot where the CPU has it)": lambda m: cm.linear(xb[m["k"]], m["wb"]),
            "numba int8": lambda m: cm.linear_int8(x[m["k"]], m["q"], m["s"]),
            "torch _weight_int8pack_mm (bf16 x)": lambda m: torch._weight_int8pack_mm(xb[m["k"]], m["q"], m["sb"]),
            "numba int4": lambda m: cm.linear_int4(x[m["k"]], m["p"], m["s4"], m["z4"]),
            "torch _weight_int4pack_mm_for_cpu (bf16 x)":
                lambda m: torch._weight_int4pack_mm_for_cpu(xb[m["k"]], m["tp"], GROUP, m["tsz"]),
        }
        if cpu_vnni.vnni_available():
            cands["numba int4 x int8 (AVX-512 VNNI; dclm's int4 path there)"] = \
                lambda m: cpu_vnni.linear(x[m["k"]], m["p"], m["s4"], m["z4"])
        best = {}
        with torch.inference_mode():
            for r in range(args.repeats + 1):  # round 0 warms up
                for name, fn in cands.items():
                    t0 = time.perf_counter()
                    for mats in layers:
                        for m in mats:
                            fn(m)
                    if r:
                        best[name] = min(best.get(name, float("inf")), (time.perf_counter() - t0) / args.layers)
        out[f"rows{rows}_ms_per_layer"] = {k: round(v * 1e3, 3) for k, v in best.items()}
    out["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
