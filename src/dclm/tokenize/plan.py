"""What a tokenize-shuffle run reads and how: the sorted input files, their sources, the settings that decide
the output bytes, and the plan hash that names the run (in index.json's `runs` and the reference's uuid)."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass

from dclm.errors import DclmError
from dclm.io import Shard, list_shards
from dclm.runtime.config import ConfigError
from dclm.tokenize import shards as S
from dclm.tokenize.config import TokenizeConfig
from dclm.tokenize.mix import UNKNOWN, Mix, load_mix
from dclm.tokenize.tokenizer import TokenizerInfo


@dataclass(frozen=True)
class Settings:
    """Everything the jobs need besides their file; its fields are part of the plan hash (keep them stable)."""

    seqlen: int
    seed: int
    shuffle: bool
    tail: str
    text_key: str
    chunk_size: int
    dtype: str
    eot: int
    pad: int


@dataclass
class Plan:
    inputs: list[str]
    files: list[Shard]  # sorted by (rel, url): the input order
    presized: dict[str, int]  # url -> contexts, for native shards of token-dataset inputs (not tokenized again)
    sources_of: dict[str, str]  # url -> mixing source
    mix: Mix | None
    info: TokenizerInfo
    settings: Settings
    hash: str

    @property
    def record(self) -> dict:
        return {"files": [[sh.rel, sh.url, _size(sh.url)] for sh in self.files], "tokenizer": self.info.to_dict(),
                "settings": asdict(self.settings), "mix": self.mix.raw if self.mix else None}


def make_plan(config: TokenizeConfig, info: TokenizerInfo) -> Plan:
    mix = load_mix(config.mix) if config.mix else None
    inputs = list(config.input)
    from_paths: dict[str, str] = {}
    if mix is not None:
        for s in mix.sources:
            for p in s["paths"]:
                for sh in list_shards(p):
                    from_paths.setdefault(sh.url, s["source"])
        inputs += mix.extra_paths()
    if not inputs:
        raise ConfigError("input", "no input: give page shards or folders, or `paths:` in the mix YAML")
    token_inputs = token_dataset_inputs(inputs, info, config.seqlen)
    pages = [sh for p in inputs if p not in token_inputs for sh in list_shards(p)]
    native = [sh for rows in token_inputs.values() for sh, _ in rows]
    files = sorted({sh.url: sh for sh in pages + native}.values(), key=lambda sh: (sh.rel, sh.url))
    if not files:
        raise DclmError(f"empty input: no page shards (.jsonl, .jsonl.gz, .jsonl.zst, .parquet) under {', '.join(inputs)}")
    settings = Settings(seqlen=config.seqlen, seed=config.seed, shuffle=config.shuffle, tail=config.tail,
                        text_key=config.text_key, chunk_size=config.chunk_size,
                        dtype=S.token_dtype(info.vocab_size).str, eot=info.eot_id, pad=info.pad_id)
    plan = Plan(inputs=inputs, files=files,
                presized={sh.url: n for rows in token_inputs.values() for sh, n in rows},
                sources_of={sh.url: (mix.source_of(sh.url, from_paths) if mix else UNKNOWN) for sh in files},
                mix=mix, info=info, settings=settings, hash="")
    plan.hash = hashlib.sha256(json.dumps(plan.record, sort_keys=True).encode()).hexdigest()
    return plan


def token_dataset_inputs(paths: list[str], info: TokenizerInfo, seqlen: int) -> dict[str, list[tuple[Shard, int]]]:
    """Inputs that are finished token datasets (a folder with index.json): their native shards, to re-mix or
    re-shuffle without tokenizing again (tokshuf-rs's --shuffle-only)."""
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


def _size(url: str) -> int | None:
    try:
        return os.path.getsize(url)
    except OSError:
        return None
