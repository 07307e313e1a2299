"""The tokenizer for generation: the model directory's tokenizer.json, an explicit file, or GPT-NeoX-20B."""

from __future__ import annotations

from pathlib import Path

from dclm.errors import DclmError

DEFAULT_TOKENIZER = "EleutherAI/gpt-neox-20b"


class Tokenizer:
    """encode(str) -> ids without BOS (as DCLM's card uses it), decode(ids) -> str."""

    def __init__(self, tok):
        self._tok = tok

    def encode(self, text: str) -> list[int]:
        return self._tok.encode(text, add_special_tokens=False).ids

    def decode(self, ids) -> str:
        return self._tok.decode(list(ids), skip_special_tokens=False)


def load_tokenizer(model_dir: str | Path | None = None, path: str | None = None) -> Tokenizer:
    """`path` (a tokenizer.json, a directory holding one, or a hub name), else MODEL_DIR/tokenizer.json,
    else GPT-NeoX-20B from the Hugging Face hub."""
    from tokenizers import Tokenizer as HFTokenizer

    candidates = [path] if path else []
    if model_dir is not None and not path:
        candidates.append(str(Path(model_dir) / "tokenizer.json"))
    for c in candidates:
        p = Path(c)
        if p.is_dir():
            p = p / "tokenizer.json"
        if p.is_file():
            try:
                return Tokenizer(HFTokenizer.from_file(str(p)))
            except Exception as e:  # tokenizers raises a bare Exception on bad JSON
                raise DclmError(f"{p}: not a tokenizers JSON file ({str(e).splitlines()[0]})") from None
    name = path if path and not Path(path).exists() else DEFAULT_TOKENIZER
    try:
        return Tokenizer(HFTokenizer.from_pretrained(name))
    except Exception as e:
        raise DclmError(f"cannot load tokenizer {name!r} from the hub ({str(e).splitlines()[0]}); pass --tokenizer PATH/tokenizer.json") from None
