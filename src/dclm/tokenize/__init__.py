"""Tokenize, mix and shuffle pages into training-ready token shards (DCLM's tokshuf, open_lm's format)."""

from dclm.tokenize.pipeline import TokenizeResult, tokenize_pages, tokenize_shuffle
from dclm.tokenize.shards import TokenShards
from dclm.tokenize.tokenizer import Encoder, load_encoder

__all__ = ["Encoder", "TokenShards", "TokenizeResult", "load_encoder", "tokenize_pages", "tokenize_shuffle"]
