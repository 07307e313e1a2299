"""One batch of documents through the fast path: `analyse` (tokenise and hash, no filter access: the part
that runs in parallel), `decide` (the filter checks and inserts, in document order: the serial part, one
compiled call per batch) and `output` (each document's output page).

Every decision is made in `kernels`; this module only routes arrays and cuts text. The plain twin of the
whole path is `reference.process_page` (tests only).
"""

from __future__ import annotations

import functools

import numpy as np

from dclm.dedup.bff import kernels
from dclm.dedup.bff.bloom import BloomFilter
from dclm.dedup.bff.config import ANNOTATE_FIELDS, BffConfig
from dclm.dedup.bff.hashing import Seeds
from dclm.dedup.bff.segment import WHITE, property_table
from dclm.dedup.bff.state import Analysis, Batch, Cuts, Decisions, ShortDocs, Tokens, Units, Verdicts, Windows


@functools.lru_cache(maxsize=1)
def white_space() -> str:
    """Every White_Space character (Rust `char::is_whitespace`), for `str.strip`."""
    return "".join(map(chr, np.flatnonzero(property_table() & WHITE).tolist()))


def is_blank(text: str) -> bool:
    """Rust `text.trim().is_empty()`."""
    return not text.strip(white_space())


def _utf8_len(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def _pack(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """The texts as one UTF-8 buffer and their byte offsets."""
    raw = [t.encode("utf-8", "surrogatepass") for t in texts]
    off = np.zeros(len(raw) + 1, dtype=np.int64)
    np.cumsum([len(r) for r in raw], out=off[1:])
    return np.frombuffer(b"".join(raw), dtype=np.uint8), off


def analyse(batch: Batch, cfg: BffConfig, seeds: Seeds) -> None:
    """Tokenise and hash what `cfg.remove_type` needs."""
    buf, off = _pack([p["text"] for p in batch.pages])
    tok_seed, ng_seed = np.uint64(seeds.token), np.uint64(seeds.ngram)
    rt = cfg.remove_type
    if rt == "exact":
        batch.analysis = Analysis(int(off[-1]), whole_text=kernels.whole_text_hashes(buf, off, tok_seed, ng_seed))
        return
    th, ts, tp, dto, ps, dpo, db, pcp = kernels.tokenize_docs(buf, off, property_table(), tok_seed)
    tokens = Tokens(dto, dpo, db, ps, pcp, ts if rt == "substring" else None)
    mx, mn = cfg.max_ngram_size, cfg.min_ngram_size
    paragraphs = documents = windows = short = None
    if rt in ("paragraph", "old-both", "naive-both"):
        paragraphs = Units(*kernels.paragraph_units(th, tp, dto, dpo, mx, mn, ng_seed, False))
    if rt in ("document", "naive-both"):
        documents = Units(*kernels.paragraph_units(th, tp, dto, dpo, mx, mn, ng_seed, True))
    if rt in ("both", "substring"):
        windows = Windows(*kernels.document_windows(th, tp, dto, mx, ng_seed))
    if rt == "both":
        short = ShortDocs(*kernels.short_doc_ngrams(th, dto, mx, mn, ng_seed))
    batch.analysis = Analysis(int(off[-1]), tokens=tokens, paragraphs=paragraphs, documents=documents,
                              windows=windows, short=short)


def decide(batch: Batch, cfg: BffConfig, filt: BloomFilter, seeds: Seeds) -> None:
    """Check and update the filter for every document of the batch, in order."""
    a = batch.analysis
    f = (filt.bits, np.uint64(filt.m_bits), filt.num_hashers, np.uint64(seeds.probe))
    thr, upd, rt = float(cfg.filtering_threshold), cfg.update_bloom_filter, cfg.remove_type
    if rt == "exact":
        batch.decisions = Decisions(exact_duplicate=kernels.decide_exact(*f, a.whole_text, upd))
    elif rt in ("paragraph", "old-both"):
        batch.decisions = Decisions(paragraphs=Verdicts(*kernels.decide_units(*f, a.paragraphs.off,
                                                                              a.paragraphs.ngrams, thr, upd)))
    elif rt == "document":
        batch.decisions = Decisions(documents=Verdicts(*kernels.decide_units(*f, a.documents.off,
                                                                             a.documents.ngrams, thr, upd)))
    elif rt == "naive-both":
        dc, dr, pc, pr = kernels.decide_naive_both(*f, a.documents.off, a.documents.ngrams, a.tokens.doc_para_off,
                                                   a.paragraphs.off, a.paragraphs.ngrams, thr, upd)
        batch.decisions = Decisions(documents=Verdicts(dc, dr), paragraphs=Verdicts(pc, pr))
    elif rt == "both":
        w = a.windows
        dc, dt, dr, pr = kernels.decide_both(*f, w.off, w.ngrams, w.first, w.last, a.short.flag, a.short.ngrams,
                                             a.tokens.doc_para_off, thr, upd)
        batch.decisions = Decisions(documents=Verdicts(dc, dr, dt), paragraphs=Verdicts(None, pr))
    elif rt == "substring":
        cuts = kernels.decide_substring(*f, a.windows.off, a.windows.ngrams, a.tokens.doc_tok_off,
                                        cfg.max_ngram_size, cfg.substr_seqlen, thr, upd)
        batch.decisions = Decisions(cuts=Cuts(*cuts))


def _spans(starts: np.ndarray, p0: int, p1: int, paras: list[int], end: int) -> list[list[int]]:
    """[start, end) of the given paragraphs of a document whose paragraphs are starts[p0:p1]."""
    return [[int(starts[p0 + j]), int(starts[p0 + j + 1]) if p0 + j + 1 < p1 else end] for j in paras]


def _cut(text: str, spans: list[list[int]]) -> str:
    """`text` without the code-point spans."""
    parts, last = [], 0
    for s, e in spans:
        parts.append(text[last:s])
        last = e
    parts.append(text[last:])
    return "".join(parts)


def _substring_output(page: dict, i: int, a: Analysis, cuts: Cuts, annotate: bool) -> tuple[dict, int]:
    text = page["text"]
    if a.windows.off[i + 1] == a.windows.off[i]:
        return page, _utf8_len(text)
    raw = text.encode("utf-8", "surrogatepass")
    t0, t1 = a.tokens.doc_tok_off[i], a.tokens.doc_tok_off[i + 1]
    bounds = np.append(a.tokens.tok_start[t0:t1], len(raw)).tolist()
    if annotate:
        page["bff_duplicate_spans"] = [[bounds[s], bounds[e]] for s, e in cuts.removed_of(i).tolist()]
        page["bff_contained_ngram_count"] = int(cuts.contained[i])
        return page, len(raw)
    kept = b"".join(raw[bounds[s]:bounds[e]] for s, e in cuts.kept_of(i).tolist())
    page["text"] = kept.decode("utf-8", "surrogatepass").rstrip(white_space())
    return page, _utf8_len(page["text"])


def output(batch: Batch, i: int, cfg: BffConfig) -> tuple[dict, int]:
    """The output page of document i (the input page, edited in place; old-both --annotate makes a new one)
    and its text's UTF-8 length."""
    page, a, d, rt = batch.pages[i], batch.analysis, batch.decisions, cfg.remove_type
    text = page["text"]
    if rt == "exact":
        if d.exact_duplicate[i]:
            if cfg.annotate:
                page["bff_exact_duplicate"] = True
            else:
                page["text"] = ""
        return page, _utf8_len(page["text"])
    if rt == "substring":
        return _substring_output(page, i, a, d.cuts, cfg.annotate)
    nbytes = int(a.tokens.doc_bytes[i])
    if rt in ("naive-both", "both"):
        docs = d.documents
        if rt == "both" and docs.total[i] == 0:
            return page, nbytes
        if docs.removed[i]:
            if cfg.annotate:
                page["bff_duplicate_spans"] = [[0, nbytes]]
                page["bff_contained_ngram_count"] = int(docs.contained[i])
                return page, nbytes
            page["text"] = ""
            return page, 0
    if rt == "document":
        spans = [[0, nbytes]] if d.documents.removed[i] else []
        cp_spans = [[0, len(text)]] if spans else []
        contained = int(d.documents.contained[i])
    else:
        p0, p1 = a.tokens.paragraphs(i)
        paras = np.flatnonzero(d.paragraphs.removed[p0:p1]).tolist()
        spans = _spans(a.tokens.para_start, p0, p1, paras, nbytes)
        cp_spans = _spans(a.tokens.para_cp, p0, p1, paras, len(text)) if not cfg.annotate else []
        contained = int(d.documents.contained[i]) if rt == "both" else int(d.paragraphs.contained[p0:p1].sum())
    if cfg.annotate:
        page["bff_duplicate_spans"] = spans
        page["bff_contained_ngram_count"] = contained
        if rt == "old-both":
            page = {k: v for k, v in page.items() if k in ANNOTATE_FIELDS}
        return page, nbytes
    new_text = _cut(text, cp_spans) if cp_spans else text
    out_bytes = nbytes - sum(e - s for s, e in spans)
    if rt == "both":
        page["text"] = new_text.rstrip(white_space())
        return page, _utf8_len(page["text"])
    if rt == "old-both":
        off, p0, p1 = a.paragraphs.off, *a.tokens.paragraphs(i)
        total = int(off[p1] - off[p0])
        if total and contained / total > cfg.filtering_threshold:
            new_text, out_bytes = "", 0
        page["bff_contained_ngram_count_before_dedupe"] = contained
    page["text"] = new_text
    return page, out_bytes
