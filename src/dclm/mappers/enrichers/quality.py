"""DCLM's fastText quality enricher (baselines/mappers/enrichers/quality_prediction_enrichers_calc_fasttext.py).

The score is computed by `dclm.classifier.model.hq_probs`, the same function `dclm classifier score`
uses, so a YAML pipeline and the sidecar scorer give identical numbers. The returned mapper also has a
`map_batch(pages)` method, which the pipeline executor uses to score a whole shard in batched fastText
calls; any failure there falls back to per-page calls, which isolate and reject the bad page.
"""

from __future__ import annotations

from typing import Callable

from dclm.mappers.registry import factory_function, mapper
from dclm.classifier.model import DEFAULT_KEY, hq_probs, load_model, resolve_model

CONTENT = "text"


@mapper
@factory_function
def classify_fasttext_hq_prob_enricher(model_filename: str = "model.bin", key: str = DEFAULT_KEY,
                                       overwrite: bool = False) -> Callable[[dict], list[dict]]:
    """Store P(hq) from a fastText classifier under `key`.

    `model_filename` is a path, or a file name in DCLM's
    `baselines/mappers/enrichers/quality_prediction_enrichment_models/` (under the working directory),
    or a name in the dclm asset cache. The top-1 label `__label__cc` gives 1 - p, any other label gives p.
    """
    model = load_model(resolve_model(model_filename))

    def check(page: dict) -> None:
        if not overwrite and key in page:
            raise ValueError(f"cannot overwrite an existing key {key!r}")

    def enrich(page: dict) -> list[dict]:
        check(page)
        page[key] = hq_probs(model, [page[CONTENT]])[0]
        return [page]

    def map_batch(pages: list[dict]) -> list[list[dict]]:
        for page in pages:
            check(page)
        scores = hq_probs(model, [page[CONTENT] for page in pages])
        for page, score in zip(pages, scores):
            page[key] = score
        return [[page] for page in pages]

    enrich.map_batch = map_batch
    return enrich
