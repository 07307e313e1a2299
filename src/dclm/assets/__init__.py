"""Third-party assets (banlists, TLD list, fastText and KenLM models, tokenizers): found by path or in the
asset cache, never bundled. `resolve` finds them; `fetch` downloads them (`dclm assets fetch`)."""

from dclm.assets.resolve import (
    LID_ENV,
    assets_dir,
    find_asset,
    lid_model_path,
    locate,
    read_from_wheel,
    resolve_asset,
    write_cached,
)

__all__ = ["LID_ENV", "assets_dir", "find_asset", "lid_model_path", "locate", "read_from_wheel", "resolve_asset", "write_cached"]
