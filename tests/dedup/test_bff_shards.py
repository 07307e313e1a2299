"""bff's virtual shards (`total_shards`): each an independent job with its own filter, in the process pool or
on Ray, giving the bytes of running each shard alone with `shard_num`."""

import pytest

from dclm.runtime.config import ConfigError


def _tree(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _files():
    # the same document in every file: with one filter only its first copy survives, with 3 shards one per shard
    base = [{"id": 0, "text": "one two three four five six seven eight"}]
    return {f"f{i}.jsonl": base + [{"id": i + 1, "text": f"file {i} alone here now"}] for i in range(6)}


def test_shards_as_jobs_equal_separate_runs(bff, tmp_path):
    files = _files()
    whole, res = bff(files, out="whole", remove_type="paragraph", total_shards=3, workers=2)
    assert (res.shards, res.files, res.docs_in) == (3, 6, 12)
    assert res.docs_out == 6 + 3  # every file keeps its own document; each shard keeps one copy of the shared one
    for k in range(3):
        bff(files, out="apart", remove_type="paragraph", total_shards=3, shard_num=k)
    assert _tree(tmp_path / "whole") == _tree(tmp_path / "apart")
    one, _ = bff(files, out="one", remove_type="paragraph")
    assert sum(len(p) for p in one.values()) == 6 + 1


def test_shards_on_ray_equal_the_pool(bff, tmp_path):
    ray = pytest.importorskip("ray")
    from dclm.runtime.jobs import init_ray

    init_ray(num_cpus=2)
    try:
        files = _files()
        _, pool = bff(files, out="pool", remove_type="old-both", total_shards=2, workers=2)
        _, on_ray = bff(files, out="ray", remove_type="old-both", total_shards=2, ray=True)
        _, single = bff(files, out="single", inp="in1", remove_type="old-both", ray=True)
    finally:
        ray.shutdown()
    assert _tree(tmp_path / "pool") == _tree(tmp_path / "ray")
    assert (pool.docs_out, pool.filter_fill) == (on_ray.docs_out, on_ray.filter_fill)
    bff(files, out="local", inp="in1", remove_type="old-both")
    assert single.shards == 1 and _tree(tmp_path / "single") == _tree(tmp_path / "local")


def test_one_filter_file_for_many_shards_is_refused(bff, tmp_path):
    with pytest.raises(ConfigError, match="bloom_filter_file"):
        bff(_files(), total_shards=2, bloom_filter_file=str(tmp_path / "f.bloom"))
    with pytest.raises(ConfigError, match="shard_num"):
        bff(_files(), total_shards=2, shard_num=2)
