"""`tokenize_shuffle`: pages -> fixed-length token contexts -> bounded-memory global shuffle -> shards.

Stages, each resumable (a finished unit leaves an atomic marker under OUTPUT/.tokshuf and is skipped on rerun):

1. tokenize (per input file, in worker processes): documents -> ids + EOT, concatenated per input file and
   cut into contexts of exactly `seqlen`; the file's tail is padded with PAD (tokshuf-rs) or dropped.
2. scatter (per input file): each context is repeated by its source's mixing frequency, every copy draws a
   random 64-bit key from an RNG seeded by (seed, file path), and copies are written grouped by bucket
   (the key's top bits), in runs no larger than the memory budget allows.
3. shuffle + write (buckets in order): a bucket is gathered from every file, sorted by key, and cut into
   shards of `chunk_size` contexts, which worker processes encode into both views.

Sorting by random keys, range-partitioned into buckets, gives the same order for any bucket count, worker
count or memory budget: output bytes depend only on the inputs, the seed and the settings.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import multiprocessing as mp
import os
import shutil
import time
import uuid
from collections import deque
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from dclm.errors import DclmError
from dclm.io import atomic_open, iter_pages, list_shards
from dclm.tokenize import shards as S
from dclm.tokenize.mix import UNKNOWN, Mix, copies, load_mix
from dclm.tokenize.tokenizer import NEOX_NAME, Encoder, load_encoder

log = logging.getLogger(__name__)

WORK = ".tokshuf"
DEFAULT_SEED = 1234  # tokshuf-rs's
DEFAULT_BUDGET = 4 * 1024**3
# The budget covers what tokenize-shuffle itself uses: the interpreter with numpy and the tokenizer (as
# the CLI measures, ~190-230 MB PSS), each forked worker's private pages, shards in flight and buckets.
# Memory a library caller already held is not counted.
BASELINE_BYTES = 256 * 1024**2
WORKER_GROWTH = 64 * 1024**2
_DOC_BATCH_CHARS = 1 << 21


@dataclass
class TokenizeResult:
    output: str
    num_shards: int
    num_sequences: int
    num_tokens: int
    documents: int
    rejected: int
    fallback_documents: int
    pad_tokens: int
    dropped_tokens: int
    sources: dict
    seconds: float
    reference: str
    skipped: bool = False

    @property
    def tokens_per_second(self) -> float:
        return self.num_tokens / self.seconds if self.seconds > 0 else 0.0


@dataclass
class _Settings:
    seqlen: int
    seed: int
    shuffle: bool
    tail: str
    text_key: str
    chunk_size: int
    dtype: str
    eot: int
    pad: int


# ------------------------------------------------------------------ workers

_ENCODER: Encoder | None = None
_TOKENS = None  # shared counter of tokens encoded so far, for the progress bar


class _Count:
    """A stand-in for multiprocessing.Value when everything runs in one process."""

    def __init__(self):
        self.value = 0

    def get_lock(self):
        import contextlib

        return contextlib.nullcontext()


def _init_worker(encoder: Encoder | None, counter) -> None:
    global _ENCODER, _TOKENS
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    _ENCODER = encoder
    _TOKENS = counter


def _file_seed(rel: str) -> int:
    return int.from_bytes(hashlib.sha256(rel.encode()).digest()[:8], "little")


def _tokenize_file(task: tuple) -> dict:
    """Stage 1 for one input file: write its contexts to tok/<i>.bin and its accounting to tok/<i>.json."""
    i, url, rel, work, st = task
    st = _Settings(**st)
    enc = _ENCODER
    assert enc is not None
    dtype = np.dtype(st.dtype)
    rejects: list[dict] = []

    def on_reject(lineno, reason, raw):
        rejects.append({"file": rel, "line": lineno, "reason": reason})

    docs = tokens = contexts = 0
    fallback0 = enc.fallback_docs
    pending = np.zeros(0, dtype=dtype)
    bin_path = os.path.join(work, "tok", f"{i:06d}.bin")
    with atomic_open(bin_path, "wb") as out:

        def flush(batch: list[str], first: int) -> None:
            nonlocal docs, tokens, contexts, pending
            try:
                encoded = enc.encode(batch)
            except Exception:  # e.g. lone surrogates: find the culprits one by one so the rest are kept
                encoded = []
                for k, text in enumerate(batch):
                    try:
                        encoded.append(enc.encode([text])[0])
                    except Exception as e:
                        rejects.append({"file": rel, "line": None, "document": first + k, "text": text[:200],
                                        "reason": f"tokenizer error: {str(e).splitlines()[0] if str(e) else type(e).__name__}"})
            flat: list[int] = []
            for ids in encoded:
                flat += ids
                flat.append(st.eot)
            docs += len(encoded)
            tokens += len(flat)
            with _TOKENS.get_lock():
                _TOKENS.value += len(flat)
            buf = np.concatenate([pending, np.asarray(flat, dtype=dtype)])
            full = len(buf) // st.seqlen * st.seqlen
            if full:
                out.write(_bytes_view(buf[:full]))
                contexts += full // st.seqlen
            pending = buf[full:]

        batch: list[str] = []
        size = first = 0
        for page in iter_pages(url, on_reject=on_reject, text_key=st.text_key):
            text = page[st.text_key]
            if isinstance(text, list):  # some DCLM shards keep text as a list of lines
                text = "\n".join(map(str, text))
            batch.append(text)
            size += len(text)
            if size >= _DOC_BATCH_CHARS:
                flush(batch, first)
                first += len(batch)
                batch, size = [], 0
        if batch:
            flush(batch, first)
        pad = dropped = 0
        if len(pending):
            if st.tail == "pad":
                pad = st.seqlen - len(pending)
                out.write(np.concatenate([pending, np.full(pad, st.pad, dtype=dtype)]).tobytes())
                contexts += 1
            else:
                dropped = len(pending)
    meta = {"i": i, "rel": rel, "documents": docs, "rejected": len(rejects), "tokens": tokens, "contexts": contexts,
            "pad_tokens": pad, "dropped_tokens": dropped, "fallback_documents": enc.fallback_docs - fallback0,
            "rejects": rejects}
    _write_json(os.path.join(work, "tok", f"{i:06d}.json"), meta)
    return meta


def _scatter_file(task: tuple) -> dict:
    """Stage 2 for one file: copies by mixing frequency, a random key per copy, runs grouped by bucket."""
    i, rel, src, work, st, freq, n_buckets, chunk_contexts = task
    st = _Settings(**st)
    dtype = np.dtype(st.dtype)
    src = src or os.path.join(work, "tok", f"{i:06d}.bin")
    n = os.path.getsize(src) // (st.seqlen * dtype.itemsize)
    fs = _file_seed(rel)
    rng_copies = np.random.default_rng([st.seed, fs, 1])
    rng_keys = np.random.default_rng([st.seed, fs, 2])
    shift = 64 - int(math.log2(n_buckets))
    runs, total = [], 0
    row_bytes = st.seqlen * dtype.itemsize
    with open(src, "rb") as fin, atomic_open(os.path.join(work, "scatter", f"{i:06d}.bin"), "wb") as fout, \
            atomic_open(os.path.join(work, "scatter", f"{i:06d}.keys"), "wb") as fkeys:
        for start in range(0, n, chunk_contexts):
            m = min(chunk_contexts, n - start)
            fin.seek(start * row_bytes)
            ctx = np.fromfile(fin, dtype=dtype, count=m * st.seqlen).reshape(m, st.seqlen)
            if freq != 1.0:
                ctx = np.repeat(ctx, copies(rng_copies, m, freq), axis=0)
            keys = rng_keys.bit_generator.random_raw(len(ctx)).astype(np.uint64)
            if n_buckets > 1:
                buckets = (keys >> np.uint64(shift)).astype(np.int64) if shift < 64 else np.zeros(len(ctx), np.int64)
                order = np.argsort(buckets, kind="stable")
                ctx, keys = ctx[order], keys[order]
                counts = np.bincount(buckets, minlength=n_buckets)
            else:
                counts = np.array([len(ctx)])
            fout.write(_bytes_view(ctx))
            fkeys.write(_bytes_view(keys))
            offsets = np.concatenate([[0], np.cumsum(counts)]) + total
            runs.append(offsets.tolist())
            total += len(ctx)
    meta = {"i": i, "contexts": total, "runs": runs, "buckets": n_buckets}
    _write_json(os.path.join(work, "scatter", f"{i:06d}.json"), meta)
    return meta


def _write_shard_task(task: tuple) -> dict:
    directory, k, contexts, dtype = task
    return S.write_shard(directory, k, contexts, np.dtype(dtype))


# ------------------------------------------------------------------ helpers


def _write_json(path: str, obj) -> None:
    """Atomic (temp + rename) but not fsynced: these are markers and metadata under the local output folder,
    written after the data they describe was fsynced, so a lost marker only means redoing that unit."""
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(json.dumps(obj, indent=1, sort_keys=True).encode())
    os.replace(tmp, path)


def _write_json_durable(path: str, obj) -> None:
    with atomic_open(path, "wb") as f:
        f.write(json.dumps(obj, indent=1, sort_keys=True).encode())


def _read_json(path: str):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


class _Runner:
    """Runs tasks in-process (workers == 1) or over a fork pool, results in submission order."""

    def __init__(self, workers: int, encoder: Encoder | None):
        self.workers = workers
        self.pool = None
        if workers > 1:
            ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
            self.tokens = ctx.Value("q", 0)
            self.pool = ctx.Pool(workers, initializer=_init_worker, initargs=(encoder, self.tokens))
        else:
            self.tokens = _Count()
            _init_worker(encoder, self.tokens)

    def map_unordered(self, fn, tasks, tick=None):
        """Results as they finish; `tick()` is called about twice a second while waiting (pool only)."""
        if self.pool is None:
            for t in tasks:
                yield fn(t)
            return
        it = self.pool.imap_unordered(fn, tasks)
        while True:
            try:
                yield it.next(timeout=0.5)
            except mp.TimeoutError:
                if tick:
                    tick()
            except StopIteration:
                return

    def bounded(self, fn, tasks, window: int):
        """Apply fn to a lazy task stream with at most `window` tasks in flight (bounded memory)."""
        if self.pool is None:
            for t in tasks:
                yield fn(t)
            return
        inflight: deque = deque()
        for t in tasks:
            inflight.append(self.pool.apply_async(fn, (t,)))
            while len(inflight) >= window:
                yield inflight.popleft().get()
        while inflight:
            yield inflight.popleft().get()

    def close(self):
        if self.pool is not None:
            self.pool.close()
            self.pool.join()

    def terminate(self):
        if self.pool is not None:
            self.pool.terminate()
            self.pool.join()


def _bar(total, desc, unit, progress):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, unit_scale=unit == "tok", disable=not progress, dynamic_ncols=True,
                mininterval=0.5)


# ------------------------------------------------------------------ the run


def tokenize_shuffle(
    inputs: str | list[str] | None,
    output: str,
    tokenizer: str = NEOX_NAME,
    seqlen: int = 2049,
    seed: int = DEFAULT_SEED,
    shuffle: bool = True,
    mix: str | Mix | None = None,
    workers: int = 0,
    memory_budget: int = DEFAULT_BUDGET,
    chunk_size: int = 8192,
    tail: str = "pad",
    text_key: str = "text",
    name: str | None = None,
    dataset_url: str | None = None,
    append: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    encoder: Encoder | None = None,
    buckets: int | None = None,
) -> TokenizeResult:
    """Tokenize page shards into shuffled `seqlen`-token contexts in open_lm tars plus native .bin shards.

    Returns counts and the path of the dataset reference JSON. Rerunning resumes; a finished identical run
    is a no-op; `append` adds shards to a finished dataset made with the same tokenizer and seqlen.
    `buckets` forces the shuffle's bucket count (rounded up to a power of two); it never changes the output.
    """
    t0 = time.time()
    if seqlen < 2:
        raise DclmError("--seqlen must be at least 2")
    if chunk_size < 1:
        raise DclmError("--chunk-size must be at least 1")
    if tail not in ("pad", "drop"):
        raise DclmError("--tail must be 'pad' or 'drop'")
    if name is not None and (not name or "/" in name or name.startswith(".") or name in ("index", "manifest")):
        raise DclmError(f"--name {name!r} cannot name the reference JSON (no '/', no leading '.', not index/manifest)")
    workers = workers or os.cpu_count() or 1
    if isinstance(mix, str):
        mix = load_mix(mix)
    input_list = [inputs] if isinstance(inputs, str) else list(inputs or [])
    from_paths: dict[str, str] = {}
    if mix is not None:
        for s in mix.sources:
            for p in s["paths"]:
                for sh in list_shards(p):
                    from_paths.setdefault(sh.url, s["source"])
        input_list += mix.extra_paths()
    if not input_list:
        raise DclmError("no input: give --input paths or `paths:` in the mix YAML")
    encoder = encoder or load_encoder(tokenizer)
    info = encoder.info
    token_inputs = _token_dataset_inputs(input_list, info, seqlen)
    pages = [sh for p in input_list if p not in token_inputs for sh in list_shards(p)]
    shards_in = [sh for rows in token_inputs.values() for sh, _ in rows]
    files = sorted({sh.url: sh for sh in pages + shards_in}.values(), key=lambda sh: (sh.rel, sh.url))
    presized = {sh.url: n for rows in token_inputs.values() for sh, n in rows}
    if not files:
        raise DclmError(f"empty input: no page shards (.jsonl, .jsonl.gz, .jsonl.zst, .parquet) under {', '.join(input_list)}")
    dtype = S.token_dtype(info.vocab_size)
    st = _Settings(seqlen=seqlen, seed=seed, shuffle=shuffle, tail=tail, text_key=text_key, chunk_size=chunk_size,
                   dtype=dtype.str, eot=info.eot_id, pad=info.pad_id)
    sources_of = {sh.url: (mix.source_of(sh.url, from_paths) if mix else UNKNOWN) for sh in files}
    plan = {"files": [[sh.rel, sh.url, _size(sh.url)] for sh in files], "tokenizer": info.to_dict(),
            "settings": asdict(st), "mix": mix.raw if mix else None}
    plan_hash = hashlib.sha256(json.dumps(plan, sort_keys=True).encode()).hexdigest()

    out = Path(output)
    if overwrite and out.exists():
        if any(out.iterdir()) and not ((out / S.INDEX_NAME).exists() or (out / WORK).exists()):
            raise DclmError(f"--overwrite refuses to delete {out}: it is not a tokenize-shuffle output folder")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    work = out / WORK
    existing = S.read_index(str(out))
    first_shard = 0
    if existing is not None:
        if existing["tokenizer"]["sha256"] != info.sha256:
            raise DclmError(f"tokenizer mismatch: {out} holds shards made with {existing['tokenizer']['name']} "
                            f"(sha256 {existing['tokenizer']['sha256'][:12]}), not {info.name} (sha256 {info.sha256[:12]})")
        if any(r["plan"] == plan_hash for r in existing["runs"]):
            r = next(r for r in existing["runs"] if r["plan"] == plan_hash)
            return _result_from_index(existing, r, out, time.time() - t0)
        if not append:
            raise DclmError(f"{out} already holds a token dataset made from other inputs or settings; pass --append "
                            f"to add to it, --overwrite to replace it, or choose another --output")
        if existing["seqlen"] != seqlen:
            raise DclmError(f"seqlen mismatch: {out} holds {existing['seqlen']}-token contexts, not {seqlen}")
        first_shard = len(existing["shards"])
    if work.exists():
        old = _read_json(str(work / "plan.json")) if (work / "plan.json").is_file() else {}
        if old.get("hash") != plan_hash:
            log.info("discarding an unfinished run with other inputs or settings in %s", work)
            shutil.rmtree(work)
    for d in ("tok", "scatter", "shards"):
        (work / d).mkdir(parents=True, exist_ok=True)
    _write_json(str(work / "plan.json"), {"hash": plan_hash, "plan": plan})

    # fail on a budget that cannot work before spending time on tokenizing
    _plan_memory(memory_budget, workers, workers + 1, seqlen, dtype, chunk_size, 0, 1.0, shuffle, buckets)
    runner = _Runner(workers, encoder)
    stage_s = {}
    try:
        t1 = time.time()
        metas = _stage_tokenize(runner, files, presized, str(work), st, progress)
        stage_s["tokenize"] = time.time() - t1
        documents = sum(m["documents"] for m in metas)
        if documents == 0 and not presized:
            raise DclmError(f"empty input: no documents with a '{text_key}' field in {len(files)} file(s)")
        totals = _source_totals(metas, files, sources_of)
        freqs = mix.frequencies_for({s: t["contexts"] * seqlen for s, t in totals.items()}) if mix else {UNKNOWN: 1.0}
        window = workers + 1
        expected = sum(math.ceil(m["contexts"] * freqs[sources_of[files[m['i']].url]]) for m in metas)
        n_buckets, chunk_contexts = _plan_memory(memory_budget, workers, window, seqlen, dtype, chunk_size,
                                                 expected, max(freqs.values()), shuffle, buckets)
        needs_scatter = shuffle or any(f != 1.0 for f in freqs.values())
        t1 = time.time()
        if needs_scatter:
            smetas = _stage_scatter(runner, metas, files, sources_of, freqs, str(work), st, n_buckets,
                                    chunk_contexts, progress)
        else:
            smetas = [{"i": m["i"], "contexts": m["contexts"], "runs": [[0, m["contexts"]]], "src": m.get("src")}
                      for m in metas]
        stage_s["scatter"] = time.time() - t1
        t1 = time.time()
        rows = _stage_write(runner, smetas, str(work), str(out), st, n_buckets, first_shard, window,
                            needs_scatter, progress)
        stage_s["write"] = time.time() - t1
    except BaseException:
        runner.terminate()
        raise
    runner.close()

    source_report = {}
    for s, t in totals.items():
        f = freqs.get(s, 1.0)
        realised = sum(sm["contexts"] for sm in smetas if sources_of[files[sm["i"]].url] == s)
        source_report[s] = {**t, "frequency": f, "sequences": realised, "tokens_out": realised * seqlen}
    num_seq = sum(r["num_sequences"] for r in rows)
    run = {"plan": plan_hash, "first_shard": first_shard, "num_shards": len(rows), "num_sequences": num_seq,
           "documents": documents, "rejected": sum(m["rejected"] for m in metas),
           "fallback_documents": sum(m["fallback_documents"] for m in metas),
           "pad_tokens": sum(m["pad_tokens"] for m in metas), "dropped_tokens": sum(m["dropped_tokens"] for m in metas),
           "doc_tokens": sum(m["tokens"] for m in metas), "inputs": input_list, "files": len(files),
           "sources": source_report, "seed": seed, "shuffle": shuffle, "tail": tail,
           "sampling_yaml": mix.raw if mix else None, "buckets": n_buckets, "workers": workers,
           "stage_seconds": {k: round(v, 3) for k, v in stage_s.items()}, "seconds": round(time.time() - t0, 3)}
    rejects = [r for m in metas for r in m["rejects"]]
    if rejects:
        with atomic_open(str(out / f"rejects_{plan_hash[:12]}.jsonl"), "wb") as f:
            f.write(b"".join(json.dumps(r).encode() + b"\n" for r in rejects))
    all_rows = (existing["shards"] if existing else []) + rows
    S.write_manifest(str(out), all_rows)
    listed = {r["shard"] for r in all_rows}
    for stale in out.glob("shard_*.*"):  # left by an abandoned run with other inputs
        if stale.suffix in (".tar", ".bin") and stale.stem not in listed:
            stale.unlink()
    for partial in out.glob(".tmp-*-shard_*"):  # temp files of a killed run's writers
        partial.unlink()
    index = {"format": S.FORMAT, "dtype": dtype.str, "seqlen": seqlen, "eot_id": info.eot_id, "pad_id": info.pad_id,
             "vocab_size": info.vocab_size, "tokenizer": info.to_dict(), "shards": all_rows,
             "num_sequences": sum(r["num_sequences"] for r in all_rows),
             "runs": (existing["runs"] if existing else []) + [run]}
    name = name or (existing or {}).get("name") or out.resolve().name
    index["name"] = name
    ref_path = _write_reference(out, index, name, dataset_url, plan_hash)
    index["reference"] = os.path.basename(ref_path)
    _write_json_durable(str(out / S.INDEX_NAME), index)
    shutil.rmtree(work, ignore_errors=True)
    return _result_from_index(index, run, out, time.time() - t0, skipped=False)


def _plan_memory(budget: int, workers: int, window: int, seqlen: int, dtype: np.dtype, chunk_size: int,
                 expected: int, max_freq: float, shuffle: bool, buckets: int | None) -> tuple[int, int]:
    """(bucket count, scatter chunk in contexts) that keep the processes' memory under `budget`.

    While writing, the main process holds a bucket twice (rows and their sorted copy), up to `window` queued
    shard copies and one carried partial shard; each worker holds about two shards' worth. While
    scattering, each worker holds a chunk, its repeats and its bucket-sorted copy."""
    row = seqlen * dtype.itemsize + 8
    baseline = BASELINE_BYTES + workers * WORKER_GROWTH
    data = budget - baseline
    fixed = (window + 1 + 2 * workers) * chunk_size * seqlen * dtype.itemsize
    room = data - fixed
    if room < 16 * row:
        need = (baseline + fixed + 16 * row) / 2**20
        raise DclmError(f"--memory-budget {budget / 2**20:.0f}M is too small: the processes need ~{baseline / 2**20:.0f}M "
                        f"and {workers} workers with --chunk-size {chunk_size} need {fixed / 2**20:.0f}M more "
                        f"(give at least {need:.0f}M, or lower --chunk-size / --workers)")
    per_bucket = max(1, int(room / (2 * row * 1.25)))  # 25% headroom for the random spread of bucket sizes
    if not shuffle:
        n_buckets = 1
    elif buckets:
        n_buckets = 1 << max(0, math.ceil(math.log2(buckets)))
    else:
        n_buckets = 1 << max(0, math.ceil(math.log2(max(1, expected / per_bucket))))
    chunk = max(1, int(data / ((2 + math.ceil(max(max_freq, 1.0))) * workers * row)))
    return n_buckets, chunk


def _size(url: str) -> int | None:
    try:
        return os.path.getsize(url)
    except OSError:
        return None


def _source_totals(metas, files, sources_of) -> dict:
    totals: dict[str, dict] = {}
    for m in metas:
        s = sources_of[files[m["i"]].url]
        t = totals.setdefault(s, {"files": 0, "documents": 0, "tokens": 0, "contexts": 0})
        t["files"] += 1
        t["documents"] += m["documents"]
        t["tokens"] += m["tokens"]
        t["contexts"] += m["contexts"]
    return dict(sorted(totals.items()))


def _token_dataset_inputs(paths: list[str], info, seqlen: int) -> dict[str, list]:
    """Inputs that are finished token datasets (a folder with index.json): their native shards, to re-mix or
    re-shuffle without tokenizing again (tokshuf-rs's --shuffle-only)."""
    from dclm.io import Shard

    found = {}
    for p in paths:
        if "://" in p or not os.path.isfile(os.path.join(p, S.INDEX_NAME)):
            continue
        index = S.read_index(p)
        if index["tokenizer"]["sha256"] != info.sha256:
            raise DclmError(f"tokenizer mismatch: input {p} was made with {index['tokenizer']['name']}, not {info.name}")
        if index["seqlen"] != seqlen:
            raise DclmError(f"seqlen mismatch: input {p} holds {index['seqlen']}-token contexts, not {seqlen}")
        base = os.path.basename(os.path.abspath(p))
        found[p] = [(Shard(rel=f"{base}/{r['shard']}.bin", url=os.path.join(p, r["shard"] + ".bin")), r["num_sequences"])
                    for r in index["shards"]]
    return found


def _stage_tokenize(runner: _Runner, files, presized: dict, work: str, st: _Settings, progress: bool) -> list[dict]:
    metas: dict[int, dict] = {}
    todo = []
    for i, sh in enumerate(files):
        p = os.path.join(work, "tok", f"{i:06d}.json")
        if sh.url in presized:
            metas[i] = {"i": i, "rel": sh.rel, "documents": 0, "rejected": 0, "tokens": 0, "contexts": presized[sh.url],
                        "pad_tokens": 0, "dropped_tokens": 0, "fallback_documents": 0, "rejects": [], "src": sh.url}
        elif os.path.isfile(p):
            metas[i] = _read_json(p)
        else:
            todo.append((i, sh.url, sh.rel, work, asdict(st)))
    with _bar(None, "tokenize", "tok", progress) as bar:
        left = len(todo)

        def tick():
            bar.update(runner.tokens.value - bar.n)
            bar.set_postfix_str(f"{left} files left", refresh=False)

        for m in runner.map_unordered(_tokenize_file, todo, tick):
            metas[m["i"]] = m
            left -= 1
            tick()
    return [metas[i] for i in range(len(files))]


def _stage_scatter(runner, metas, files, sources_of, freqs, work, st, n_buckets, chunk_contexts, progress):
    done: dict[int, dict] = {}
    todo = []
    for m in metas:
        i = m["i"]
        p = os.path.join(work, "scatter", f"{i:06d}.json")
        if os.path.isfile(p) and _read_json(p)["buckets"] == n_buckets:
            done[i] = _read_json(p)
        elif m["contexts"] == 0:
            done[i] = {"i": i, "contexts": 0, "runs": []}
        else:
            todo.append((i, files[i].rel, m.get("src"), work, asdict(st), freqs[sources_of[files[i].url]], n_buckets,
                         chunk_contexts))
    with _bar(len(metas), "scatter", "file", progress) as bar:
        bar.update(len(done))
        for sm in runner.map_unordered(_scatter_file, todo):
            done[sm["i"]] = sm
            bar.update(1)
    return [done[m["i"]] for m in metas]


def _bytes_view(a: np.ndarray) -> memoryview:
    """The bytes of a C-contiguous array without copying them."""
    return memoryview(np.ascontiguousarray(a)).cast("B")


def _read_exactly(f, into: np.ndarray) -> None:
    view = _bytes_view(into)
    if f.readinto(view) != len(view):
        raise DclmError(f"{f.name} is shorter than its metadata says; rerun with --overwrite")


def _load_bucket(work: str, smetas, b: int, st: _Settings, scattered: bool) -> np.ndarray:
    """Bucket b's contexts from every file, sorted by their keys (or in input order without shuffling).
    Read straight into one preallocated array, so the bucket is held at most twice (while sorting)."""
    dtype = np.dtype(st.dtype)
    row_bytes = st.seqlen * dtype.itemsize
    spans = [(sm, off[b], off[b + 1]) for sm in smetas for off in sm["runs"] if off[b + 1] > off[b]]
    n = sum(hi - lo for _, lo, hi in spans)
    rows = np.empty((n, st.seqlen), dtype=dtype)
    keys = np.empty(n if st.shuffle else 0, dtype=np.uint64)
    at = 0
    for sm, lo, hi in spans:
        stem = os.path.join(work, "scatter" if scattered else "tok", f"{sm['i']:06d}")
        with open(stem + ".bin" if scattered or not sm.get("src") else sm["src"], "rb") as f:
            f.seek(lo * row_bytes)
            _read_exactly(f, rows[at:at + hi - lo])
        if st.shuffle:
            with open(stem + ".keys", "rb") as f:
                f.seek(lo * 8)
                _read_exactly(f, keys[at:at + hi - lo])
        at += hi - lo
    if st.shuffle and n:
        rows = rows[np.argsort(keys, kind="stable")]
    return rows


def _stage_write(runner, smetas, work, out, st: _Settings, n_buckets, first_shard, window, scattered, progress):
    sizes = np.zeros(n_buckets, dtype=np.int64)
    for sm in smetas:
        for off in sm["runs"]:
            sizes += np.diff(np.asarray(off, dtype=np.int64))
    total = int(sizes.sum())
    starts = np.concatenate([[0], np.cumsum(sizes)])
    C = st.chunk_size
    n_shards = (total + C - 1) // C
    done: dict[int, dict] = {}
    for k in range(n_shards):
        p = os.path.join(work, "shards", f"{k:08d}.json")
        if os.path.isfile(p):
            done[k] = _read_json(p)

    def tasks():
        parts: dict[int, list] = {}
        for b in range(n_buckets):
            lo, hi = int(starts[b]), int(starts[b + 1])
            if hi == lo:
                continue
            ks = range(lo // C, (hi - 1) // C + 1)
            if all(k in done for k in ks):
                continue
            rows = _load_bucket(work, smetas, b, st, scattered)
            pos = lo
            while pos < hi:
                k = pos // C
                end = min((k + 1) * C, hi)
                if k not in done:
                    # copies, so that queued shards and a carried partial shard do not pin this bucket
                    parts.setdefault(k, []).append(rows[pos - lo:end - lo].copy())
                    if end == min((k + 1) * C, total):
                        piece = parts.pop(k)
                        yield (out, first_shard + k, piece[0] if len(piece) == 1 else np.concatenate(piece), st.dtype)
                pos = end
            del rows

    with _bar(total * st.seqlen, "shuffle+write", "tok", progress) as bar:
        bar.update(sum(d["num_sequences"] for d in done.values()) * st.seqlen)
        for row in runner.bounded(_write_shard_task, tasks(), window):
            k = int(row["shard"].split("_")[1]) - first_shard
            _write_json(os.path.join(work, "shards", f"{k:08d}.json"), row)
            done[k] = row
            bar.update(row["num_sequences"] * st.seqlen)
    return [done[k] for k in range(n_shards)]


def _write_reference(out: Path, index: dict, name: str, dataset_url: str | None, plan_hash: str) -> str:
    """DCLM's tokenized dataset reference JSON (exp_data/datasets/tokenized layout)."""
    url = dataset_url or str(out.resolve())
    sep = "" if url.endswith("/") else "/"
    runs = index["runs"]
    size = sum(r["tar_bytes"] for r in index["shards"])
    ref = {
        "uuid": str(uuid.uuid5(uuid.NAMESPACE_URL, url + "#" + "+".join(r["plan"] for r in runs))),
        "name": name,
        "creation_date": datetime.now(timezone.utc).strftime("%Y_%m_%d-%H_%M_%S"),
        "dataset_url": url + sep,
        "manifest_url": url + sep + S.MANIFEST_NAME,
        "sources": [{"uuid": None, "name": p} for r in runs for p in r["inputs"]],
        "tokenized": True,
        "tokenizer": index["tokenizer"]["name"],
        "tokenizer_sha256": index["tokenizer"]["sha256"],
        "num_tokens": index["num_sequences"] * index["seqlen"],
        "size": size,
        "data_key": "json.gz",
        "sampling_yaml": runs[-1]["sampling_yaml"],
        "seqlen": index["seqlen"],
        "dcnlp_commit_hash": None,
        "dcnlp_diff": None,
    }
    path = out / f"{name}.json"
    _write_json_durable(str(path), ref)
    return str(path)


def _result_from_index(index: dict, run: dict, out: Path, seconds: float, skipped: bool = True) -> TokenizeResult:
    return TokenizeResult(
        output=str(out), num_shards=run["num_shards"], num_sequences=run["num_sequences"],
        num_tokens=run["num_sequences"] * index["seqlen"], documents=run["documents"], rejected=run["rejected"],
        fallback_documents=run["fallback_documents"], pad_tokens=run["pad_tokens"],
        dropped_tokens=run["dropped_tokens"], sources=run["sources"], seconds=seconds,
        reference=str(out / index.get("reference", "")), skipped=skipped)


def tokenize_pages(pages: list[dict], output: str, tokenizer: str = NEOX_NAME, seqlen: int = 2049,
                   seed: int = DEFAULT_SEED, chunk_size: int = 8192, workers: int = 1, progress: bool = False,
                   **kwargs) -> TokenizeResult:
    """`tokenize_shuffle` over in-memory pages (e.g. the demo's): they are written to OUTPUT/.pages first."""
    from dclm.io import write_pages

    if kwargs.pop("overwrite", False) and os.path.isdir(output):
        if not (os.path.isfile(os.path.join(output, S.INDEX_NAME)) or os.path.isdir(os.path.join(output, WORK))):
            raise DclmError(f"--overwrite refuses to delete {output}: it is not a tokenize-shuffle output folder")
        shutil.rmtree(output)
    staging = os.path.join(output, ".pages")
    write_pages(os.path.join(staging, "pages.jsonl"), pages)
    try:
        return tokenize_shuffle(staging, output, tokenizer=tokenizer, seqlen=seqlen, seed=seed, chunk_size=chunk_size,
                                workers=workers, progress=progress, **kwargs)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
