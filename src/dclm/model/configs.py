"""Named open_lm model shapes: the four DCLM trains (training/open_lm_configs) and small ones for tests/demo."""

from __future__ import annotations

from dclm.errors import DclmError
from dclm.model.openlm import ModelArgs

CONFIGS: dict[str, ModelArgs] = {
    # DCLM scales; aliases are the open_lm JSON file names
    "411m": ModelArgs(dim=1024, n_layers=24, n_heads=8),
    "1b": ModelArgs(dim=2048, n_layers=24, n_heads=16),
    "3b": ModelArgs(dim=2560, n_layers=32, n_heads=32),
    "7b": ModelArgs(dim=4096, n_layers=32, n_heads=32),
    # small shapes (GPT-NeoX vocabulary) for the demo, CPU training and benchmarks; `dclm train` sizes the
    # vocabulary of smoke and 10m to the data's tokenizer
    "smoke": ModelArgs(dim=128, n_layers=2, n_heads=4, seq_len=256),
    "10m": ModelArgs(dim=384, n_layers=6, n_heads=6, seq_len=512),
    "100m": ModelArgs(dim=512, n_layers=12, n_heads=8),
    "20m": ModelArgs(dim=256, n_layers=4, n_heads=4),
    # test-sized: tiny vocabulary, seconds on a CPU
    "tiny": ModelArgs(dim=64, n_layers=2, n_heads=4, vocab_size=512, seq_len=256),
}
ALIASES = {
    "d=1024_l=24_h=8": "411m",
    "open_lm_411m": "411m",
    "open_lm_1b": "1b",
    "open_lm_1b_swiglutorch": "1b",
    "open_lm_3b": "3b",
    "open_lm_3b_swiglutorch": "3b",
    "open_lm_7b": "7b",
    "open_lm_7b_swiglutorch": "7b",
}


def get_config(name: str, **overrides) -> ModelArgs:
    """A named shape, optionally with fields replaced (e.g. `get_config("tiny", vocab_size=300)`)."""
    key = ALIASES.get(name, name)
    if key not in CONFIGS:
        raise DclmError(f"unknown model config {name!r}; known: {', '.join(sorted(CONFIGS) + sorted(ALIASES))}")
    return ModelArgs(**{**CONFIGS[key].to_dict(), **overrides})
