"""Pages/s of the DCLM-Baseline heuristic recipe, single process, mappers only (no file I/O).

    python benchmarks/bench_recipe.py --pages 4000
    python benchmarks/bench_recipe.py --config path/to/dclm_baseline_refinedweb.yaml --banlists DIR

Pages come from dclm.demo.webpages (seeded). The recipe's steps run through the pipeline's own
`run_step` (the function `dclm process` applies per shard), with the mappers built once beforehand (factory
setup is reported apart, as `setup_secs`). Banlists and the TLD list are read from --banlists (default
../shared/dclm_reference, else the dclm asset cache); the curated domain banlist, an external asset, is
replaced by a small generated one. Wall-clock pages/s is the headline; pages per CPU-second is printed
beside it because the machine may be shared (see load_avg_1m). The comparison with DCLM's own processor, whole
command against whole command in the same run, is benchmarks/bench_recipe_vs_dclm.py. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _workdir(tmp: Path, banlists: Path | None) -> Path:
    """A working directory holding DCLM's relative asset paths (links to the real files)."""
    from dclm.assets import find_asset
    from dclm.demo.webpages import BANNED_DOMAINS

    ban_dir = tmp / "baselines" / "mappers" / "banlists"
    ban_dir.mkdir(parents=True)
    (ban_dir / "refinedweb_banned_domains_curated.txt").write_text("\n".join(BANNED_DOMAINS) + "\n")
    names = ["refinedweb_banned_words_strict_reverse_engineered.txt", "refinedweb_banned_words_hard_reverse_engineered.txt",
             "refinedweb_banned_words_soft_reverse_engineered.txt"]
    for name in names:
        src = (banlists / "banlists" / name) if banlists else find_asset(name)
        if src is None or not Path(src).is_file():
            sys.exit(f"missing banlist {name}: pass --banlists or run `dclm assets fetch`")
        (ban_dir / name).symlink_to(Path(src).resolve())
    tlds = (banlists / "iana_tlds.txt") if banlists else find_asset("iana_tlds.txt")
    if tlds is None or not Path(tlds).is_file():
        sys.exit("missing iana_tlds.txt: pass --banlists or run `dclm assets fetch`")
    (tmp / "baselines" / "mappers" / "iana_tlds.txt").symlink_to(Path(tlds).resolve())
    return tmp


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pages", type=int, default=4000, help="number of generated pages")
    ap.add_argument("--seed", type=int, default=0, help="page generator seed")
    ap.add_argument("--config", default=None, help="recipe YAML (default: DCLM's dclm_baseline_refinedweb.yaml "
                    "from ../shared, else the bundled config of that name)")
    ap.add_argument("--banlists", default=None, help="directory with banlists/ and iana_tlds.txt "
                    "(default ../shared/dclm_reference if present, else the asset cache)")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs; the best is reported")
    args = ap.parse_args()

    from dclm.demo.webpages import generate_pages
    from dclm.process.pipeline import build_mapper, load_pipeline
    from dclm.process.executor import run_step

    shared = REPO.parent / "shared" / "dclm_reference"
    banlists = Path(args.banlists) if args.banlists else (shared if shared.is_dir() else None)
    config = args.config or (str(shared / "baselines_configs" / "dclm_baseline_refinedweb.yaml")
                             if shared.is_dir() else "dclm_baseline_refinedweb")
    config = os.path.abspath(config) if os.path.isfile(config) else config

    with tempfile.TemporaryDirectory() as tmp:
        cwd = os.getcwd()
        os.chdir(_workdir(Path(tmp), banlists))
        try:
            pipeline = load_pipeline(config)
            t0 = time.perf_counter()
            steps = [s for s in pipeline.steps if not s.is_commit]
            fns = [build_mapper(s) for s in steps]
            setup = time.perf_counter() - t0
            best = None
            for _ in range(args.repeat):
                pages = generate_pages(args.pages, seed=args.seed)
                chars = sum(len(p["text"]) for p in pages)
                rejects: list = []
                records = []
                t0, c0 = time.perf_counter(), time.process_time()
                for step, fn in zip(steps, fns):
                    c1 = time.process_time()
                    pages, rec = run_step(step, fn, pages, rejects)
                    rec["cpu_secs"] = time.process_time() - c1
                    records.append(rec)
                secs, cpu = time.perf_counter() - t0, time.process_time() - c0
                if best is None or secs < best[0]:
                    best = (secs, cpu, records, len(pages), len(rejects))
            # one more, untimed pass: how many pages each step modified (modifiers remove only emptied pages)
            pages = generate_pages(args.pages, seed=args.seed)
            modified = {}
            for step, fn in zip(steps, fns):
                before = {id(p): p["text"] for p in pages}
                pages, rec = run_step(step, fn, pages, [])
                modified[f"{step.index + 1:02d}_{step.func}"] = sum(1 for p in pages if before.get(id(p), p["text"]) != p["text"])
        finally:
            os.chdir(cwd)
    secs, cpu, records, kept, errors = best
    out = {
        "benchmark": "recipe",
        "config": os.path.basename(str(config)),
        "pages": args.pages,
        "mean_chars_per_page": round(chars / args.pages, 1),
        "pages_out": kept,
        "errors": errors,
        "secs": round(secs, 3),
        "pages_per_s": round(args.pages / secs, 1),
        "cpu_secs": round(cpu, 3),
        "pages_per_cpu_s": round(args.pages / cpu, 1),
        "setup_secs": round(setup, 3),
        "per_step_secs": {f"{r['step_index'] + 1:02d}_{r['name']}": round(r["total_secs"], 4) for r in records},
        "per_step_cpu_secs": {f"{r['step_index'] + 1:02d}_{r['name']}": round(r["cpu_secs"], 4) for r in records},
        "per_step_removed": {f"{r['step_index'] + 1:02d}_{r['name']}": r["removed"] for r in records},
        "per_step_modified": modified,
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "cpus": os.cpu_count(),
    }
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
