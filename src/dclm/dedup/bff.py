"""BFF: DCLM's Bloom-filter n-gram deduplication (`dedup/bff/src/main.rs` in DCLM), same decisions, reproducible.

Each document is split into paragraphs (UTF-8 byte spans; every paragraph after the first starts with
its `\\n`), tokenised with UAX #29 word segmentation (`segment.py`), and its n-grams of
`--max-ngram-size` tokens are checked against a Bloom filter in document order; what survives is
inserted. The remove types follow bff exactly (see `reference.py`, the plain-Python twin) except:

* `both`: bff's paragraph cursor never advances, so every n-gram after the first paragraph lands in
  the cross-paragraph bucket and only the first paragraph can ever be removed. Here each n-gram
  belongs to the paragraph that holds all its tokens; cross-paragraph n-grams are inserted
  only when no paragraph they touch was removed.
* `naive-both`: bff's document pass inserts every n-gram before the paragraph pass runs, so each
  paragraph then finds its own n-grams and is removed. Here the document's n-grams are inserted after
  its paragraph pass.
* `--num-hashers` is honoured (bff recomputes the optimal count and ignores it), and a filter that does
  not fit in available memory is refused (bff silently shrinks it to 90% of RAM).
* Hashes are seeded (`--seed`, default 0), input files are processed in sorted order (or a seeded
  shuffle with `--shuffle-files`), and the results do not depend on `--threads`.

Parallelism and order. `--threads N` forks N worker processes that share one filter in shared
memory. A worker claims the next file, reads, tokenises and hashes it (the expensive part); when the
file's turn comes it runs the file's filter checks and inserts in one compiled call, hands the turn on,
then builds and writes the output. A worker whose file is not yet up prepares one more file meanwhile
instead of idling. Filter updates therefore happen in file order exactly as in a single-threaded run, so
outputs are byte-identical for any N; the serial part is only the memory-bound check/insert loop.
Memory: the filter once, plus per worker up to two files being processed (their pages as Python
objects, about 3x their text) and ~10 bytes per character of UTF-8 buffer, token and n-gram arrays,
built in batches of 8M characters.

Global (cross-shard) deduplication. All inputs of one run share one filter, so one run over every
shard deduplicates globally (DCLM ran 10 shards independently and kept ~80% residual duplication
between them). When the data do not fit one run, keep the filter in a file: `--bloom-filter-file F`
loads F if it exists and saves it at the end, so runs over successive parts (on one machine, or on
machines that pass the file along) see everything earlier. Trade-off: a global filter needs
~1.2 bytes per expected n-gram at fp 0.01 (`dclm dedup bff sysreq`), on one machine, and the parts
run one after another; per-shard filters (`--shard-num/--total-shards` on separate machines) need
1/S of the memory each and run in parallel, but miss duplicates across shards. Splitting one filter
by n-gram hash range across machines is not offered: a paragraph's keep/insert decision needs its
contained count over every range, so bff's semantics would need a round trip per paragraph.
"""

from __future__ import annotations

import dataclasses
import gc
import logging
import os
import random
import time
import traceback
from typing import Any

import numpy as np
import orjson

from dclm.dedup import kernels
from dclm.dedup.bloom import BloomFilter
from dclm.dedup.hashing import Seeds
from dclm.dedup.reference import ANNOTATE_FIELDS, REMOVE_TYPES, substring_output, substring_plan
from dclm.dedup.segment import is_blank, property_table, rstrip_white_space
from dclm.errors import DclmError, ShardFailed
from dclm.io import Shard, list_shards
from dclm.io.pages import compress, encode_pages, iter_pages, write_bytes

logger = logging.getLogger(__name__)

BATCH_CHARS = 1 << 23
_AHEAD = 2  # files a parallel worker may hold prepared while waiting for its turn


@dataclasses.dataclass
class BffConfig:
    """bff's flags (same names and defaults) plus `seed` and `shuffle_files`."""

    inputs: list[str]
    output_directory: str
    expected_ngram_count: int
    fp_rate: float
    min_ngram_size: int = 20
    max_ngram_size: int = 20
    filtering_threshold: float = 0.80
    remove_type: str = "paragraph"
    substr_seqlen: int = 50
    num_hashers: int = 0
    bloom_filter_file: str | None = None
    no_update_bloom_filter: bool = False
    no_save_bloom_filter: bool = False
    annotate: bool = False
    shard_num: int = 0
    total_shards: int = 1
    threads: int = 0
    progress: bool = True
    seed: int | None = None
    shuffle_files: int | None = None

    def validate(self) -> None:
        if self.remove_type not in REMOVE_TYPES:
            raise DclmError(f"unknown --remove-type {self.remove_type!r} (choose from {', '.join(REMOVE_TYPES)})")
        if self.max_ngram_size < 1 or self.min_ngram_size < 0:
            raise DclmError("--max-ngram-size must be >= 1 and --min-ngram-size >= 0")
        if not 0 <= self.shard_num < self.total_shards:
            raise DclmError("--shard-num must be in [0, --total-shards)")
        if self.threads < 0:
            raise DclmError("--threads must be >= 0 (0 = all cores)")
        if self.substr_seqlen < 0:
            raise DclmError("--substr-seqlen must be >= 0")
        if self.seed is not None and not 0 <= self.seed < 2**64:
            raise DclmError("--seed must be in [0, 2**64)")


# ----------------------------------------------------------------------------- per-file work


class _Batch:
    """A run of documents from one file, analysed together."""

    def __init__(self, pages: list[dict]):
        self.pages = pages
        self.a: dict[str, Any] = {}
        self.d: dict[str, Any] = {}
        self.bytes_in = 0


def _pack(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """The texts as one UTF-8 buffer and their byte offsets."""
    raw = [t.encode("utf-8", "surrogatepass") for t in texts]
    off = np.zeros(len(raw) + 1, dtype=np.int64)
    np.cumsum([len(r) for r in raw], out=off[1:])
    return np.frombuffer(b"".join(raw), dtype=np.uint8), off


def _analyse(batch: _Batch, cfg: BffConfig, seeds: Seeds) -> None:
    """Tokenise and hash (no filter access): the parallel part."""
    buf, off = _pack([p["text"] for p in batch.pages])
    batch.bytes_in = int(off[-1])
    a = batch.a
    tok_seed, ng_seed = np.uint64(seeds.token), np.uint64(seeds.ngram)
    rt = cfg.remove_type
    if rt == "exact":
        a["hashes"] = kernels.whole_text_hashes(buf, off, tok_seed, ng_seed)
        return
    th, ts, tp, dto, ps, dpo, db, pcp = kernels.tokenize_docs(buf, off, property_table(), tok_seed)
    a.update(doc_tok_off=dto, para_start=ps, doc_para_off=dpo, doc_bytes=db, para_cp=pcp)
    if rt == "substring":
        a["tok_start"] = ts
    mx, mn = cfg.max_ngram_size, cfg.min_ngram_size
    if rt in ("paragraph", "old-both", "naive-both"):
        a["para_ng_off"], a["para_ng"] = kernels.paragraph_units(th, tp, dto, dpo, mx, mn, ng_seed, False)
    if rt in ("document", "naive-both"):
        a["doc_ng_off"], a["doc_ng"] = kernels.paragraph_units(th, tp, dto, dpo, mx, mn, ng_seed, True)
    if rt in ("both", "substring"):
        a["win_off"], a["win_ng"], a["win_first"], a["win_last"] = kernels.document_windows(th, tp, dto, mx, ng_seed)
    if rt == "both":
        a["short_flag"], a["short_ng"] = kernels.short_doc_ngrams(th, dto, mx, mn, ng_seed)


def _decide(batch: _Batch, cfg: BffConfig, filt: BloomFilter, seeds: Seeds) -> None:
    """Filter checks and inserts, in document order: the serial part."""
    a, d = batch.a, batch.d
    f = (filt.bits, np.uint64(filt.m_bits), filt.num_hashers, np.uint64(seeds.probe))
    thr, upd, rt = float(cfg.filtering_threshold), not cfg.no_update_bloom_filter, cfg.remove_type
    if rt == "exact":
        d["dup"] = kernels.decide_exact(*f, a["hashes"], upd)
    elif rt in ("paragraph", "old-both"):
        d["contained"], d["removed"] = kernels.decide_units(*f, a["para_ng_off"], a["para_ng"], thr, upd)
    elif rt == "document":
        d["contained"], d["removed"] = kernels.decide_units(*f, a["doc_ng_off"], a["doc_ng"], thr, upd)
    elif rt == "naive-both":
        (d["doc_contained"], d["doc_removed"], d["contained"], d["removed"]) = kernels.decide_naive_both(
            *f, a["doc_ng_off"], a["doc_ng"], a["doc_para_off"], a["para_ng_off"], a["para_ng"], thr, upd)
    elif rt == "both":
        (d["doc_contained"], d["doc_total"], d["doc_removed"], d["removed"]) = kernels.decide_both(
            *f, a["win_off"], a["win_ng"], a["win_first"], a["win_last"], a["short_flag"], a["short_ng"],
            a["doc_para_off"], thr, upd)
    elif rt == "substring":
        plans = []
        off, ng = a["win_off"], a["win_ng"]
        for i in range(len(batch.pages)):
            grams = ng[off[i]:off[i + 1]]
            if grams.shape[0] == 0:
                plans.append(None)
                continue
            hits = kernels.contains_many(*f, grams).tolist()
            n_tok = int(a["doc_tok_off"][i + 1] - a["doc_tok_off"][i])
            removed, kept, inserts, contained = substring_plan(hits, n_tok, cfg.max_ngram_size, cfg.substr_seqlen, thr)
            if upd and inserts:
                kernels.insert_many(*f, grams[np.asarray(inserts, dtype=np.int64)])
            plans.append((removed, kept, contained))
        d["plans"] = plans


def _spans(a: dict, i: int, paras: list[int], key: str, end: int) -> list[list[int]]:
    """[start, end) of the given paragraphs of document i, in bytes (`para_start`) or code points (`para_cp`)."""
    starts = a[key]
    p0, p1 = int(a["doc_para_off"][i]), int(a["doc_para_off"][i + 1])
    return [[int(starts[p0 + j]), int(starts[p0 + j + 1]) if p0 + j + 1 < p1 else end] for j in paras]


def _cut(text: str, spans: list[list[int]]) -> str:
    """`text` without the code-point spans."""
    parts, last = [], 0
    for s, e in spans:
        parts.append(text[last:s])
        last = e
    parts.append(text[last:])
    return "".join(parts)


def _output(batch: _Batch, i: int, cfg: BffConfig) -> tuple[dict, int]:
    """The output page for document i of the batch (mirrors `reference.process_page`; edits the page in
    place) and its text length in UTF-8 bytes."""
    page, a, d, rt = batch.pages[i], batch.a, batch.d, cfg.remove_type
    text = page["text"]
    out = page
    if rt == "exact":
        if d["dup"][i]:
            if cfg.annotate:
                out["bff_exact_duplicate"] = True
            else:
                out["text"] = ""
        return out, len(out["text"].encode("utf-8", "surrogatepass"))
    if rt == "substring":
        plan = d["plans"][i]
        if plan is not None:
            starts = a["tok_start"][a["doc_tok_off"][i]:a["doc_tok_off"][i + 1]].tolist()
            out = substring_output(page, text, starts, plan[0], plan[1], plan[2], cfg.annotate)
        return out, len(out["text"].encode("utf-8", "surrogatepass"))
    nbytes = int(a["doc_bytes"][i])
    if rt in ("naive-both", "both"):
        if rt == "both" and d["doc_total"][i] == 0:
            return out, nbytes
        if d["doc_removed"][i]:
            if cfg.annotate:
                out["bff_duplicate_spans"] = [[0, nbytes]]
                out["bff_contained_ngram_count"] = int(d["doc_contained"][i])
                return out, nbytes
            out["text"] = ""
            return out, 0
    if rt == "document":
        paras = []
        spans = [[0, nbytes]] if d["removed"][i] else []
        cp_spans = [[0, len(text)]] if spans else []
        contained = int(d["contained"][i])
    else:
        p0, p1 = a["doc_para_off"][i], a["doc_para_off"][i + 1]
        paras = np.flatnonzero(d["removed"][p0:p1]).tolist()
        spans = _spans(a, i, paras, "para_start", nbytes)
        cp_spans = _spans(a, i, paras, "para_cp", len(text)) if not cfg.annotate else []
        contained = int(d["doc_contained"][i]) if rt == "both" else int(d["contained"][p0:p1].sum())
    if cfg.annotate:
        out["bff_duplicate_spans"] = spans
        out["bff_contained_ngram_count"] = contained
        if rt == "old-both":
            out = {k: v for k, v in out.items() if k in ANNOTATE_FIELDS}
        return out, nbytes
    new_text = _cut(text, cp_spans) if cp_spans else text
    out_bytes = nbytes - sum(e - s for s, e in spans)
    if rt == "both":
        out["text"] = rstrip_white_space(new_text)
        return out, len(out["text"].encode("utf-8", "surrogatepass"))
    if rt == "old-both":
        off = a["para_ng_off"]
        total = int(off[a["doc_para_off"][i + 1]] - off[a["doc_para_off"][i]])
        if total and contained / total > cfg.filtering_threshold:
            new_text, out_bytes = "", 0
        out["bff_contained_ngram_count_before_dedupe"] = contained
    out["text"] = new_text
    return out, out_bytes


@dataclasses.dataclass
class _FileJob:
    shard: Shard
    out_url: str
    rejects_url: str


class _Prepared:
    def __init__(self, job: _FileJob):
        self.job = job
        self.batches: list[_Batch] = []
        self.rejects: list[bytes] = []
        self.bytes_in = 0


def _prepare(job: _FileJob, cfg: BffConfig, seeds: Seeds) -> _Prepared:
    prep = _Prepared(job)

    def on_reject(lineno: int, reason: str, raw: Any) -> None:
        prep.rejects.append(orjson.dumps({"line": lineno, "reason": reason, "record": raw}, default=str))

    pages: list[dict] = []
    chars = 0
    for page in iter_pages(job.shard.url, on_reject=on_reject):
        if not isinstance(page["text"], str):
            on_reject(-1, "'text' is a list, bff needs a string", page)
            continue
        pages.append(page)
        chars += len(page["text"])
        if chars >= BATCH_CHARS:
            prep.batches.append(_Batch(pages))
            pages, chars = [], 0
    if pages:
        prep.batches.append(_Batch(pages))
    for b in prep.batches:
        _analyse(b, cfg, seeds)
        prep.bytes_in += b.bytes_in
    return prep


def _finish(prep: _Prepared, cfg: BffConfig) -> dict:
    """Build and write the outputs; returns the file's counters."""
    job = prep.job
    docs_in = docs_out = 0
    bytes_out = 0
    kept: list[dict] = []
    for b in prep.batches:
        for i in range(len(b.pages)):
            docs_in += 1
            out, nbytes = _output(b, i, cfg)
            if is_blank(out["text"]):
                continue
            docs_out += 1
            bytes_out += nbytes
            kept.append(out)
        b.a.clear()
    if kept:
        if job.out_url.endswith(".parquet"):
            data = encode_pages(kept, job.out_url)
        else:
            data = compress(b"".join(orjson.dumps(p, option=orjson.OPT_SORT_KEYS) + b"\n" for p in kept), job.out_url)
        write_bytes(job.out_url, data)
    if prep.rejects:
        write_bytes(job.rejects_url, b"\n".join(prep.rejects) + b"\n")
    return {"file": job.shard.rel, "docs_in": docs_in, "docs_out": docs_out, "rejects": len(prep.rejects),
            "text_bytes_in": prep.bytes_in, "text_bytes_out": bytes_out if not cfg.annotate else None,
            "written": bool(kept)}


def _process_file(job: _FileJob, cfg: BffConfig, filt: BloomFilter, seeds: Seeds) -> dict:
    t0 = time.perf_counter()
    prep = _prepare(job, cfg, seeds)
    t1 = time.perf_counter()
    for b in prep.batches:
        _decide(b, cfg, filt, seeds)
    t2 = time.perf_counter()
    res = _finish(prep, cfg)
    res.update(prepare_s=t1 - t0, wait_s=0.0, decide_s=t2 - t1, finish_s=time.perf_counter() - t2)
    return res


# ----------------------------------------------------------------------------- the run


def _jobs(cfg: BffConfig) -> list[_FileJob]:
    shards = [s for i, s in enumerate(list_shards(cfg.inputs)) if i % cfg.total_shards == cfg.shard_num]
    if cfg.shuffle_files is not None:
        random.Random(cfg.shuffle_files).shuffle(shards)
    out = cfg.output_directory.rstrip("/")
    return [_FileJob(s, f"{out}/{s.rel}", f"{out}/_rejects/{s.rel}.rejects") for s in shards]


def _open_filter(cfg: BffConfig, shared: bool) -> BloomFilter:
    if cfg.bloom_filter_file and os.path.exists(cfg.bloom_filter_file):
        filt = BloomFilter.load(cfg.bloom_filter_file, shared=shared)
        if cfg.seed is not None and cfg.seed != filt.seed:
            raise DclmError(f"--seed {cfg.seed} differs from the seed {filt.seed} stored in {cfg.bloom_filter_file}")
        logger.info("loaded Bloom filter %s (%d words, %d hashers)", cfg.bloom_filter_file, filt.words, filt.num_hashers)
        return filt
    seed = 0 if cfg.seed is None else cfg.seed
    return BloomFilter.create(cfg.expected_ngram_count, cfg.fp_rate, cfg.num_hashers, seed, shared=shared)


def _warm_up(cfg: BffConfig, seeds: Seeds) -> None:
    """Compile (or load from cache) the kernels once, before forking, so workers inherit them."""
    probe = BloomFilter(1, 1, 0)
    b = _Batch([{"text": "warm up\nthe kernels"}])
    _analyse(b, cfg, seeds)
    _decide(b, cfg, probe, seeds)


def run_bff(cfg: BffConfig) -> dict:
    """Deduplicate every input file into `cfg.output_directory`; returns run statistics."""
    cfg.validate()
    t0 = time.perf_counter()
    jobs = _jobs(cfg)
    threads = min(cfg.threads or len(os.sched_getaffinity(0)), max(1, len(jobs)))
    filt = _open_filter(cfg, shared=threads > 1)
    seeds = Seeds.from_seed(filt.seed)
    _warm_up(cfg, seeds)
    setup_secs = time.perf_counter() - t0
    if threads == 1:
        results, failed = _run_serial(jobs, cfg, filt, seeds)
    else:
        results, failed = _run_parallel(jobs, cfg, filt, seeds, threads)
    if cfg.bloom_filter_file and not cfg.no_save_bloom_filter:
        filt.save(cfg.bloom_filter_file)
    secs = time.perf_counter() - t0
    stats = {
        "files": len(jobs),
        "files_written": sum(r["written"] for r in results),
        "files_failed": len(failed),
        "docs_in": sum(r["docs_in"] for r in results),
        "docs_out": sum(r["docs_out"] for r in results),
        "rejects": sum(r["rejects"] for r in results),
        "text_bytes_in": sum(r["text_bytes_in"] for r in results),
        "threads": threads,
        "setup_secs": round(setup_secs, 3),
        "secs": round(secs, 3),
        "filter_bytes": filt.size_in_bytes,
        "num_hashers": filt.num_hashers,
        "seed": filt.seed,
        "filter_fill": round(filt.fill_ratio(), 6),
        # summed over files: the parallel parts (prepare: read+tokenise+hash, finish: build+write), the
        # serial filter part (decide) and the time workers waited for their turn
        **{k: round(sum(r[k] for r in results), 3) for k in ("prepare_s", "decide_s", "finish_s", "wait_s")},
        "failed": failed,
    }
    if not cfg.annotate:
        stats["text_bytes_out"] = sum(r["text_bytes_out"] for r in results)
    stats["mb_per_s"] = round(stats["text_bytes_in"] / 1e6 / secs, 3) if secs > 0 else None
    stats["peak_rss_mb_largest_process"] = _peak_rss_mb()
    return stats


def _peak_rss_mb() -> float:
    """The peak resident set of this process or of any worker it forked (the filter counts in each)."""
    import resource

    return round(max(resource.getrusage(who).ru_maxrss for who in
                     (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)) / 1024, 1)


def _progress(total: int, enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="file", desc="bff")


def _run_serial(jobs, cfg, filt, seeds):
    results, failed = [], []
    bar = _progress(len(jobs), cfg.progress)
    for job in jobs:
        try:
            results.append(_process_file(job, cfg, filt, seeds))
        except (ShardFailed, DclmError) as e:
            failed.append([job.shard.rel, str(e)])
        if bar:
            bar.update(1)
    if bar:
        bar.close()
    return results, failed


def _worker(jobs, cfg, filt, seeds, claim, turn, cond, queue):
    """Claim files in order and prepare them; decide a held file when its turn comes, else prepare one more
    file ahead (at most `_AHEAD` held) instead of waiting, so neither core idles at the ordered hand-over."""
    held: list[list] = []  # [index, prepared or None, error or None, timings], ascending index
    decided: list[list] = []
    exhausted = False
    while held or decided or not exhausted:
        if held:
            with cond:
                up = turn.value == held[0][0]
            if up:
                i, prep, err, tm = held.pop(0)
                t0 = time.perf_counter()
                try:
                    if prep is not None:
                        for b in prep.batches:
                            _decide(b, cfg, filt, seeds)
                finally:
                    with cond:
                        turn.value = i + 1
                        cond.notify_all()
                tm["decide_s"] = time.perf_counter() - t0
                decided.append([i, prep, err, tm])
                continue
        if decided:
            queue.put(_finish_held(*decided.pop(0), cfg))
            continue
        if not exhausted and len(held) < _AHEAD:
            with claim.get_lock():
                i = claim.value
                claim.value += 1
            if i >= len(jobs):
                exhausted = True
                continue
            prep, err = None, None
            t0 = time.perf_counter()
            try:
                prep = _prepare(jobs[i], cfg, seeds)
            except (ShardFailed, DclmError) as e:
                err = str(e)
            except Exception:
                err = traceback.format_exc()
            held.append([i, prep, err, {"prepare_s": time.perf_counter() - t0, "wait_s": 0.0}])
            continue
        t0 = time.perf_counter()
        with cond:
            while turn.value != held[0][0]:
                cond.wait()
        held[0][3]["wait_s"] += time.perf_counter() - t0


def _finish_held(i, prep, err, tm, cfg):
    if prep is not None:
        t0 = time.perf_counter()
        try:
            res = _finish(prep, cfg)
            res.update(tm, finish_s=time.perf_counter() - t0)
            return i, res, None
        except (ShardFailed, DclmError) as e:
            err = str(e)
        except Exception:
            err = traceback.format_exc()
    return i, None, err


def _run_parallel(jobs, cfg, filt, seeds, threads):
    import multiprocessing as mp
    import queue as queue_mod

    ctx = mp.get_context("fork")
    claim = ctx.Value("q", 0)
    turn = ctx.Value("q", 0, lock=False)
    cond = ctx.Condition()
    queue = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(jobs, cfg, filt, seeds, claim, turn, cond, queue), daemon=True)
             for _ in range(threads)]
    gc.freeze()  # keep the collector from touching (and so copying) the parent's objects in every worker
    for p in procs:
        p.start()
    gc.unfreeze()
    results: dict[int, dict] = {}
    failed = []
    bar = _progress(len(jobs), cfg.progress)
    done = 0
    try:
        while done < len(jobs):
            try:
                i, res, err = queue.get(timeout=1.0)
            except queue_mod.Empty:
                dead = [p for p in procs if p.exitcode not in (None, 0)]
                if dead:
                    raise DclmError(f"a bff worker died (exit code {dead[0].exitcode}; out of memory?)") from None
                continue
            done += 1
            if err is None:
                results[i] = res
            else:
                failed.append([jobs[i].shard.rel, err.strip().splitlines()[-1] if "\n" in err.strip() else err])
                if "\n" in err.strip():
                    logger.error("bff failed on %s:\n%s", jobs[i].shard.rel, err)
            if bar:
                bar.update(1)
        for p in procs:
            p.join()
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
        if bar:
            bar.close()
    return [results[i] for i in sorted(results)], sorted(failed)
