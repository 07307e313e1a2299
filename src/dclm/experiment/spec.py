"""The experiment spec: a small YAML naming the raw pool, the curation arms, the tokenizer, the training scale
and the evaluation. Every arm goes through the same verbs and trains the same model on the same tokens.

    name: my-experiment
    pool: {paths: [crawl/]}              # WARC/WET files (extracted first) or page shards (.jsonl[.gz|.zst])
    tokenizer: EleutherAI/gpt-neox-20b   # or a tokenizer.json, or {train_bpe: 2048} (trained on the pool)
    arms:
      - name: raw                        # no curation at all
      - name: baseline
        process: dclm_baseline_refinedweb   # a bundled recipe or a DCLM pipeline YAML
        dedup: {ngram: 13, threshold: 0.8}  # BFF old-both
        quality: {positives: [eli5/], keep_fraction: 0.1}
    train: {scale: smoke, seed: 0, tokens: 409600}   # any `dclm train` field
    eval: {heldout: [clean/], suite: light, data_dir: eval_data/, prompts: ["The garden"]}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dclm.errors import DclmError

_ARM_KEYS = {"name", "process", "dedup", "quality"}
_TOP_KEYS = {"name", "notes", "pool", "tokenizer", "arms", "train", "eval", "seed", "workers"}


@dataclass(frozen=True)
class Arm:
    name: str
    process: str | None = None  # recipe name or pipeline YAML path
    dedup: dict | None = None  # BFF settings: ngram, threshold, expected_ngram_count, fp_rate
    quality: dict | None = None  # positives (paths), keep_fraction, model (a trained fastText .bin instead)

    @property
    def stages(self) -> list[str]:
        return [s for s in ("process", "dedup", "quality") if getattr(self, s) is not None]


@dataclass(frozen=True)
class Spec:
    name: str
    pool: tuple[str, ...]
    tokenizer: str | int  # a name/path, or the vocabulary size of a BPE trained on the pool
    arms: tuple[Arm, ...]
    train: dict
    eval: dict = field(default_factory=dict)
    seed: int = 0
    workers: int = 0
    notes: str = ""  # shown at the top of the report


def _fail(where: str, msg: str) -> DclmError:
    return DclmError(f"{where}: {msg}")


def parse_spec(data: Any, where: str = "spec", base: Path | None = None) -> Spec:
    """A Spec from the YAML's dict; relative paths are taken from `base` (the YAML's folder)."""
    if not isinstance(data, dict):
        raise _fail(where, "an experiment spec is a mapping (name, pool, tokenizer, arms, train, eval)")
    unknown = set(data) - _TOP_KEYS
    if unknown:
        raise _fail(where, f"unknown key(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(_TOP_KEYS))}")

    def path(p) -> str:
        q = Path(str(p)).expanduser()
        return str(q if q.is_absolute() or base is None else base / q)

    pool = data.get("pool")
    paths = pool.get("paths") if isinstance(pool, dict) else pool
    if isinstance(paths, str):
        paths = [paths]
    if not paths or not isinstance(paths, list):
        raise _fail(where, "pool needs paths: [...] (WARC/WET files or page shards)")
    tok = data.get("tokenizer", "EleutherAI/gpt-neox-20b")
    if isinstance(tok, dict):
        if not isinstance(tok.get("train_bpe"), int) or tok["train_bpe"] < 300:
            raise _fail(where, "tokenizer: {train_bpe: N} needs a vocabulary size N >= 300")
        tok = int(tok["train_bpe"])
    elif not isinstance(tok, str):
        raise _fail(where, "tokenizer is a name, a tokenizer.json path, or {train_bpe: N}")
    elif Path(tok).suffix == ".json" or Path(path(tok)).exists():
        tok = path(tok)
    arms_raw = data.get("arms")
    if not isinstance(arms_raw, list) or not arms_raw:
        raise _fail(where, "arms needs at least one entry ({name: raw} is an arm with no curation)")
    arms = []
    for i, a in enumerate(arms_raw):
        if not isinstance(a, dict) or not isinstance(a.get("name"), str):
            raise _fail(where, f"arms[{i}] needs a name")
        bad = set(a) - _ARM_KEYS
        if bad:
            raise _fail(where, f"arms[{i}] ({a['name']}): unknown key(s) {', '.join(sorted(bad))}")
        quality = a.get("quality")
        if quality is not None:
            if not isinstance(quality, dict) or not (quality.get("positives") or quality.get("model")):
                raise _fail(where, f"arms[{i}] ({a['name']}): quality needs positives: [...] or model: PATH")
            quality = dict(quality)
            if quality.get("positives"):
                pos = quality["positives"]
                quality["positives"] = [path(p) for p in ([pos] if isinstance(pos, str) else pos)]
            if quality.get("model"):
                quality["model"] = path(quality["model"])
            frac = quality.get("keep_fraction", 0.1)
            if not 0 < frac <= 1:
                raise _fail(where, f"arms[{i}] ({a['name']}): keep_fraction must be in (0, 1]")
        process = a.get("process")
        if process is not None and (process.endswith((".yaml", ".yml")) or "/" in process):
            process = path(process)
        dedup = a.get("dedup")
        if dedup is not None and not isinstance(dedup, dict):
            dedup = {}
        arms.append(Arm(a["name"], process, dedup, quality))
    names = [a.name for a in arms]
    if len(set(names)) != len(names):
        raise _fail(where, "arm names must be distinct")
    train = data.get("train")
    if not isinstance(train, dict) or "scale" not in train:
        raise _fail(where, "train needs at least a scale (dclm train --list-scales)")
    ev = dict(data.get("eval") or {})
    for key in ("heldout",):
        if ev.get(key):
            v = ev[key]
            ev[key] = [path(p) for p in ([v] if isinstance(v, str) else v)]
    if ev.get("data_dir"):
        ev["data_dir"] = path(ev["data_dir"])
    return Spec(name=str(data.get("name", "experiment")), pool=tuple(path(p) for p in paths), tokenizer=tok,
                arms=tuple(arms), train=dict(train), eval=ev, seed=int(data.get("seed", 0)),
                workers=int(data.get("workers", 0)), notes=str(data.get("notes") or ""))


def load_spec(path: str) -> Spec:
    import yaml

    p = Path(path)
    if not p.is_file():
        raise DclmError(f"{path}: no such experiment spec")
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        raise DclmError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    return parse_spec(data, where=path, base=p.parent)
