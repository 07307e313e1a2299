"""Tokenize, mix and shuffle pages into training-ready token shards (DCLM's tokshuf, open_lm's format).

Names are imported on first use, so `import dclm.tokenize.cli` (done to build every `dclm` command's
parser) does not load the pipeline and its dependencies.
"""

from dclm.lazy import lazy_exports

_EXPORTS = {
    "TokenizeResult": "dclm.tokenize.pipeline",
    "tokenize_pages": "dclm.tokenize.pipeline",
    "tokenize_shuffle": "dclm.tokenize.pipeline",
    "TokenShards": "dclm.tokenize.shards",
    "Encoder": "dclm.tokenize.tokenizer",
    "load_encoder": "dclm.tokenize.tokenizer",
}

__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
