"""`dclm classifier select`: keep pages by their sidecar scores, by threshold or by top fraction.

`--threshold T` keeps pages with score >= T, exactly DCLM's `quality_filter`. `--keep-top-fraction F`
keeps round(F * scored pages) pages: the highest scores, ties at the cut broken by input order (shard
path, then line), so the count is exact and the choice deterministic; the report gives the score of
the last kept page as the threshold, plus how many pages shared it. The decision is computed from the
sidecars alone, so re-thresholding never re-scores; pages are read only to write the kept ones.
Pages whose score is null (no text when scored) are never kept and are counted in the report.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import orjson

from dclm.errors import DclmError
from dclm.io import Shard, iter_pages, write_bytes, write_pages
from dclm.io.pages import url_to_fs
from dclm.classifier.model import DEFAULT_KEY
from dclm.classifier.score import MANIFEST, list_inputs, sidecar_rel
from dclm.classifier.config import REPORT, SelectConfig



@dataclass(frozen=True)
class _Item:
    rel: str
    sidecar_url: str
    shard: Shard | None


def _manifest(attributes: str) -> dict | None:
    fs, path = url_to_fs(f"{attributes}/{MANIFEST}")
    if not fs.exists(path):
        return None
    with fs.open(path, "rb") as f:
        return orjson.loads(f.read())


def _items(attributes: str, inputs: list[str] | None, manifest: dict | None) -> list[_Item]:
    if inputs:
        items = []
        for shard in list_inputs(inputs):
            url = f"{attributes}/{sidecar_rel(shard.rel, shard.suffix)}"
            fs, path = url_to_fs(url)
            if not fs.exists(path):
                raise DclmError(f"no scores for {shard.rel}: {url} is missing (run `dclm classifier score` first)")
            items.append(_Item(shard.rel, url, shard))
        return items
    if manifest is None or "shards" not in manifest:
        raise DclmError(f"{attributes} has no complete {MANIFEST}; pass --input so sidecars can be matched to shards")
    return [_Item(s["rel"], f"{attributes}/{s['sidecar']}", None) for s in sorted(manifest["shards"], key=lambda s: s["rel"])]


def _read_scores(url: str, key: str) -> np.ndarray:
    values = []
    for lineno, rec in enumerate(iter_pages(url, text_key=None), 1):
        if key not in rec:
            raise DclmError(f"{url}:{lineno}: no key {key!r} (pass the --key used when scoring)")
        v = rec[key]
        values.append(math.nan if v is None else float(v))
    return np.asarray(values, dtype=np.float64)


def top_fraction_mask(scores: np.ndarray, fraction: float) -> tuple[np.ndarray, float | None]:
    """Keep-mask of the round(fraction * scored) best pages (ties: earlier index first), and the cut score."""
    valid = ~np.isnan(scores)
    n_valid = int(valid.sum())
    k = int(math.floor(fraction * n_valid + 0.5))
    keep = np.zeros(scores.shape, dtype=bool)
    if k == 0:
        return keep, None
    idx = np.flatnonzero(valid)
    order = idx[np.lexsort((idx, -scores[idx]))]
    keep[order[:k]] = True
    return keep, float(scores[order[k - 1]])


def top_fraction_mask_reference(scores: list[float], fraction: float) -> list[bool]:
    """Plain-Python twin of `top_fraction_mask` (None or NaN = unscored)."""
    valid = [i for i, s in enumerate(scores) if s is not None and s == s]
    k = int(math.floor(fraction * len(valid) + 0.5))
    chosen = set(sorted(valid, key=lambda i: (-scores[i], i))[:k])
    return [i in chosen for i in range(len(scores))]


def histogram(scores: np.ndarray, bins: int) -> list[dict]:
    """Counts in `bins` equal bins over [0, 1]; fastText's slightly out-of-range values land in the end bins."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    counts, _ = np.histogram(np.clip(scores, 0.0, 1.0), bins=edges)
    return [{"lo": float(edges[i]), "hi": float(edges[i + 1]), "count": int(counts[i])} for i in range(bins)]


def _write_kept(job: tuple) -> tuple[str, int]:
    item, keep_idx, out_url, key, add_score = job
    records = list(iter_pages(item.sidecar_url, text_key=None))
    pages = list(iter_pages(item.shard.url, text_key=None, on_reject=lambda *a: None))
    if len(pages) != len(records):
        raise DclmError(f"{item.rel}: {len(pages)} pages but its sidecar has {len(records)} records; the shard "
                        f"changed after scoring (rescore it)")
    kept = []
    for i in keep_idx:
        page, rec = pages[i], records[i]
        for field in ("id", "url"):
            if field in rec and page.get(field) != rec[field]:
                raise DclmError(f"{item.rel}: page {i + 1} has {field} {page.get(field)!r} but its sidecar has "
                                f"{rec[field]!r}; the shard changed after scoring (rescore it)")
        if add_score:
            page[key] = rec[key]
        kept.append(page)
    write_pages(out_url, kept)
    return item.rel, len(kept)


@dataclass
class SelectResult:
    """The decision's main numbers and the full report (the JSON written as `_select_report.json`)."""

    pages: int
    scored_pages: int
    unscored_pages: int
    kept_pages: int
    threshold: float | None
    output: str | None
    report: dict


def select_pages(config: SelectConfig) -> SelectResult:
    """Decide from the sidecars which pages to keep, write them under `config.output` (if given), return the
    result (its report is also written as JSON)."""
    threshold, keep_top_fraction, output, bins = config.threshold, config.keep_top_fraction, config.output, config.bins
    inputs = list(config.inputs) or None
    attributes = config.attributes
    attributes = attributes.rstrip("/")
    manifest = _manifest(attributes)
    key = config.key or (manifest or {}).get("key") or DEFAULT_KEY
    items = _items(attributes, inputs, manifest)
    if not items:
        raise DclmError(f"no sidecars found under {attributes}")

    per_shard = [_read_scores(it.sidecar_url, key) for it in items]
    scores = np.concatenate(per_shard) if per_shard else np.zeros(0)
    valid = ~np.isnan(scores)
    ties = None
    if keep_top_fraction is not None:
        keep, cut = top_fraction_mask(scores, keep_top_fraction)
        if cut is not None:
            ties = {"pages_at_threshold": int((scores == cut).sum()), "kept_at_threshold": int((keep & (scores == cut)).sum()),
                    "tie_break": "input order (shard path, then line)"}
        mode = {"mode": "keep_top_fraction", "keep_top_fraction": keep_top_fraction, "threshold": cut}
    else:
        keep = valid & (scores >= threshold)
        mode = {"mode": "threshold", "threshold": threshold}
    scored = scores[valid]
    quantiles = {f"p{q}": float(np.quantile(scored, q / 100, method="nearest")) for q in (1, 5, 10, 25, 50, 75, 90, 95, 99)} if scored.size else {}

    bounds = np.cumsum([0] + [len(s) for s in per_shard])
    shard_rows = []
    for j, it in enumerate(items):
        m = keep[bounds[j]:bounds[j + 1]]
        shard_rows.append({"rel": it.rel, "pages": int(m.size), "kept": int(m.sum())})

    result = {
        "attributes": attributes,
        "key": key,
        "model_sha256": (manifest or {}).get("model_sha256"),
        **mode,
        "ties": ties,
        "pages": int(scores.size),
        "scored_pages": int(valid.sum()),
        "unscored_pages": int((~valid).sum()),
        "kept_pages": int(keep.sum()),
        "kept_fraction_of_scored": float(keep.sum() / valid.sum()) if valid.any() else None,
        "score_min": float(scored.min()) if scored.size else None,
        "score_max": float(scored.max()) if scored.size else None,
        "score_mean": float(scored.mean()) if scored.size else None,
        "quantiles": quantiles,
        "histogram": histogram(scored, bins),
        "histogram_kept": histogram(scores[keep], bins),
        "shards": shard_rows,
        "output": output,
    }

    if output:
        output = output.rstrip("/")
        jobs = [(it, np.flatnonzero(keep[bounds[j]:bounds[j + 1]]).tolist(), f"{output}/{it.shard.rel}", key,
                 config.add_score) for j, it in enumerate(items)]
        config.run(_write_kept, jobs, desc="select")
    report = config.report or (f"{output}/{REPORT}" if output else None)
    if report:
        write_bytes(report, orjson.dumps(result, option=orjson.OPT_INDENT_2) + b"\n")
    return SelectResult(pages=result["pages"], scored_pages=result["scored_pages"], unscored_pages=result["unscored_pages"],
                        kept_pages=result["kept_pages"], threshold=result["threshold"], output=result["output"], report=result)
