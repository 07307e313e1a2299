"""`dclm classifier`: train a fastText quality classifier, score pages into sidecars, select by score."""

from __future__ import annotations

import argparse
import json



def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "classifier",
        help="fastText quality classifier: train, score pages, select the best",
        description="DCLM's model-based quality filter in three steps: `train` a fastText classifier "
        "(positives __label__hq vs negatives __label__cc), `score` pages into sidecar attribute shards "
        "(P(hq) by the rule of DCLM's classify_fasttext_hq_prob_enricher), and `select` pages by "
        "threshold or top fraction from those sidecars, without re-scoring.",
    )
    verbs = p.add_subparsers(dest="classifier_verb", metavar="STEP", required=True)
    _register_train(verbs)
    _register_score(verbs)
    _register_select(verbs)


def _register_train(verbs) -> None:
    p = verbs.add_parser(
        "train",
        help="train a fastText classifier with DCLM's recipe",
        description="Train a fastText classifier with DCLM's recipe: positives labelled __label__hq, negatives "
        "__label__cc, each text joined to one line (' '.join(text.strip().splitlines())), a seeded shuffle, "
        "lr 0.1, dim 100, ws 5, epoch 5, minCount 1, wordNgrams 2. Writes MODEL and MODEL's stem + "
        ".card.json (sources, counts, hyperparameters, held-out metrics, fastText version, sha256). "
        "With --threads 1 (default) the same inputs and --seed give the same model; more threads are "
        "faster but not reproducible.",
    )
    p.add_argument("--positive", required=True, nargs="+", help="page shards or folders of high-quality examples (e.g. OpenHermes-2.5, ELI5 exports)")
    p.add_argument("--negative", required=True, nargs="+", help="page shards or folders of ordinary web pages (e.g. a processed pool)")
    p.add_argument("--output", required=True, help="model file to write, e.g. classifier.bin (local path)")
    p.add_argument("--text-key", default="text", help="page field holding the text (default: text)")
    p.add_argument("--max-examples-per-class", type=int, help="use at most N pages per class, a uniform seeded sample (reservoir sampling)")
    p.add_argument("--negative-sample", type=int, metavar="N", help="uniformly sample N negative pages from the pool with --seed (overrides --max-examples-per-class for negatives)")
    p.add_argument("--valid-fraction", type=float, default=0.0, help="hold out this fraction of the shuffled examples and report precision, recall and ROC-AUC on it (default 0)")
    p.add_argument("--seed", type=int, default=42, help="seed for sampling, shuffling and fastText (default 42, DCLM's)")
    p.add_argument("--threads", type=int, default=1, help="fastText training threads (default 1: reproducible; more is faster but nondeterministic)")
    p.add_argument("--lr", type=float, default=0.1, help="learning rate (default 0.1)")
    p.add_argument("--dim", type=int, default=100, help="embedding size (default 100)")
    p.add_argument("--ws", type=int, default=5, help="context window size (default 5)")
    p.add_argument("--epoch", type=int, default=5, help="training epochs (default 5)")
    p.add_argument("--min-count", type=int, default=1, help="minimal word count (default 1)")
    p.add_argument("--word-ngrams", type=int, default=2, help="max word n-gram length (default 2, DCLM's 'bigram')")
    p.add_argument("--bucket", type=int, default=2_000_000, help="hash buckets for n-grams (default 2,000,000, fastText's; smaller gives a smaller model)")
    p.add_argument("--no-progress", action="store_true", help="no fastText progress output")
    p.set_defaults(func=_train)


def _register_score(verbs) -> None:
    from dclm.classifier.config import ScoreConfig
    from dclm.runtime.config import add_config_arguments

    p = verbs.add_parser(
        "score",
        help="score pages with a fastText classifier into sidecar attribute shards",
        description="Compute P(hq) for every page exactly as DCLM's classify_fasttext_hq_prob_enricher does and "
        "write sidecar shards under OUTPUT that mirror the input paths line for line ({id, url, KEY: score}). "
        "Pages without text get a null score and go to OUTPUT/_rejects with the reason. Shards run in "
        "parallel processes; rerunning resumes (finished sidecars are kept). Works with DCLM's "
        "fasttext_oh_eli5.bin as is.",
    )
    add_config_arguments(p, ScoreConfig)
    p.set_defaults(func=_score)


def _register_select(verbs) -> None:
    from dclm.classifier.config import SelectConfig
    from dclm.runtime.config import add_config_arguments

    p = verbs.add_parser(
        "select",
        help="keep pages by score (threshold or top fraction) using the sidecars",
        description="Join pages with their sidecar scores and keep those with score >= --threshold (DCLM's "
        "quality_filter, e.g. 0.018112) or the best --keep-top-fraction of scored pages (ties at the cut "
        "broken by input order; the threshold used is reported). The decision reads only the sidecars, so "
        "re-thresholding is cheap: without --output only the JSON report (score histogram, quantiles, "
        "threshold, kept counts) is produced.",
    )
    add_config_arguments(p, SelectConfig)
    p.set_defaults(func=_select)


def _train(args: argparse.Namespace) -> int:
    from dclm.classifier.train import FastTextParams, train_classifier

    params = FastTextParams(lr=args.lr, dim=args.dim, ws=args.ws, epoch=args.epoch, minCount=args.min_count,
                            wordNgrams=args.word_ngrams, bucket=args.bucket, thread=args.threads, seed=args.seed)
    result = train_classifier(
        args.positive, args.negative, args.output, params=params,
        max_examples_per_class=args.max_examples_per_class, negative_sample=args.negative_sample,
        valid_fraction=args.valid_fraction, text_key=args.text_key, verbose=0 if args.no_progress or args.quiet else 2,
    )
    if not args.quiet:
        print(f"model: {args.output} ({result.positive_examples} positive, {result.negative_examples} negative, "
              f"{result.train_examples} trained on); card: {result.card_path}")
        m = result.valid_metrics
        if m:
            print(f"held out {m['examples']}: ROC-AUC {m['roc_auc']}, precision {m['precision']}, recall {m['recall']}")
    return 0


def _score(args: argparse.Namespace) -> int:
    from dclm.classifier.config import ScoreConfig
    from dclm.classifier.score import score_shards
    from dclm.runtime.config import config_from_args

    result = score_shards(config_from_args(ScoreConfig, args, progress=args.progress and not args.quiet))
    t = result.totals()
    if not args.quiet:
        scored_mb = sum(s.bytes for s in result.shards) / 1e6
        rate = f", {scored_mb / result.secs:.1f} MB/s" if result.secs > 0 and scored_mb else ""
        print(f"scored {t['scored']} of {t['pages']} pages in {t['shards']} shards ({t['shards_skipped']} already done), "
              f"{t['rejects']} rejects, {result.secs:.1f}s{rate} -> {result.output}")
    for s in result.failed:
        print(f"dclm: shard {s.rel} failed: {s.error}")
    return 1 if result.failed else 0


def _select(args: argparse.Namespace) -> int:
    from dclm.classifier.config import SelectConfig
    from dclm.classifier.select import select_pages
    from dclm.runtime.config import config_from_args

    result = select_pages(config_from_args(SelectConfig, args, progress=args.progress and not args.quiet))
    if not args.output and not args.report:
        print(json.dumps(result.report, indent=2))
    elif not args.quiet:
        print(f"kept {result.kept_pages} of {result.scored_pages} scored pages "
              f"(threshold {result.threshold}, {result.unscored_pages} unscored)")
    return 0
