"""DCLM's general modifiers (baselines/mappers/modifiers.py)."""

from __future__ import annotations

import logging

from dclm.mappers.registry import mapper

logger = logging.getLogger(__name__)

CONTENT = "text"
URL = "url"


@mapper
def move_url_modifier(page: dict) -> list[dict]:
    """Set `url` from the WARC header `metadata['WARC-Target-URI']`."""
    page[URL] = page["metadata"]["WARC-Target-URI"]
    return [page]


@mapper
def key_name_modifier(page: dict, old_key: str = "content", new_key: str = "text", allow_overwrite: bool = False) -> list[dict]:
    """Rename `old_key` to `new_key`; no-op when `old_key` is absent; refuses to clobber unless allowed."""
    if old_key not in page:
        return [page]
    if new_key in page and not allow_overwrite:
        logger.warning("key_name_modifier: %r already exists and allow_overwrite is False; keeping %r", new_key, old_key)
        return [page]
    page[new_key] = page.pop(old_key)
    return [page]
