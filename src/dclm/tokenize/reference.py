"""The dataset's descriptions: index.json (our native view, every run recorded) and DCLM's tokenized dataset
reference JSON (the layout of DCLM's exp_data/datasets/tokenized/*.json)."""

from __future__ import annotations

import json
import os
import uuid
from datetime import datetime, timezone

from dclm.io import atomic_open
from dclm.tokenize import shards as S


def write_json(path: str, obj) -> None:
    with atomic_open(path, "wb") as f:
        f.write(json.dumps(obj, indent=1, sort_keys=True).encode())


def write_reference(out: str, index: dict, name: str, dataset_url: str | None) -> str:
    url = dataset_url or os.path.realpath(out)
    sep = "" if url.endswith("/") else "/"
    runs = index["runs"]
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
        "size": sum(r["tar_bytes"] for r in index["shards"]),
        "data_key": "json.gz",
        "sampling_yaml": runs[-1]["sampling_yaml"],
        "seqlen": index["seqlen"],
        "dcnlp_commit_hash": None,
        "dcnlp_diff": None,
    }
    path = os.path.join(out, f"{name}.json")
    write_json(path, ref)
    return path


def write_index(out: str, index: dict) -> None:
    write_json(os.path.join(out, S.INDEX_NAME), index)
