"""Exact deduplication over a whole dataset: DCLM's `exact_dedup` global step (DCLM's `ray_processing/dedup_jsonl.py`).

Every *content unit* is hashed with MD5 of `str(normalize(unit))` (or of the raw unit). A string under
`content_key` is one unit; a list under it (e.g. after `split_lines_modifier`) gives one unit per element,
so lines are deduplicated across the whole dataset. Among units with the same hash one is kept:

* without `selection_key`: the first, i.e. the lowest (shard index, page index, unit index);
* with `selection_key`: the unit whose page has the smallest normalised `page[selection_key]`
  (the largest with `selection_reverse`); ties go to the first.

A page that loses all its units is removed; a page that loses some keeps the others in order.

Differences from DCLM's Ray implementation (`ray_processing/dedup_jsonl.py`), all deliberate:

* "First" is defined (lowest position) instead of whatever order Ray's groupby yields, so results are
  reproducible.
* An unknown normaliser name is an error; DCLM silently falls back to no normalisation.
* A page keeps its content type: a string stays a string and a list stays a list. DCLM converts every
  page of a file that had removals to lists and then collapses them back to strings only if every page
  of that file has exactly one unit left, so types depend on the neighbours.
* A page lacking `content_key` (dotted paths such as `metadata.WARC-Target-URI` are followed when the
  flat key is absent) is kept untouched and counted under `pages_missing_key`; DCLM raises KeyError.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Callable, Literal

from dclm.errors import DclmError
from dclm.runtime.config import arg, as_tuples
from dclm.runtime.jobs import Execution
from dclm.runtime.rejects import RejectLog

if TYPE_CHECKING:
    from dclm.io.pages import Shard

_URL_SCHEME = re.compile(r"https?://(www\.)?")
_URL_TRACKING = re.compile(r"\?(utm_|ref|feed).*")


def normalize_url(url: str) -> str:
    """C4's URL key: drop `http(s)://` and a leading `www.`, a `?utm_…`/`?ref…`/`?feed…` tail, trailing `/`."""
    url = _URL_SCHEME.sub("", url)
    url = _URL_TRACKING.sub("", url)
    return url.rstrip("/")


def normalize_whitespace_and_lowercase(text: str) -> str:
    """Strip leading/trailing whitespace and lowercase."""
    return text.strip().lower()


def hash_text(text: str) -> str:
    """MD5 hex digest of the UTF-8 text."""
    return hashlib.md5(text.encode("utf-8")).hexdigest()


def normalize_timestamps(timestamp: str, date_format: str = "%Y-%m-%dT%H:%M:%SZ", default_val: float = -1.0) -> float:
    """Seconds since the epoch for a `2019-04-18T12:00:00Z` style timestamp; `default_val` when it does not parse."""
    try:
        return datetime.strptime(timestamp, date_format).timestamp()
    except (TypeError, ValueError):
        return default_val


# CCNet's punctuation set (full-width and typographic marks) plus C0/C1 control characters: all deleted.
_CCNET_PUNCT = "，。、„”“«»１」「《》´∶：？！（）；–—．～’…━〈〉【】％►"
_CCNET_DELETE = {ord(c): None for c in _CCNET_PUNCT}
_CCNET_DELETE.update({i: None for i in (*range(0, 32), *range(127, 160))})
_DIGIT = re.compile(r"\d")


def ccnet_dedup_normalizer(line: str) -> str:
    """CCNet's line key: strip, lowercase, every digit to 0, drop punctuation/control characters, unidecode."""
    from unidecode import unidecode

    line = line.strip()
    if not line:
        return line
    line = _DIGIT.sub("0", line.lower())
    return unidecode(line.translate(_CCNET_DELETE))


NORMALIZERS: dict[str, Callable[[Any], Any]] = {
    "normalize_url": normalize_url,
    "normalize_timestamps": normalize_timestamps,
    "normalize_whitespace_and_lowercase": normalize_whitespace_and_lowercase,
    "hash_text": hash_text,
    "ccnet_dedup_normalizer": ccnet_dedup_normalizer,
}

_MISSING = object()


def resolve_normalizer(normalize: str | Callable | None, what: str = "normalize") -> Callable | None:
    """A normaliser from its DCLM name (or a callable, or None); an unknown name is a one-line error."""
    if normalize is None or callable(normalize):
        return normalize
    if normalize not in NORMALIZERS:
        raise DclmError(f"exact_dedup: unknown {what} {normalize!r} (choose from {', '.join(sorted(NORMALIZERS))})")
    return NORMALIZERS[normalize]


def get_field(page: dict, key: str) -> Any:
    """`page[key]`, or the nested value for a dotted key such as `metadata.WARC-Target-URI`; `_MISSING` if absent."""
    if key in page:
        return page[key]
    node: Any = page
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    return node


def _set_field(page: dict, key: str, value: Any) -> None:
    if key in page:
        page[key] = value
        return
    *parents, last = key.split(".")
    node = page
    for part in parents:
        node = node[part]
    node[last] = value


class ExactDeduper:
    """Two-pass exact dedup: `observe` (or `digest_page` + `record`) every page in dataset order, then
    `apply` each page with its shard's `winners()`.

    Memory is one 16-byte digest plus one position per distinct unit; pages are streamed from disk twice
    instead of held in memory.
    """

    def __init__(self, content_key: str = "text", normalize: str | Callable | None = None,
                 selection_key: str | None = None, selection_normalize: str | Callable | None = None,
                 selection_reverse: bool = False):
        self.content_key = content_key
        self.normalize = resolve_normalizer(normalize)
        self.selection_key = selection_key
        self.selection_normalize = resolve_normalizer(selection_normalize, "selection_normalize")
        self.selection_reverse = selection_reverse
        # digest -> (selection value or None, position); position = (shard, page, unit)
        self._best: dict[bytes, tuple[Any, tuple[int, int, int]]] = {}
        self.counts = {"pages_in": 0, "units_in": 0, "pages_missing_key": 0}

    def _units(self, page: dict) -> list | None:
        value = get_field(page, self.content_key)
        if value is _MISSING:
            return None
        return value if isinstance(value, list) else [value]

    def _digest(self, unit: Any) -> bytes:
        if self.normalize is not None:
            unit = str(self.normalize(unit))
        elif not isinstance(unit, str):
            unit = str(unit)
        return hashlib.md5(unit.encode("utf-8", "surrogatepass")).digest()

    def _selection(self, page: dict, where: tuple[int, int]) -> Any:
        value = get_field(page, self.selection_key)
        if value is _MISSING:
            raise DclmError(f"exact_dedup: shard {where[0]} page {where[1]} has no selection_key {self.selection_key!r}")
        return self.selection_normalize(value) if self.selection_normalize is not None else value

    def digest_page(self, page: dict, where: tuple[int, int]) -> tuple[list[bytes] | None, Any]:
        """(digest of every unit, selection value) of one page; (None, None) when it lacks the key. Pure, so
        the first pass can run in worker processes while `record` merges in dataset order in the driver."""
        units = self._units(page)
        if units is None:
            return None, None
        sel = self._selection(page, where) if self.selection_key is not None else None
        return [self._digest(unit) for unit in units], sel

    def record(self, shard: int, index: int, digests: list[bytes] | None, sel: Any) -> None:
        """First pass: merge page `index` of shard `shard`, as `digest_page` described it."""
        self.counts["pages_in"] += 1
        if digests is None:
            self.counts["pages_missing_key"] += 1
            return
        best = self._best
        for u, h in enumerate(digests):
            self.counts["units_in"] += 1
            old = best.get(h)
            if old is None:
                best[h] = (sel, (shard, index, u))
            elif self.selection_key is not None and self._better(sel, old[0]):
                best[h] = (sel, (shard, index, u))

    def observe(self, shard: int, index: int, page: dict) -> None:
        """First pass over in-memory pages: `digest_page` then `record`."""
        self.record(shard, index, *self.digest_page(page, (shard, index)))

    def winners(self) -> dict[int, set[tuple[int, int]]]:
        """After the first pass: per shard, the (page, unit) positions whose unit is the kept copy."""
        out: dict[int, set[tuple[int, int]]] = {}
        for _, (shard, page, unit) in self._best.values():
            out.setdefault(shard, set()).add((page, unit))
        return out

    def _better(self, new: Any, old: Any) -> bool:
        """Whether selection value `new` beats `old`; None (e.g. a null field) loses to any value."""
        if new is None or old is None:
            return old is None and new is not None
        try:
            return new > old if self.selection_reverse else new < old
        except TypeError:
            raise DclmError(f"exact_dedup: cannot compare selection values {new!r} and {old!r} "
                            f"(selection_key {self.selection_key!r}; use selection_normalize)") from None

    def apply(self, index: int, page: dict, winners: set[tuple[int, int]]) -> tuple[dict | None, int]:
        """Second pass: (the page with its duplicate units removed, or None if none is left; units removed),
        `winners` being this page's shard's entry of `winners()`.

        The page is edited in place when some but not all of its units go.
        """
        units = self._units(page)
        if units is None:
            return page, 0
        keep = [unit for u, unit in enumerate(units) if (index, u) in winners]
        removed = len(units) - len(keep)
        if removed == 0:
            return page, 0
        if not keep:
            return None, removed
        _set_field(page, self.content_key, keep)
        return page, removed

    @property
    def unique_units(self) -> int:
        return len(self._best)


def exact_dedup_pages(pages_by_shard: list[list[dict]], content_key: str = "text", normalize: str | Callable | None = None,
                      selection_key: str | None = None, selection_normalize: str | Callable | None = None,
                      selection_reverse: bool = False) -> tuple[list[list[dict]], dict]:
    """DCLM's `exact_dedup` global step over in-memory shards; returns (pages per shard, stats).

    Pages are edited in place where units are removed. Deterministic: the kept copy of a duplicate is
    the first by (shard index, page index, unit index) unless `selection_key` decides.
    """
    dd = ExactDeduper(content_key, normalize, selection_key, selection_normalize, selection_reverse)
    for s, pages in enumerate(pages_by_shard):
        for i, page in enumerate(pages):
            dd.observe(s, i, page)
    out: list[list[dict]] = []
    modified = 0
    winners = dd.winners()
    for s, pages in enumerate(pages_by_shard):
        kept = []
        shard_winners = winners.get(s, set())
        for i, page in enumerate(pages):
            new, removed = dd.apply(i, page, shard_winners)
            if new is not None:
                kept.append(new)
                modified += removed > 0
        out.append(kept)
    return out, _stats(dd, sum(len(p) for p in out), modified)


def _stats(dd: ExactDeduper, pages_out: int, modified: int) -> dict:
    units_out = dd.unique_units
    return {
        "pages_in": dd.counts["pages_in"],
        "pages_out": pages_out,
        "pages_removed": dd.counts["pages_in"] - pages_out,
        "pages_modified": modified,
        "units_in": dd.counts["units_in"],
        "units_out": units_out,
        "units_removed": dd.counts["units_in"] - units_out,
        "pages_missing_key": dd.counts["pages_missing_key"],
    }


@dataclass(frozen=True, kw_only=True)
class ExactDedupConfig(Execution):
    """`dclm dedup exact`: what is deduplicated across every shard under `inputs`, and which copy is kept."""

    inputs: tuple[str, ...] = arg(metavar="PATH", help="input shard files or directories")
    output_directory: str = arg(metavar="DIR", help="where deduplicated shards go (input-relative paths)")
    content_key: str = arg("text", flag="--key", help="field to deduplicate: text, url, or a dotted path such as "
                           "metadata.WARC-Target-URI")
    normalize: Literal[tuple(NORMALIZERS)] | None = arg(None, help="normaliser applied before hashing (none; use "
                                                        "normalize_url for URLs)")
    selection_key: str | None = arg(None, help="keep the copy whose page has the min of this field instead of the "
                                    "first")
    selection_normalize: Literal[tuple(NORMALIZERS)] | None = arg(None, help="normaliser for selection_key values "
                                                                  "(e.g. normalize_timestamps)")
    selection_reverse: bool = arg(False, help="keep the max of selection_key instead of the min")

    def __post_init__(self):
        as_tuples(self, "inputs")
        self.deduper()  # an unknown normaliser fails here, before any job starts

    def deduper(self) -> ExactDeduper:
        return ExactDeduper(self.content_key, self.normalize, self.selection_key, self.selection_normalize,
                            self.selection_reverse)


@dataclass(frozen=True)
class ExactDedupResult:
    """Counts of a `dclm dedup exact` run: pages and content units in, out and removed."""

    pages_in: int
    pages_out: int
    pages_removed: int
    pages_modified: int    # pages that lost some but not all of their units
    units_in: int
    units_out: int
    units_removed: int
    pages_missing_key: int  # kept untouched
    files: int
    files_written: int
    rejects: int           # unreadable lines, in `<output_directory>/_rejects/`
    secs: float


STAGE = "dedup exact"


@dataclass(frozen=True)
class _HashJob:
    settings: ExactDedupConfig
    index: int
    shard: Shard
    out_root: str


@dataclass(frozen=True)
class _FilterJob:
    settings: ExactDedupConfig
    shard: Shard
    out_root: str
    winners: frozenset


def _hash_shard(job: _HashJob) -> tuple[list[tuple[list[bytes] | None, Any]], int]:
    """First pass over one shard: every page's unit digests; unreadable lines go to the reject log."""
    from dclm.io.pages import iter_pages

    dd = job.settings.deduper()
    log = RejectLog(job.out_root, job.shard.rel, STAGE, job.shard.url)
    pages = [dd.digest_page(page, (job.index, i))
             for i, page in enumerate(iter_pages(job.shard.url, on_reject=log.on_read_reject, text_key=None))]
    return pages, log.flush()


def _filter_shard(job: _FilterJob) -> tuple[int, int]:
    """Second pass over one shard: keep the winning units, write the shard; returns (pages kept, pages modified)."""
    from dclm.io.pages import iter_pages, write_pages

    dd = job.settings.deduper()
    kept, modified = [], 0
    for i, page in enumerate(iter_pages(job.shard.url, on_reject=lambda *a: None, text_key=None)):
        new, removed = dd.apply(i, page, job.winners)
        if new is not None:
            kept.append(new)
            modified += removed > 0
    write_pages(f"{job.out_root}/{job.shard.rel}", kept)
    return len(kept), modified


def run_exact_dedup(config: ExactDedupConfig) -> ExactDedupResult:
    """`dclm dedup exact`: read every shard twice (hash, then filter) and mirror it into `output_directory`.

    Both passes run one job per shard through the shared runner (process pool or Ray); the driver merges
    the digests in shard order, so the kept copy never depends on `workers` or the engine. Memory holds
    one digest and position per distinct unit plus one shard's digests in flight, never the pages.
    Unreadable lines go to `<output_directory>/_rejects/<shard>.jsonl` (src/dclm/runtime/rejects.py).
    """
    import time

    from dclm.io import list_shards

    t0 = time.perf_counter()
    shards = list_shards(list(config.inputs))
    if not shards:
        raise DclmError(f"no page shards found under {', '.join(config.inputs)}")
    settings, output_directory = config, config.output_directory
    out_root = output_directory.rstrip("/")
    dd = settings.deduper()
    hashed = config.run(_hash_shard, [_HashJob(settings, s, shard, out_root) for s, shard in enumerate(shards)],
                        desc="exact dedup: hash")
    for s, (pages, _) in enumerate(hashed):
        for i, (digests, sel) in enumerate(pages):
            dd.record(s, i, digests, sel)
    rejects = sum(n for _, n in hashed)
    del hashed
    winners = dd.winners()
    filtered = config.run(_filter_shard, [_FilterJob(settings, shard, out_root, frozenset(winners.get(s, ())))
                                          for s, shard in enumerate(shards)], desc="exact dedup: filter")
    return ExactDedupResult(**_stats(dd, sum(k for k, _ in filtered), sum(m for _, m in filtered)),
                            files=len(shards), files_written=len(filtered), rejects=rejects,
                            secs=round(time.perf_counter() - t0, 3))
