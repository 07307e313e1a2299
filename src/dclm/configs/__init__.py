"""Bundled processing recipes (DCLM's steps, our YAML) and `resolve_config`, which `dclm process --config` uses.

Assets in the recipes are named by file name only (`ldnoobw.txt`, `lid.176.bin`, ...): `dclm.assets` finds
them in the asset cache that `dclm assets fetch` fills, so the recipes run from any working directory.
"""

from __future__ import annotations

import os
from importlib.resources import files
from pathlib import Path



def bundled_configs() -> list[str]:
    """Names of the bundled recipes, without `.yaml`, sorted."""
    return sorted(p.name[:-5] for p in files(__name__).iterdir() if p.name.endswith(".yaml"))


def resolve_config(name_or_path: str | os.PathLike) -> Path:
    """The pipeline YAML for a path, else for a bundled recipe name (with or without `.yaml`), found as every
    asset is (src/dclm/assets/resolve.py `locate`)."""
    from dclm.assets import locate

    text = os.fspath(name_or_path)
    name = text[:-5] if text.endswith(".yaml") else text

    def bundled() -> Path | None:
        return Path(str(files(__name__) / f"{name}.yaml")) if name in bundled_configs() else None

    return locate(text, kind="config", fallbacks=[bundled],
                  hint=f"give a YAML path or a bundled config: {', '.join(bundled_configs())}")
