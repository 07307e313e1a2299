"""DCLM's KenLM perplexity enricher (baselines/.../quality_prediction_enrichers_kenlm_model.py, after
edugp/kenlm's `model.py`): CCNet normalization, SentencePiece pieces, KenLM log10 scores.

Models by path: DCLM loads `en.arpa.bin` and `en.sp.model` from
`baselines/mappers/enrichers/quality_prediction_enrichment_models/`; the `model_path` and `sp_model_path`
parameters (dclm additions) default to those relative paths, which fall back to the asset cache.
"""

from __future__ import annotations

from typing import Callable

from dclm.assets import resolve_asset
from dclm.errors import DclmError
from dclm.mappers.core_utils import DIGIT_RE, NON_PRINTING_CHARS_RE, UNICODE_PUNCT
from dclm.mappers.registry import factory_function, mapper

CONTENT = "text"
MODEL_SUBDIRECTORY = "baselines/mappers/enrichers/quality_prediction_enrichment_models"
_PUNCT_TABLE = str.maketrans(UNICODE_PUNCT)


def normalize(line: str) -> str:
    """edugp's `from_pretrained` settings: strip, digits to 0, unicode punctuation to ASCII, non-printing
    characters (0-31 and 127-159, newlines included) deleted; case and accents kept."""
    line = line.strip()
    if not line:
        return line
    line = DIGIT_RE.sub("0", line)
    line = line.translate(_PUNCT_TABLE)
    return NON_PRINTING_CHARS_RE.sub("", line)


class KenlmModel:
    """A KenLM model with its SentencePiece tokenizer; `get_perplexity` as edugp/kenlm computes it."""

    def __init__(self, model_path: str, sp_model_path: str):
        try:
            import kenlm
            import sentencepiece
        except ImportError:
            raise DclmError("ken_lm_perplexity_enricher needs kenlm and sentencepiece: pip install 'dclm[kenlm]'") from None
        self.model = kenlm.Model(str(resolve_asset(model_path)))
        self.sp = sentencepiece.SentencePieceProcessor()
        self.sp.load(str(resolve_asset(sp_model_path)))

    def get_perplexity(self, doc: str, normalize_cc_net: bool = True) -> float:
        if normalize_cc_net:
            doc = normalize(doc)
        doc = " ".join(self.sp.encode_as_pieces(doc))
        log_score, length = 0.0, 0
        for line in doc.split("\n"):
            log_score += self.model.score(line)
            length += len(line.split()) + 1
        return round(10.0 ** (-log_score / length), 1)


@mapper
@factory_function
def ken_lm_perplexity_enricher(key: str = "kenlm_perplexity", overwrite: bool = False,
                               model_path: str = f"{MODEL_SUBDIRECTORY}/en.arpa.bin",
                               sp_model_path: str = f"{MODEL_SUBDIRECTORY}/en.sp.model") -> Callable:
    """Store the KenLM perplexity of the page text (rounded to 0.1) under `key`."""
    lm = KenlmModel(model_path, sp_model_path)

    def enrich(page: dict) -> list[dict]:
        assert overwrite or key not in page, f"cannot overwrite an existing key {key}"
        page[key] = lm.get_perplexity(page[CONTENT])
        return [page]

    return enrich
