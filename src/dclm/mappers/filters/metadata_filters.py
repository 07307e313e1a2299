"""DCLM's metadata filters (baselines/mappers/filters/metadata_filters.py).

`random_sampling_filter` draws from Python's global `random`, as DCLM's does, so `random.seed(s)` before a
run of calls fixes which pages it keeps. `dclm process` seeds that generator per shard and step from the run
seed and the shard path (src/dclm/process/executor.py `seed_step`), so a pipeline run is reproducible,
resumable and independent of how shards are spread over workers.
"""

from __future__ import annotations

import pickle
import random
import re
from typing import Callable
from urllib.parse import urlparse

from retrie.retrie import Blacklist

from dclm.assets import resolve_asset
from dclm.errors import DclmError
from dclm.mappers.registry import factory_function, mapper

CONTENT = "text"
URL = "url"


@mapper
def random_sampling_filter(page: dict, keep_probability=0.1) -> list[dict]:
    """Keep a page with probability `keep_probability`, one draw of the global `random` per call."""
    assert 0 <= keep_probability <= 1
    return [page] if random.random() < keep_probability else []


@mapper
def language_filter(page: dict, keep_languages: list, key="language_id_whole_page_langdetect", threshold=0.0) -> list[dict]:
    """Keep when any of `keep_languages` has probability strictly above `threshold` in `page[key]`."""
    if not isinstance(keep_languages, list):
        raise TypeError("The keep_languages argument must be a list.")
    assert key in page, f"The input JSON object does not have a {key} field"
    scores = page[key]
    for lang in keep_languages:
        if lang in scores and scores[lang] > threshold:
            return [page]
    return []


@mapper
def quality_filter(page: dict, key: str = "fasttext_hq_prob", threshold: float = 0.0, lower_better: bool = False,
                   key_must_exist: bool = True) -> list[dict]:
    """Keep when `page[key] >= threshold` (`<=` when `lower_better`); a missing key is an error, or, with
    `key_must_exist=False`, the worst possible score."""
    if key_must_exist:
        assert key in page, f"The input JSON object does not have a {key} field"
        score = page[key]
    else:
        score = page.get(key, float("inf") if lower_better else -float("inf"))
    if lower_better:
        return [page] if score <= threshold else []
    return [page] if score >= threshold else []


class _PatternOnlyUnpickler(pickle.Unpickler):
    """Unpickles a compiled regex (what DCLM's `.pkl` banlists hold) and nothing else."""

    def find_class(self, module, name):
        if module == "re" and name == "_compile":
            return re._compile
        raise pickle.UnpicklingError(f"a banlist pickle may only hold a compiled regex, not {module}.{name}")


def _load_pickled_pattern(path) -> re.Pattern:
    with open(path, "rb") as f:
        pattern = _PatternOnlyUnpickler(f).load()
    if not isinstance(pattern, re.Pattern):
        raise DclmError(f"{path}: a pickled banlist must hold a compiled regex")
    return pattern


@mapper
@factory_function
def url_substring_filter(banlist=None, banlist_from_fname: str | None = None, ignore_chars: list | None = None,
                         num_banned_substrs: int = 1, exact_domain_match: bool = False, match_substrings=True,
                         case_sensitive=False) -> Callable:
    """Drop pages by URL: exact netloc membership (`exact_domain_match`), or at least `num_banned_substrs`
    distinct banlist items found by a `retrie` trie regex (on word boundaries unless `match_substrings`).
    `ignore_chars` strings are deleted from the netloc/URL first (anywhere, as DCLM does)."""
    pattern = None
    if banlist_from_fname is not None and banlist_from_fname.endswith((".pkl", ".pickle")):
        assert not exact_domain_match, "pickled banlist cannot be used with exact_domain_match"
        pattern = _load_pickled_pattern(resolve_asset(banlist_from_fname))
    else:
        if banlist_from_fname is not None:
            with open(resolve_asset(banlist_from_fname), encoding="utf-8") as f:
                banlist = f.read().splitlines()
        elif isinstance(banlist, str):
            banlist = [banlist]
        if banlist is None:
            raise DclmError("url_substring_filter needs banlist or banlist_from_fname")
        banlist = [b.lower() for b in banlist] if not case_sensitive else list(banlist)
        if exact_domain_match:
            banned = set(banlist)
        else:
            re_flags = re.IGNORECASE if not case_sensitive else None
            pattern = re.compile(Blacklist(banlist, match_substrings=match_substrings, re_flags=re_flags).compiled)
    ignore = list(ignore_chars or [])

    if exact_domain_match:
        def filter_fn(page: dict) -> list[dict]:
            netloc = urlparse(page[URL]).netloc
            if not case_sensitive:
                netloc = netloc.lower()
            for chars in ignore:
                netloc = netloc.replace(chars, "")
            return [] if netloc in banned else [page]
        return filter_fn

    findall = pattern.findall

    def filter_fn(page: dict) -> list[dict]:
        url = page[URL] if case_sensitive else page[URL].lower()
        for chars in ignore:
            url = url.replace(chars, "")
        if num_banned_substrs == 1:
            return [] if pattern.search(url) else [page]
        return [] if len(set(findall(url))) >= num_banned_substrs else [page]

    return filter_fn
