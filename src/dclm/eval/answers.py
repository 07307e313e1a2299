"""Generation-task answers as llm-foundry 0.9.0 judges them (llmfoundry/eval/metrics/nlp.py,
InContextLearningGenerationExactMatchAccuracy): decode, cut at the first stop string, keep what follows
the last chain-of-thought delimiter, normalise, and match the start against every normalised answer.
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence

_PUNCT = set(string.punctuation + "\u2018\u2019\u00b4`")
_ARTICLES = re.compile(r"\b(a|an|the)\b")
# transformers' clean_up_tokenization, on by default for the GPT-NeoX tokenizer of llm-foundry's era
_CLEANUPS = ((" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"),
             (" 'm", "'m"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re"))


def clean_up_spaces(text: str) -> str:
    for a, b in _CLEANUPS:
        text = text.replace(a, b)
    return text


def decode_generated(tokenizer, ids: Sequence[int]) -> str:
    """Text of generated ids with special tokens skipped and transformers' default space clean-up."""
    raw = getattr(tokenizer, "_tok", None)  # our Tokenizer wraps a `tokenizers.Tokenizer`
    text = raw.decode(list(ids), skip_special_tokens=True) if raw is not None else tokenizer.decode(list(ids))
    return clean_up_spaces(text)


def normalize_answer(text: str) -> str:
    text = text.replace("_", " ").lower()
    text = "".join(" " if ch in _PUNCT else ch for ch in text)
    return " ".join(_ARTICLES.sub(" ", text).split()).strip()


def final_answer(output: str, stop: Sequence[str], cot_delimiter: str) -> str:
    if stop:
        # llm-foundry joins the stop strings into a regex unescaped; DCLM's ("\n\n", "Q:") hold no metacharacters
        output = re.split("|".join(stop), output)[0]
    if cot_delimiter:
        output = output.split(cot_delimiter)[-1]
    return output


def is_correct(cleaned_output: str, answers: Sequence[str]) -> bool:
    return any(cleaned_output.startswith(normalize_answer(a)) for a in answers)
