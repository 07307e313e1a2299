"""A byte-level BPE tokenizer.json (GPT-NeoX-20B's, or one shaped like it) as a GGUF `gpt2` vocabulary.

llama.cpp's `gpt2` tokenizer model is byte-level BPE over the GPT-2 byte-to-unicode alphabet, which is how
tokenizer.json stores the vocab and merges, so tokens and merges are copied as they are. The pre-tokenizer
`olmo` (OLMo ships GPT-NeoX-20B's tokenizer) splits with GPT-2's regex, the split tokenizers' ByteLevel
pre-tokenizer makes. Added tokens keep their ids: special ones become CONTROL (llama.cpp matches their text
only when told to parse specials, `special=True` in llama-cpp-python; HF's encode always matches it), the
others USER_DEFINED, which llama.cpp always splits out of the text before BPE, as HF's added-vocabulary pass
does (NeoX's whitespace-run tokens 50254-50276). Ids the tokenizer does not use, up to the model's padded
vocabulary (50277 -> 50432 for DCLM), become UNUSED `[PAD{id}]` entries, as llama.cpp's converter writes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from dclm.errors import DclmError

PRE_TOKENIZER = "olmo"
TOKEN_NORMAL, TOKEN_CONTROL, TOKEN_USER_DEFINED, TOKEN_UNUSED = 1, 3, 4, 5
EOT = "<|endoftext|>"
PAD = "<|padding|>"


@dataclass(frozen=True)
class GGUFVocab:
    tokens: list[str]
    types: list[int]
    merges: list[str]
    eot_id: int | None
    pad_id: int | None


def _byte_level(component: dict | None) -> bool:
    if not component:
        return False
    if component.get("type") == "ByteLevel":
        return True
    return component.get("type") == "Sequence" and any(_byte_level(c) for c in component.get("pretokenizers", []))


def gguf_vocab(json_text: str, vocab_size: int, source: str) -> GGUFVocab:
    """The GGUF vocabulary of a tokenizer JSON, padded to `vocab_size` ids; refuses what `gpt2` cannot run."""
    data = json.loads(json_text)
    model = data.get("model") or {}
    if model.get("type") != "BPE" or not _byte_level(data.get("pre_tokenizer")):
        raise DclmError(f"{source}: not a byte-level BPE tokenizer (llama.cpp's gpt2 vocabulary needs one)")
    pre = data["pre_tokenizer"]
    byte_level = pre if pre.get("type") == "ByteLevel" else next(p for p in pre["pretokenizers"] if p.get("type") == "ByteLevel")
    if byte_level.get("add_prefix_space") or byte_level.get("use_regex") is False:
        raise DclmError(f"{source}: ByteLevel pre-tokenizer with add_prefix_space or without GPT-2's regex "
                        "(llama.cpp's 'olmo' pre-tokenizer has neither)")
    normalizer = (data.get("normalizer") or {}).get("type")
    if normalizer not in (None, "NFC"):
        raise DclmError(f"{source}: normalizer {normalizer!r} is not supported (llama.cpp applies none)")
    by_id: dict[int, tuple[str, int]] = {i: (tok, TOKEN_NORMAL) for tok, i in model["vocab"].items()}
    for t in data.get("added_tokens") or []:
        by_id[t["id"]] = (t["content"], TOKEN_CONTROL if t.get("special") else TOKEN_USER_DEFINED)
    if by_id and max(by_id) >= vocab_size:
        raise DclmError(f"{source}: token id {max(by_id)} does not fit the model's vocab_size {vocab_size}")
    tokens, types = [], []
    for i in range(vocab_size):
        tok, kind = by_id.get(i, (f"[PAD{i}]", TOKEN_UNUSED))
        tokens.append(tok)
        types.append(kind)
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]
    ids = {tok: i for i, (tok, _) in by_id.items()}
    return GGUFVocab(tokens, types, merges, ids.get(EOT), ids.get(PAD))
