"""Scoring speed of the fastText quality classifier on ~3 KB pages: pages/s and MB/s on one core.

    python benchmarks/bench_quality.py                      # train a DCLM-recipe model on generated text
    python benchmarks/bench_quality.py --model fasttext_oh_eli5.bin --pages 20000

Measures, best of --repeat runs, interleaved (each repeat runs every side once):
  batched          dclm.classifier.model.hq_probs over every text in batches of --batch-size (the numba
                   kernels of dclm/classifier/kernels.py where the model allows, as `dclm classifier score` does)
  fasttext_batched the plain twin, plain_hq_probs: fastText's predict(list) per batch
  dclm_per_page    DCLM's own loop: one predict(str) per page (its classify_fasttext_hq_prob)
  end_to_end       `dclm classifier score` on one .jsonl.zst shard with one worker (read, parse, score, write)
Each side reports wall seconds and CPU seconds of this process (pages_per_cpu_s is the per-core rate, the
figure that holds on a shared machine); `scores_identical` says whether the three scorers gave the same
floats for every page, and `speedup_vs_dclm_loop` is batched over dclm_per_page (CPU time).
Without --model, a model is trained with DCLM's hyperparameters (dim 100, wordNgrams 2, bucket 2M by
default, like fasttext_oh_eli5.bin) on generated pages whose two classes use different word distributions.
Prints one JSON object, with the 1-minute load average since the machine may be shared.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time


def _vocab(n: int, rng: random.Random) -> list[str]:
    letters = "abcdefghijklmnopqrstuvwxyz"
    return ["".join(rng.choice(letters) for _ in range(rng.randint(2, 9))) for _ in range(n)]


def make_pages(n: int, page_bytes: int, seed: int, kind: str, vocab: list[str]) -> list[dict]:
    """Pages of about `page_bytes` bytes: Zipf-like word draws, lines of 8-20 words; 'hq' and 'cc' favour
    different halves of the vocabulary."""
    rng = random.Random(f"{seed}/{kind}")
    half = len(vocab) // 2
    weights = [1.0 / (i + 1) for i in range(len(vocab))]
    if kind == "cc":
        vocab = vocab[half:] + vocab[:half]
    pages = []
    for i in range(n):
        words = rng.choices(vocab, weights=weights, k=page_bytes // 5)
        lines, j = [], 0
        while j < len(words):
            k = rng.randint(8, 20)
            lines.append(" ".join(words[j:j + k]).capitalize() + ".")
            j += k
        text = "\n".join(lines)
        pages.append({"id": f"{kind}-{i}", "url": f"https://example.com/{kind}/{i}", "text": text[:page_bytes]})
    return pages


def _timed(fn) -> tuple[float, float]:
    t0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - t0, time.process_time() - c0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="existing fastText model (default: train one on generated text)")
    ap.add_argument("--pages", type=int, default=10000, help="pages to score (default 10000)")
    ap.add_argument("--page-bytes", type=int, default=3000, help="approximate page size in bytes (default 3000)")
    ap.add_argument("--train-pages", type=int, default=4000, help="generated training pages per class (default 4000)")
    ap.add_argument("--bucket", type=int, default=2_000_000, help="fastText n-gram buckets of the trained model (default 2M)")
    ap.add_argument("--batch-size", type=int, default=1024, help="pages per batched predict call (default 1024)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per measurement; the best is reported (default 3)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    from dclm.io import write_pages
    from dclm.classifier.model import CC_LABEL, fasttext_version, hq_probs, load_model, plain_hq_probs, preprocess
    from dclm.classifier.config import ScoreConfig
    from dclm.classifier.score import score_shards
    from dclm.classifier.train import FastTextParams, train_classifier

    vocab = _vocab(30000, random.Random(args.seed))
    with tempfile.TemporaryDirectory() as tmp:
        train_secs = None
        model_path = args.model
        if model_path is None:
            write_pages(f"{tmp}/pos/p.jsonl", make_pages(args.train_pages, args.page_bytes, args.seed, "hq", vocab))
            write_pages(f"{tmp}/neg/n.jsonl", make_pages(args.train_pages, args.page_bytes, args.seed, "cc", vocab))
            model_path = f"{tmp}/model.bin"
            t0 = time.perf_counter()
            train_classifier([f"{tmp}/pos"], [f"{tmp}/neg"], model_path, params=FastTextParams(bucket=args.bucket))
            train_secs = time.perf_counter() - t0
        model = load_model(model_path)
        n_half = args.pages // 2
        pages = make_pages(n_half, args.page_bytes, args.seed + 1, "hq", vocab) + \
            make_pages(args.pages - n_half, args.page_bytes, args.seed + 1, "cc", vocab)
        random.Random(args.seed).shuffle(pages)
        texts = [p["text"] for p in pages]
        mb = sum(len(t.encode("utf-8")) for t in texts) / 1e6
        n = len(texts)

        scores: dict[str, list[float]] = {}

        def batched():
            scores["batched"] = [p for i in range(0, n, args.batch_size) for p in hq_probs(model, texts[i:i + args.batch_size])]

        def fasttext_batched():
            scores["fasttext_batched"] = [p for i in range(0, n, args.batch_size)
                                          for p in plain_hq_probs(model, texts[i:i + args.batch_size])]

        def dclm_per_page():
            out = []
            for t in texts:
                label, prob = model.predict(preprocess(t))
                out.append(1 - prob[0] if label[0] == CC_LABEL else prob[0])
            scores["dclm_per_page"] = [float(p) for p in out]

        shard = f"{tmp}/in/part-0.jsonl.zst"
        write_pages(shard, pages)

        def end_to_end():
            score_shards(ScoreConfig(model=model_path, inputs=[f"{tmp}/in"], output=f"{tmp}/scores", workers=1,
                                     batch_size=args.batch_size, overwrite=True, progress=False))

        batched()  # warm-up: compiles or loads the kernels, faults in the model's pages (800 MB with 2M buckets)
        fasttext_batched()
        sides = (("batched", batched), ("fasttext_batched", fasttext_batched), ("dclm_per_page", dclm_per_page),
                 ("end_to_end", end_to_end))
        best = {name: (float("inf"), float("inf")) for name, _ in sides}
        for _ in range(args.repeat):
            for name, fn in sides:
                wall, cpu = _timed(fn)
                best[name] = (min(best[name][0], wall), min(best[name][1], cpu))
        results = {name: {"secs": round(w, 3), "cpu_secs": round(c, 3), "pages_per_s": round(n / w, 1),
                          "pages_per_cpu_s": round(n / c, 1), "mb_per_s": round(mb / w, 2)}
                   for name, (w, c) in best.items()}
        results["scores_identical"] = scores["batched"] == scores["fasttext_batched"] == scores["dclm_per_page"]
        results["speedup_vs_dclm_loop"] = round(best["dclm_per_page"][1] / best["batched"][1], 2)
        results["speedup_vs_dclm_loop_wall"] = round(best["dclm_per_page"][0] / best["batched"][0], 2)
        model_bytes = os.path.getsize(model_path)

    out = {
        "benchmark": "quality_score",
        "pages": n,
        "mean_page_bytes": round(mb * 1e6 / n, 1),
        "model": args.model or f"trained here: DCLM recipe, bucket {args.bucket}, {args.train_pages} pages/class",
        "model_bytes": model_bytes,
        "train_secs": round(train_secs, 2) if train_secs is not None else None,
        "batch_size": args.batch_size,
        "cores_used": 1,
        **results,
        "fasttext": fasttext_version(),
        "python": sys.version.split()[0],
        "load_avg_1m": os.getloadavg()[0],
        "cpus": os.cpu_count(),
    }
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
