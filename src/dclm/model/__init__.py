"""The open_lm Transformer DCLM trains, its named shapes and its checkpoint formats (torch needed)."""

from dclm.model.checkpoint import load_model, save_model
from dclm.model.configs import CONFIGS, get_config
from dclm.model.openlm import ModelArgs, Transformer

__all__ = ["CONFIGS", "ModelArgs", "Transformer", "get_config", "load_model", "save_model"]
