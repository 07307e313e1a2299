"""Pages/s of `dclm process` for a config over an input, end to end (reading, all steps, writing).

    python benchmarks/bench_process.py --config dclm_baseline_refinedweb --pages 4000 --shards 8 --workers 2
    python benchmarks/bench_process.py --config my.yaml --input /data/shards --workers 2

Without --input, web-like pages are generated with dclm.demo.webpages (seeded) into a temporary directory.
Bundled recipes find their banlists in the asset cache (`dclm assets fetch`; the curated domain list is
external, any list of domains works for timing). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", required=True, help="pipeline YAML path or bundled config name")
    ap.add_argument("--input", help="input shards (default: generate --pages web-like pages)")
    ap.add_argument("--pages", type=int, default=4000, help="pages to generate when no --input")
    ap.add_argument("--shards", type=int, default=8, help="shards to split generated pages into")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--ray", action="store_true")
    args = ap.parse_args()

    from dclm.io import list_shards
    from dclm.process import ProcessConfig, run_process

    with tempfile.TemporaryDirectory() as tmp:
        inp = args.input
        if inp is None:
            from dclm.demo.sample import write_sample_shards

            inp = os.path.join(tmp, "in")
            write_sample_shards(inp, n_pages=args.pages, n_shards=args.shards, seed=args.seed)
        in_bytes = sum(os.path.getsize(s.url) for s in list_shards(inp) if "://" not in s.url)
        t0 = time.perf_counter()
        res = run_process(ProcessConfig(pipeline=args.config, inputs=(inp,), output=os.path.join(tmp, "out"),
                                        workers=args.workers, ray=args.ray, progress=False))
        secs = time.perf_counter() - t0
    out = {
        "benchmark": "process",
        "config": args.config,
        "workers": args.workers,
        "executor": "ray" if args.ray else "local",
        "shards": res.shards,
        "failed_shards": len(res.failed),
        "pages_in": res.pages_in,
        "pages_out": res.pages_out,
        "input_bytes_on_disk": in_bytes,
        "secs": round(secs, 3),
        "pages_per_s": round(res.pages_in / secs, 1) if secs else None,
        "steps": [{"name": t["name"], "secs": round(t["secs"], 3), "removed": t["removed"]} for t in res.step_totals],
        "load_avg_1m": os.getloadavg()[0],
        "cpus": os.cpu_count(),
    }
    print(json.dumps(out, indent=2))
    return 0 if res.ok else 1


if __name__ == "__main__":
    sys.exit(main())
