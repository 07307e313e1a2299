import hashlib
from pathlib import Path

import pytest

from dclm.io import write_pages
from dclm.tokenize import tokenize_shuffle

from .conftest import make_docs


def hashes(out) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(Path(out).iterdir()) if p.name.startswith(("shard_", "manifest"))}


def test_ray_two_phase_job_is_byte_identical_to_the_pool(tmp_path, small_encoder):
    pytest.importorskip("ray")
    from dclm.runtime.jobs import init_ray

    init_ray(num_cpus=2)
    for k in range(3):
        write_pages(str(tmp_path / "in" / f"p{k}.jsonl"), [{"text": d} for d in make_docs(300, seed=20 + k)])
    (tmp_path / "in" / "p0.jsonl").write_text((tmp_path / "in" / "p0.jsonl").read_text() + "not json\n")
    kw = dict(seqlen=64, chunk_size=48, seed=11, buckets=4, progress=False, encoder=small_encoder)
    pool = tokenize_shuffle(str(tmp_path / "in"), str(tmp_path / "pool"), workers=2, **kw)
    ray = tokenize_shuffle(str(tmp_path / "in"), str(tmp_path / "ray"), workers=2, ray=True, **kw)
    assert pool.num_shards > 2 and pool.rejected == ray.rejected == 1
    assert hashes(tmp_path / "pool") == hashes(tmp_path / "ray")
    assert (tmp_path / "ray" / "_rejects" / "p0.jsonl.jsonl").read_bytes() == \
        (tmp_path / "pool" / "_rejects" / "p0.jsonl.jsonl").read_bytes()
