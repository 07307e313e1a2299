"""Tokenize, mix and shuffle pages into training-ready token shards (DCLM's tokshuf, open_lm's format).

Names are imported on first use, so `import dclm.tokenize.cli` (done to build every `dclm` command's
parser) does not load the run and its dependencies.
"""

from dclm.lazy import lazy_exports

_EXPORTS = {
    "TokenizeConfig": "dclm.tokenize.config",
    "TokenizeResult": "dclm.tokenize.config",
    "run_tokenize_shuffle": "dclm.tokenize.run",
    "tokenize_pages": "dclm.tokenize.run",
    "tokenize_shuffle": "dclm.tokenize.run",
    "TokenShards": "dclm.tokenize.shards",
    "Encoder": "dclm.tokenize.tokenizer",
    "load_encoder": "dclm.tokenize.tokenizer",
    "load_hf_tokenizer": "dclm.tokenize.tokenizer",
}

__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
