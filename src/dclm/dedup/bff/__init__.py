"""BFF: DCLM's Bloom-filter n-gram deduplication (`dedup/bff/src/main.rs` in DCLM), same decisions, reproducible.

Each document is split into paragraphs (UTF-8 byte spans; every paragraph after the first starts with
its `\\n`), tokenised with UAX #29 word segmentation (`segment.py`), and its n-grams of
`max_ngram_size` tokens are checked against a Bloom filter in document order; what survives is
inserted. The remove types follow bff exactly except:

* `both`: bff's paragraph cursor never advances, so every n-gram after the first paragraph lands in
  the cross-paragraph bucket and only the first paragraph can ever be removed. Here each n-gram
  belongs to the paragraph that holds all its tokens; cross-paragraph n-grams are inserted
  only when no paragraph they touch was removed.
* `naive-both`: bff's document pass inserts every n-gram before the paragraph pass runs, so each
  paragraph then finds its own n-grams and is removed. Here the document's n-grams are inserted after
  its paragraph pass.
* `num_hashers` is honoured (bff recomputes the optimal count and ignores it), and a filter that does
  not fit in available memory is refused (bff silently shrinks it to 90% of RAM).
* Hashes are seeded (`seed`, default 0), input files are processed in sorted order (or a seeded
  shuffle with `shuffle_files`), and the results do not depend on `workers` (bff's `--threads`).

Modules, by concern:

    config.py     BffConfig, the remove types
    run.py        run_bff -> BffResult: virtual shards as jobs, one filter each
    shard.py      one shard's files in order: bff's own scheduler (why not the shared runner: its docstring)
    batch.py      one batch of documents: analyse, decide, output (routes arrays; decides nothing itself)
    state.py      the typed state of a batch between those steps
    kernels.py    numba: tokeniser, n-gram units, every remove type's filter decisions (the fast path)
    bloom.py      filter sizing (bff's formulas), shared memory, file format
    hashing.py    the hash definitions in plain Python
    segment.py    the word-break property table and the plain UAX #29 tokeniser
    reference.py  the plain twin of the decisions, used only by the tests (shares no decision code with kernels)

The names are loaded on first use, so that building the CLI parser stays cheap.
"""

from dclm.lazy import lazy_exports

__all__ = ["BffConfig", "BffResult", "run_bff"]
__getattr__ = lazy_exports(__name__, {"BffConfig": "dclm.dedup.bff.config", "BffResult": "dclm.dedup.bff.run",
                                      "run_bff": "dclm.dedup.bff.run"})
