"""The open_lm Transformer DCLM trains, its named shapes and its checkpoint formats (torch needed).

Names are imported on first use, so building the `dclm` parser does not load torch.
"""

from dclm.lazy import lazy_exports

_EXPORTS = {
    "load_model": "dclm.model.checkpoint",
    "save_model": "dclm.model.checkpoint",
    "CONFIGS": "dclm.model.configs",
    "get_config": "dclm.model.configs",
    "ModelArgs": "dclm.model.openlm",
    "Transformer": "dclm.model.openlm",
}

__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
