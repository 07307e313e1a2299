"""Phase 1, one job per input file: documents -> ids + EOT, concatenated over the file and cut into contexts of
exactly `seqlen` tokens (the file's tail padded with PAD as tokshuf-rs does, or dropped), written to
`<work>/tok/<i>.bin`. Bad lines and untokenizable documents go to the run's reject log."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from dclm.io import atomic_open, iter_pages
from dclm.runtime.rejects import RejectLog
from dclm.runtime.resume import mark_done
from dclm.tokenize.config import STAGE
from dclm.tokenize.plan import Settings
from dclm.tokenize.shards import bytes_view
from dclm.tokenize.tokenizer import Encoder

_DOC_BATCH_CHARS = 1 << 21  # documents are encoded in batches of about this many characters


@dataclass(frozen=True)
class TokenizeJob:
    i: int
    url: str
    rel: str
    work: str
    output: str
    settings: Settings
    encoder: Encoder
    digest: str


def contexts_path(work: str, i: int) -> str:
    return os.path.join(work, "tok", f"{i:06d}.bin")


def marker_rel(i: int) -> str:
    return f"tokenize/{i:06d}"


def tokenize_file(job: TokenizeJob) -> dict:
    """Write the file's contexts and rejects, then its done marker; returns its counts."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    st, enc = job.settings, job.encoder
    dtype = np.dtype(st.dtype)
    rejects = RejectLog(job.output, job.rel, STAGE, job.url)
    docs = tokens = contexts = 0
    fallback0 = enc.fallback_docs
    pending = np.zeros(0, dtype=dtype)
    with atomic_open(contexts_path(job.work, job.i), "wb") as out:

        def flush(batch: list[dict]) -> None:
            nonlocal docs, tokens, contexts, pending
            texts = [_text(p, st.text_key) for p in batch]
            try:
                encoded = enc.encode(texts)
            except Exception:  # e.g. lone surrogates: find the culprits one by one so the rest are kept
                encoded = []
                for page, text in zip(batch, texts):
                    try:
                        encoded.append(enc.encode([text])[0])
                    except Exception as e:
                        first = str(e).splitlines()[0] if str(e) else type(e).__name__
                        rejects.add(f"tokenizer error: {first}", page)
            flat: list[int] = []
            for ids in encoded:
                flat += ids
                flat.append(st.eot)
            docs += len(encoded)
            tokens += len(flat)
            buf = np.concatenate([pending, np.asarray(flat, dtype=dtype)])
            full = len(buf) // st.seqlen * st.seqlen
            if full:
                out.write(bytes_view(buf[:full]))
                contexts += full // st.seqlen
            pending = buf[full:]

        batch: list[dict] = []
        size = 0
        for page in iter_pages(job.url, on_reject=rejects.on_read_reject, text_key=st.text_key):
            batch.append(page)
            size += len(page[st.text_key])
            if size >= _DOC_BATCH_CHARS:
                flush(batch)
                batch, size = [], 0
        if batch:
            flush(batch)
        pad = dropped = 0
        if len(pending):
            if st.tail == "pad":
                pad = st.seqlen - len(pending)
                out.write(bytes_view(np.concatenate([pending, np.full(pad, st.pad, dtype=dtype)])))
                contexts += 1
            else:
                dropped = len(pending)
    stats = {"i": job.i, "rel": job.rel, "documents": docs, "rejected": rejects.flush(), "tokens": tokens,
             "contexts": contexts, "pad_tokens": pad, "dropped_tokens": dropped,
             "fallback_documents": enc.fallback_docs - fallback0}
    mark_done(job.work, marker_rel(job.i), job.digest, stats)
    return stats


def _text(page: dict, key: str) -> str:
    text = page[key]
    if isinstance(text, list):  # some DCLM shards keep text as a list of lines
        return "\n".join(map(str, text))
    return text
