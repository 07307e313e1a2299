"""`dclm assets fetch|list`: download DCLM's public assets (banlists, TLD list, fastText models) into the cache.

Nothing third-party is bundled with dclm: the YAMLs name these files by path, and `dclm.assets.resolve_asset`
finds them by basename in the cache this module fills (`dclm.assets.assets_dir()`). Each file is downloaded to
a temporary name and renamed when complete, and its sha256 and source are recorded in `manifest.json` beside it.

`base_url` fetches from a mirror instead of the original hosts: the mirror lays files out as DCLM's
`baselines/mappers/` directory does (`banlists/ldnoobw.txt`, `iana_tlds.txt`,
`enrichers/language_id_enrichment_models/lid.176.bin`, ...), or flat by file name.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import orjson

from dclm.errors import DclmError

_DCLM_RAW = "https://raw.githubusercontent.com/mlfoundations/dclm/main/baselines/mappers"
_HF = "https://huggingface.co"
MANIFEST = "manifest.json"
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Asset:
    name: str  # file name in the cache, as DCLM's YAMLs and mappers name it
    url: str  # the public original
    mirror_path: str  # where a mirror of DCLM's baselines/mappers/ holds it
    about: str
    default: bool = True  # fetched when no names are given


def _banlist(name: str, about: str) -> Asset:
    return Asset(name, f"{_DCLM_RAW}/banlists/{name}", f"banlists/{name}", about)


ASSETS: tuple[Asset, ...] = (
    Asset("refinedweb_banned_domains_curated.txt",
          f"{_HF}/datasets/mlfoundations/refinedweb_banned_domains_curated/resolve/main/refinedweb_banned_domains_curated.txt",
          "banlists/refinedweb_banned_domains_curated.txt",
          "RefinedWeb URL domain banlist, curated (exact-domain url_substring_filter)"),
    _banlist("refinedweb_banned_words_strict_reverse_engineered.txt", "URL words, substring match after removing '-' and '.'"),
    _banlist("refinedweb_banned_words_hard_reverse_engineered.txt", "URL words, word-boundary match, one hit drops"),
    _banlist("refinedweb_banned_words_soft_reverse_engineered.txt", "URL words, word-boundary match, two distinct hits drop"),
    _banlist("ldnoobw.txt", "List of Dirty, Naughty, Obscene and Otherwise Bad Words (C4 page filter)"),
    Asset("iana_tlds.txt", f"{_DCLM_RAW}/iana_tlds.txt", "iana_tlds.txt", "IANA top-level domains (url_removal_modifier)"),
    Asset("lid.176.bin", "https://dl.fbaipublicfiles.com/fasttext/supervised-models/lid.176.bin",
          "enrichers/language_id_enrichment_models/lid.176.bin", "fastText language ID, 176 languages (126 MB)"),
    Asset("fasttext_oh_eli5.bin",
          f"{_HF}/mlfoundations/fasttext-oh-eli5/resolve/main/openhermes_reddit_eli5_vs_rw_v2_bigram_200k_train.bin",
          "enrichers/quality_prediction_enrichment_models/fasttext_oh_eli5.bin",
          "DCLM-Baseline fastText quality classifier, OH-2.5 + ELI5 vs RW (fasttext_filter.yaml)"),
    Asset("en.arpa.bin", f"{_HF}/edugp/kenlm/resolve/main/wikipedia/en.arpa.bin",
          "enrichers/quality_prediction_enrichment_models/en.arpa.bin",
          "KenLM English Wikipedia model for the perplexity enricher (several GB; fetched only by name)", default=False),
    Asset("en.sp.model", f"{_HF}/edugp/kenlm/resolve/main/wikipedia/en.sp.model",
          "enrichers/quality_prediction_enrichment_models/en.sp.model",
          "SentencePiece model paired with en.arpa.bin (fetched only by name)", default=False),
)
_BY_NAME = {a.name: a for a in ASSETS}


@dataclass
class FetchResult:
    name: str
    status: str  # 'fetched' | 'present' | 'failed'
    path: Path
    source: str | None = None
    sha256: str | None = None
    bytes: int = 0
    error: str | None = None


def select(names: list[str] | None) -> list[Asset]:
    """The named assets (all default ones when `names` is empty); an unknown name is a DclmError."""
    if not names:
        return [a for a in ASSETS if a.default]
    unknown = [n for n in names if n not in _BY_NAME]
    if unknown:
        raise DclmError(f"unknown asset(s) {', '.join(unknown)}; known: {', '.join(_BY_NAME)}")
    return [_BY_NAME[n] for n in dict.fromkeys(names)]


def _dest(dest: str | os.PathLike | None) -> Path:
    if dest is not None:
        return Path(dest).expanduser()
    from dclm.assets import assets_dir

    return assets_dir()


def _as_url(base: str) -> str:
    """A base URL, or a local directory given as a plain path."""
    if "://" in base:
        return base.rstrip("/")
    return Path(base).expanduser().resolve().as_uri()


def read_manifest(dest: Path) -> dict:
    try:
        return orjson.loads((dest / MANIFEST).read_bytes())
    except FileNotFoundError:
        return {}
    except orjson.JSONDecodeError as e:
        raise DclmError(f"{dest / MANIFEST} is not valid JSON ({e}); delete it and fetch again") from None


def _write_manifest(dest: Path, manifest: dict) -> None:
    tmp = dest / f".{MANIFEST}.{os.getpid()}.tmp"
    tmp.write_bytes(orjson.dumps(dict(sorted(manifest.items())), option=orjson.OPT_INDENT_2) + b"\n")
    os.replace(tmp, dest / MANIFEST)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _download(url: str, target: Path, progress: bool, timeout: float) -> tuple[str, int]:
    """Stream `url` into `target` atomically; returns (sha256, bytes)."""
    part = target.with_name(f".{target.name}.{os.getpid()}.part")
    h = hashlib.sha256()
    size = 0
    bar = None
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp, open(part, "wb") as out:
            total = resp.headers.get("Content-Length")
            if progress:
                from tqdm import tqdm

                bar = tqdm(total=int(total) if total and total.isdigit() else None, unit="B", unit_scale=True,
                           unit_divisor=1024, desc=target.name, leave=False)
            while chunk := resp.read(_CHUNK):
                out.write(chunk)
                h.update(chunk)
                size += len(chunk)
                if bar is not None:
                    bar.update(len(chunk))
            out.flush()
            os.fsync(out.fileno())
        os.replace(part, target)
    finally:
        if bar is not None:
            bar.close()
        with contextlib.suppress(FileNotFoundError):
            part.unlink()
    return h.hexdigest(), size


def _candidates(asset: Asset, base_url: str | None) -> list[str]:
    if base_url is None:
        return [asset.url]
    base = _as_url(base_url)
    return [f"{base}/{asset.mirror_path}"] + ([f"{base}/{asset.name}"] if asset.mirror_path != asset.name else [])


def fetch_assets(names: list[str] | None = None, dest: str | os.PathLike | None = None, base_url: str | None = None,
                 force: bool = False, progress: bool = False, timeout: float = 60.0) -> list[FetchResult]:
    """Download the named assets (default: all default ones) into `dest` (default: the asset cache).

    A file already present is kept unless `force`. A failed download leaves no partial file and does not stop
    the others; see each result's `status` and `error`."""
    assets = select(names)
    dest = _dest(dest)
    dest.mkdir(parents=True, exist_ok=True)
    manifest = read_manifest(dest)
    results = []
    for asset in assets:
        target = dest / asset.name
        if target.is_file() and not force:
            entry = manifest.get(asset.name)
            if entry is None or entry.get("bytes") != target.stat().st_size:
                entry = {"sha256": sha256_file(target), "bytes": target.stat().st_size, "source": None}
                manifest[asset.name] = entry
            results.append(FetchResult(asset.name, "present", target, entry.get("source"), entry["sha256"], entry["bytes"]))
            continue
        errors = []
        for url in _candidates(asset, base_url):
            try:
                digest, size = _download(url, target, progress, timeout)
            except (urllib.error.URLError, OSError, ValueError) as e:
                errors.append(f"{url}: {getattr(e, 'reason', None) or e}")
                continue
            manifest[asset.name] = {"sha256": digest, "bytes": size, "source": url,
                                    "fetched": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
            results.append(FetchResult(asset.name, "fetched", target, url, digest, size))
            break
        else:
            results.append(FetchResult(asset.name, "failed", target, error="; ".join(errors)))
        _write_manifest(dest, manifest)
    _write_manifest(dest, manifest)
    return results


def list_assets(dest: str | os.PathLike | None = None) -> list[dict]:
    """Every known asset with whether it is present in `dest` (default: the asset cache) and its manifest entry."""
    dest = _dest(dest)
    manifest = read_manifest(dest) if dest.is_dir() else {}
    rows = []
    for a in ASSETS:
        path = dest / a.name
        present = path.is_file()
        entry = manifest.get(a.name, {})
        rows.append({"name": a.name, "present": present, "bytes": path.stat().st_size if present else None,
                     "sha256": entry.get("sha256") if present else None, "source": entry.get("source"),
                     "default": a.default, "path": str(path), "about": a.about})
    return rows
