"""`dclm tokenize-shuffle`: pages -> fixed-length token contexts -> bounded-memory global shuffle -> shards.

The run, in the order it happens: plan (plan.py) -> tokenize each file (encode.py) -> scatter each file into
seeded buckets -> sort and write each bucket, then join the shards straddling buckets (buckets.py) ->
manifest, index.json and DCLM's reference JSON (reference.py). Every job runs through the runtime's job
runner (process pool or Ray, same bytes) and leaves a digest-checked done marker under OUTPUT/.tokshuf/_done,
so a rerun resumes where it stopped; the scratch folder is removed once the dataset is complete.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import shutil
import time

from dclm.errors import DclmError
from dclm.runtime.config import ConfigError, replace
from dclm.runtime.jobs import resolve_workers, shared_pool
from dclm.runtime.resume import digest, input_fingerprint, is_done
from dclm.tokenize import shards as S
from dclm.tokenize.buckets import (BucketJob, EdgeJob, ScatterJob, bucket_count, fit_workers, join_pieces,
                                   plan_memory, positional_bucket_size, positional_spans, scatter_file,
                                   scatter_stem, shuffle_bucket, sorted_spans)
from dclm.tokenize.config import WORK, TokenizeConfig, TokenizeResult
from dclm.tokenize.encode import TokenizeJob, contexts_path, marker_rel, tokenize_file
from dclm.tokenize.mix import UNKNOWN
from dclm.tokenize.plan import Plan, make_plan
from dclm.tokenize.reference import write_index, write_json, write_reference
from dclm.tokenize.tokenizer import Encoder, load_encoder

log = logging.getLogger(__name__)


def tokenize_shuffle(inputs: str | list[str] | tuple[str, ...] | None = None, output: str | None = None, *,
                     encoder: Encoder | None = None, **params) -> TokenizeResult:
    """`run_tokenize_shuffle` with the config's fields as keyword arguments."""
    return run_tokenize_shuffle(TokenizeConfig(input=inputs or (), output=output, **params), encoder=encoder)


def run_tokenize_shuffle(config: TokenizeConfig, encoder: Encoder | None = None) -> TokenizeResult:
    """Tokenize page shards into shuffled `seqlen`-token contexts in open_lm tars plus native .bin shards.

    A rerun resumes; a finished identical run is a no-op; `append` adds shards to a finished dataset made
    with the same tokenizer and seqlen. `encoder` overrides `config.tokenizer` (library callers)."""
    t0 = time.time()
    if not config.output:
        raise ConfigError("output", "needed: the folder to write the token dataset to")
    if not config.input and not config.mix:
        raise ConfigError("input", "needed: page shards or folders (or a mix YAML with `paths:`)")
    encoder = encoder or load_encoder(config.tokenizer)
    plan = make_plan(config, encoder.info)
    out = config.output
    existing, first_shard = _prepare_output(config, plan)
    if existing is not None and any(r["plan"] == plan.hash for r in existing["runs"]):
        r = next(r for r in existing["runs"] if r["plan"] == plan.hash)
        return _result(existing, r, out, time.time() - t0, skipped=True)
    work = os.path.join(out, WORK)
    _prepare_work(work, plan)
    st = plan.settings
    workers = resolve_workers(config.workers)
    if config.workers == 0:  # all cores the memory budget allows
        workers = fit_workers(config.memory_budget, workers, st)
    plan_memory(config.memory_budget, workers, st)  # fail on a budget that cannot work before tokenizing

    with shared_pool(workers) if not config.ray else contextlib.nullcontext():
        return _run(config, plan, encoder, work, existing, first_shard, workers, t0)


def _run(config: TokenizeConfig, plan: Plan, encoder: Encoder, work: str, existing: dict | None, first_shard: int,
         workers: int, t0: float) -> TokenizeResult:
    st, out = plan.settings, config.output
    stage_s = {}
    t1 = time.time()
    metas = _tokenize(config, plan, encoder, work)
    stage_s["tokenize"] = time.time() - t1
    documents = sum(m["documents"] for m in metas)
    if documents == 0 and not plan.presized:
        raise DclmError(f"empty input: no documents with a '{st.text_key}' field in {len(plan.files)} file(s)")
    totals = _source_totals(metas, plan)
    freqs = (plan.mix.frequencies_for({s: t["contexts"] * st.seqlen for s, t in totals.items()})
             if plan.mix else {UNKNOWN: 1.0})
    freq_of = [freqs[plan.sources_of[sh.url]] for sh in plan.files]
    mem = plan_memory(config.memory_budget, workers, st, max(freqs.values()))
    expected = sum(math.ceil(m["contexts"] * f) for m, f in zip(metas, freq_of))
    n_buckets = bucket_count(expected, mem, st.shuffle, config.buckets, workers)

    t1 = time.time()
    sources = [m.get("src") or contexts_path(work, m["i"]) for m in metas]
    if st.shuffle or any(f != 1.0 for f in freq_of):
        scattered = _scatter(config, plan, metas, sources, freq_of, work, n_buckets, mem.scatter_contexts)
        counts = [sm["contexts"] for sm in scattered]
        sources = [scatter_stem(work, sm["i"]) + ".bin" for sm in scattered]
    else:
        scattered, counts = None, [m["contexts"] for m in metas]
    stage_s["scatter"] = time.time() - t1
    t1 = time.time()
    if st.shuffle:
        spans = sorted_spans([sm for sm in scattered if sm["contexts"]], work, n_buckets)
    else:
        per = positional_bucket_size(sum(counts), mem, st.chunk_size, workers)
        spans = positional_spans(list(zip(sources, counts)), per)
    # every bucket holds contexts of every file: one changed file (e.g. re-tokenized) redoes them all
    sources_digest = digest([input_fingerprint(p) for p, n in zip(sources, counts) if n])
    rows = _write_buckets(config, plan, spans, work, first_shard, sources_digest)
    stage_s["write"] = time.time() - t1

    run = _run_record(plan, metas, totals, freqs, counts, rows, len(spans), first_shard, workers, config.ray)
    run["stage_seconds"] = {k: round(v, 3) for k, v in stage_s.items()}
    run["seconds"] = round(time.time() - t0, 3)
    index = _write_dataset(config, plan, existing, rows, run)
    shutil.rmtree(work, ignore_errors=True)
    return _result(index, run, out, time.time() - t0, skipped=False)


def _run_record(plan: Plan, metas, totals, freqs, counts, rows, n_buckets, first_shard, workers, ray) -> dict:
    """This run's entry in index.json's `runs`: what went in, what came out, per source."""
    st = plan.settings
    sources = {}
    for s, t in totals.items():
        realised = sum(n for n, sh in zip(counts, plan.files) if plan.sources_of[sh.url] == s)
        sources[s] = {**t, "frequency": freqs.get(s, 1.0), "sequences": realised, "tokens_out": realised * st.seqlen}
    total = {k: sum(m[k] for m in metas) for k in ("documents", "rejected", "fallback_documents", "pad_tokens",
                                                    "dropped_tokens", "tokens")}
    return {"plan": plan.hash, "first_shard": first_shard, "num_shards": len(rows),
            "num_sequences": sum(r["num_sequences"] for r in rows), "documents": total["documents"],
            "rejected": total["rejected"], "fallback_documents": total["fallback_documents"],
            "pad_tokens": total["pad_tokens"], "dropped_tokens": total["dropped_tokens"],
            "doc_tokens": total["tokens"], "inputs": plan.inputs, "files": len(plan.files), "sources": sources,
            "seed": st.seed, "shuffle": st.shuffle, "tail": st.tail,
            "sampling_yaml": plan.mix.raw if plan.mix else None, "buckets": n_buckets, "workers": workers,
            "engine": "ray" if ray else "pool"}


def _write_dataset(config: TokenizeConfig, plan: Plan, existing: dict | None, rows: list[dict], run: dict) -> dict:
    """manifest.jsonl, index.json and the reference JSON for every shard so far; stale shard files removed."""
    out, st, info = config.output, plan.settings, plan.info
    all_rows = (existing["shards"] if existing else []) + rows
    S.write_manifest(out, all_rows)
    _remove_stale(out, {r["shard"] for r in all_rows})
    index = {"format": S.FORMAT, "dtype": st.dtype, "seqlen": st.seqlen, "eot_id": info.eot_id, "pad_id": info.pad_id,
             "vocab_size": info.vocab_size, "tokenizer": info.to_dict(), "shards": all_rows,
             "num_sequences": sum(r["num_sequences"] for r in all_rows),
             "runs": (existing["runs"] if existing else []) + [run]}
    name = config.name or (existing or {}).get("name") or os.path.basename(os.path.realpath(out))
    index["name"] = name
    index["reference"] = os.path.basename(write_reference(out, index, name, config.dataset_url))
    write_index(out, index)
    return index


def _prepare_output(config: TokenizeConfig, plan: Plan) -> tuple[dict | None, int]:
    """(the finished dataset already in OUTPUT or None, the first shard number of this run)."""
    out = config.output
    if config.overwrite and os.path.exists(out):
        if os.listdir(out) and not (os.path.exists(os.path.join(out, S.INDEX_NAME))
                                    or os.path.exists(os.path.join(out, WORK))):
            raise ConfigError("overwrite", f"refuses to delete {out}: it is not a tokenize-shuffle output folder")
        shutil.rmtree(out)
    os.makedirs(out, exist_ok=True)
    existing = S.read_index(out)
    if existing is None:
        return None, 0
    info = plan.info
    if existing["tokenizer"]["sha256"] != info.sha256:
        raise DclmError(f"tokenizer mismatch: {out} holds shards made with {existing['tokenizer']['name']} "
                        f"(sha256 {existing['tokenizer']['sha256'][:12]}), not {info.name} (sha256 {info.sha256[:12]})")
    if any(r["plan"] == plan.hash for r in existing["runs"]):
        return existing, 0
    if not config.append:
        raise DclmError(f"{out} already holds a token dataset made from other inputs or settings; pass --append "
                        f"to add to it, --overwrite to replace it, or choose another --output")
    if existing["seqlen"] != plan.settings.seqlen:
        raise DclmError(f"seqlen mismatch: {out} holds {existing['seqlen']}-token contexts, not {plan.settings.seqlen}")
    return existing, len(existing["shards"])


def _prepare_work(work: str, plan: Plan) -> None:
    """Keep an unfinished run's scratch folder only if it was made by this very plan."""
    import json

    plan_file = os.path.join(work, "plan.json")
    if os.path.isdir(work):
        try:
            with open(plan_file, encoding="utf-8") as f:
                old = json.load(f).get("hash")
        except (OSError, ValueError):
            old = None
        if old != plan.hash:
            log.info("discarding an unfinished run with other inputs or settings in %s", work)
            shutil.rmtree(work)
    for d in ("tok", "scatter", "pieces"):
        os.makedirs(os.path.join(work, d), exist_ok=True)
    write_json(plan_file, {"hash": plan.hash, "plan": plan.record})


def _tokenize(config: TokenizeConfig, plan: Plan, encoder: Encoder, work: str) -> list[dict]:
    metas: dict[int, dict] = {}
    todo = []
    for i, sh in enumerate(plan.files):
        d = digest(plan.hash, "tokenize", i, input_fingerprint(sh.url))  # size + mtime: an edited input reruns
        if sh.url in plan.presized:
            metas[i] = {"i": i, "rel": sh.rel, "documents": 0, "rejected": 0, "tokens": 0,
                        "contexts": plan.presized[sh.url], "pad_tokens": 0, "dropped_tokens": 0,
                        "fallback_documents": 0, "src": sh.url}
        elif (done := is_done(work, marker_rel(i), d)) is not None:
            metas[i] = done
        else:
            todo.append(TokenizeJob(i, sh.url, sh.rel, work, config.output, plan.settings, encoder, d))
    for m in config.run(tokenize_file, todo, desc="tokenize", unit="file"):
        metas[m["i"]] = m
    return [metas[i] for i in range(len(plan.files))]


def _scatter(config, plan: Plan, metas, sources, freq_of, work, n_buckets, run_contexts) -> list[dict]:
    done: dict[int, dict] = {}
    todo = []
    for m, src, f in zip(metas, sources, freq_of):
        i = m["i"]
        d = digest(plan.hash, "scatter", i, n_buckets, input_fingerprint(src))
        if m["contexts"] == 0:
            done[i] = {"i": i, "contexts": 0, "runs": []}
        elif (stats := is_done(work, f"scatter/{i:06d}", d)) is not None:
            done[i] = stats
        else:
            todo.append(ScatterJob(i, plan.files[i].rel, src, work, plan.settings, f, n_buckets, run_contexts, d))
    for sm in config.run(scatter_file, todo, desc="scatter", unit="file"):
        done[sm["i"]] = sm
    return [done[m["i"]] for m in metas]


def _write_buckets(config, plan: Plan, spans, work: str, first_shard: int, sources_digest: str) -> list[dict]:
    """Shuffle + write every bucket, then join the shards that straddle buckets; the shard rows in order."""
    st = plan.settings
    sizes = [sum(s.hi - s.lo for s in sp) for sp in spans]
    total = sum(sizes)
    C = st.chunk_size
    jobs, results, holders = [], {}, {}
    start = 0
    for b, (sp, n) in enumerate(zip(spans, sizes)):
        d = digest(plan.hash, "bucket", b, start, start + n, first_shard, sources_digest)
        for k in range(start // C, (start + n - 1) // C + 1) if n else ():
            holders.setdefault(k, []).append(b)
        if (stats := is_done(work, f"bucket/{b:06d}", d)) is not None:
            results[b] = stats
        elif n:
            jobs.append(BucketJob(b, tuple(sp), start, start + n, total, first_shard, config.output, work, st, d))
        start += n
    for job, stats in zip(jobs, config.run(shuffle_bucket, jobs, desc="shuffle+write", unit="bucket")):
        results[job.b] = stats
    rows = {int(r["shard"].split("_")[1]) - first_shard: r for stats in results.values() for r in stats["shards"]}
    edges = []
    for k in sorted({k for stats in results.values() for k in stats["pieces"]}):
        d = digest(plan.hash, "edge", k, holders[k], first_shard, sources_digest)
        if (row := is_done(work, f"edge/{k:08d}", d)) is not None:
            rows[k] = row
        else:
            edges.append(EdgeJob(k, tuple(holders[k]), first_shard, config.output, work, st, d))
    for job, row in zip(edges, config.run(join_pieces, edges, desc="join shards", unit="shard")):
        rows[job.k] = row
    return [rows[k] for k in range(math.ceil(total / C))]


def _source_totals(metas: list[dict], plan: Plan) -> dict:
    totals: dict[str, dict] = {}
    for m in metas:
        s = plan.sources_of[plan.files[m["i"]].url]
        t = totals.setdefault(s, {"files": 0, "documents": 0, "tokens": 0, "contexts": 0})
        t["files"] += 1
        for key in ("documents", "tokens", "contexts"):
            t[key] += m[key]
    return dict(sorted(totals.items()))


def _remove_stale(out: str, listed: set[str]) -> None:
    """Shards left by an abandoned run with other inputs, and temp files of a killed run's writers."""
    for f in os.listdir(out):
        stem, ext = os.path.splitext(f)
        if (f.startswith("shard_") and ext in (".tar", ".bin") and stem not in listed) or \
                (f.startswith(".tmp-") and "-shard_" in f):
            os.unlink(os.path.join(out, f))


def _result(index: dict, run: dict, out: str, seconds: float, skipped: bool) -> TokenizeResult:
    return TokenizeResult(
        output=str(out), num_shards=run["num_shards"], num_sequences=run["num_sequences"],
        num_tokens=run["num_sequences"] * index["seqlen"], documents=run["documents"], rejected=run["rejected"],
        fallback_documents=run["fallback_documents"], pad_tokens=run["pad_tokens"],
        dropped_tokens=run["dropped_tokens"], sources=run["sources"], seconds=seconds,
        reference=os.path.join(out, index.get("reference", "")), skipped=skipped)


def tokenize_pages(pages: list[dict], output: str, *, encoder: Encoder | None = None, **params) -> TokenizeResult:
    """`tokenize_shuffle` over in-memory pages (e.g. the demo's): they are written to OUTPUT/.pages first."""
    from dclm.io import write_pages

    config = TokenizeConfig(output=output, **{"workers": 1, "progress": False, **params})
    if config.overwrite and os.path.isdir(output):
        if not (os.path.isfile(os.path.join(output, S.INDEX_NAME)) or os.path.isdir(os.path.join(output, WORK))):
            raise ConfigError("overwrite", f"refuses to delete {output}: it is not a tokenize-shuffle output folder")
        shutil.rmtree(output)
    staging = os.path.join(output, ".pages")
    write_pages(os.path.join(staging, "pages.jsonl"), pages)
    try:
        return run_tokenize_shuffle(replace(config, input=(staging,), overwrite=False), encoder=encoder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)

