"""HTML to plain text. `resiliparse` is what DCLM-Pool used; `trafilatura` and `justext` are alternatives.

Each extractor is `fn(html: str) -> str` and may raise on input it cannot parse; the caller counts that
as an extraction error for the record. The libraries are imported when an extractor is first built.
"""

from __future__ import annotations

from typing import Callable

from dclm.errors import DclmError

Extractor = Callable[[str], str]
EXTRACTORS = ("resiliparse", "trafilatura", "justext")


def _resiliparse() -> Extractor:
    from resiliparse.extract.html2text import extract_plain_text

    def extract(html: str) -> str:
        return extract_plain_text(html, main_content=True)  # DCLM-Pool's exact call, other options at defaults

    return extract


def _trafilatura() -> Extractor:
    import trafilatura

    def extract(html: str) -> str:
        return trafilatura.extract(html) or ""  # trafilatura's defaults; None means nothing found

    return extract


def _justext() -> Extractor:
    import justext

    def extract(html: str) -> str:
        # as DCLM's html_content_extraction_modifier: an empty stoplist, and every paragraph kept
        # (boilerplate classes are ignored), joined by blank lines
        return "\n\n".join(p.text for p in justext.justext(html, ()))

    return extract


_BUILDERS = {"resiliparse": _resiliparse, "trafilatura": _trafilatura, "justext": _justext}


def get_extractor(name: str) -> Extractor:
    if name not in _BUILDERS:
        raise DclmError(f"unknown extractor {name!r}; choose one of {', '.join(EXTRACTORS)}")
    try:
        return _BUILDERS[name]()
    except ImportError as e:
        raise DclmError(f"extractor {name!r} needs the `extract` extra: pip install 'dclm[extract]' ({e})") from None
