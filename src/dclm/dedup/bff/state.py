"""The typed state of one batch of documents on its way through bff: what the analysis computed (tokens,
n-gram units, windows; no filter access) and what the filter pass decided.

Which fields are set depends on the remove type (see `batch.analyse`); arrays are those of `kernels`, flat
over the batch with per-document (or per-paragraph) offsets.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from dclm.runtime.rejects import RejectLog


@dataclass(frozen=True)
class Tokens:
    """Per document: its token range, paragraph range, size, and where each paragraph starts."""

    doc_tok_off: np.ndarray    # int64[n_docs + 1]: tokens of document i are [doc_tok_off[i], doc_tok_off[i + 1])
    doc_para_off: np.ndarray   # int64[n_docs + 1]: the same for paragraphs
    doc_bytes: np.ndarray      # int64[n_docs]: UTF-8 length of each document
    para_start: np.ndarray     # int32[n_paras]: paragraph start in its document, in UTF-8 bytes
    para_cp: np.ndarray        # int32[n_paras]: the same in code points
    tok_start: np.ndarray | None = None  # int64[n_tokens]: token start in its document, in bytes (substring)

    def paragraphs(self, i: int) -> tuple[int, int]:
        return int(self.doc_para_off[i]), int(self.doc_para_off[i + 1])


@dataclass(frozen=True)
class Units:
    """bff's unit n-grams (one unit per paragraph, or per document): unit u owns ngrams[off[u]:off[u + 1]]."""

    off: np.ndarray
    ngrams: np.ndarray


@dataclass(frozen=True)
class Windows:
    """Every max_n window of each document across paragraphs, with the paragraphs of its first and last token."""

    off: np.ndarray
    ngrams: np.ndarray
    first: np.ndarray
    last: np.ndarray


@dataclass(frozen=True)
class ShortDocs:
    """`both` mode: the one whole-document n-gram of documents shorter than max_n but >= min_n tokens."""

    flag: np.ndarray
    ngrams: np.ndarray


@dataclass(frozen=True)
class Analysis:
    """Everything the filter pass and the output need that does not depend on the filter."""

    bytes_in: int
    whole_text: np.ndarray | None = None   # exact: one hash per document
    tokens: Tokens | None = None
    paragraphs: Units | None = None        # paragraph, old-both, naive-both
    documents: Units | None = None         # document, naive-both
    windows: Windows | None = None         # both, substring
    short: ShortDocs | None = None         # both


@dataclass(frozen=True)
class Verdicts:
    """Per unit: n-grams found in the filter, whether it was removed, and (`both`) how many n-grams it has."""

    contained: np.ndarray | None
    removed: np.ndarray
    total: np.ndarray | None = None


@dataclass(frozen=True)
class Cuts:
    """substring mode: per document, the removed and the kept token intervals, flat with offsets."""

    removed_off: np.ndarray
    removed: np.ndarray  # int64[n, 2]: [start, end) in tokens
    kept_off: np.ndarray
    kept: np.ndarray
    contained: np.ndarray

    def removed_of(self, i: int) -> np.ndarray:
        return self.removed[self.removed_off[i]:self.removed_off[i + 1]]

    def kept_of(self, i: int) -> np.ndarray:
        return self.kept[self.kept_off[i]:self.kept_off[i + 1]]


@dataclass(frozen=True)
class Decisions:
    """What the filter pass decided for a batch."""

    exact_duplicate: np.ndarray | None = None  # exact
    paragraphs: Verdicts | None = None         # paragraph, old-both, naive-both, both (removed only)
    documents: Verdicts | None = None          # document, naive-both, both
    cuts: Cuts | None = None                   # substring


@dataclass
class Batch:
    """A run of documents from one file, analysed together and then decided in one compiled call."""

    pages: list[dict]
    analysis: Analysis | None = None
    decisions: Decisions | None = None


@dataclass
class PreparedFile:
    """One input file read, tokenised and hashed, waiting for its turn at the filter."""

    rel: str
    out_url: str
    rejects: RejectLog
    batches: list[Batch] = field(default_factory=list)
    bytes_in: int = 0


@dataclass(frozen=True)
class FileOutcome:
    """One file's counts and the seconds spent in each phase."""

    rel: str
    docs_in: int
    docs_out: int
    rejects: int
    text_bytes_in: int
    text_bytes_out: int
    written: bool
    prepare_s: float = 0.0
    wait_s: float = 0.0
    decide_s: float = 0.0
    finish_s: float = 0.0
