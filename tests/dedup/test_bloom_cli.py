"""Filter sizing (bff's formulas), the filter file format, memory refusal, and the `dclm dedup` CLI."""

import json

import numpy as np
import orjson
import pytest

from dclm.cli import main
from dclm.dedup.bff import kernels
from dclm.dedup.bff.bloom import BloomFilter, compute_bloom_size, optimal_number_of_hashers, prob_of_false_positive, sysreq
from dclm.dedup.bff.hashing import Seeds
from dclm.errors import DclmError


def test_sysreq_follows_bffs_formulas():
    req = sysreq(1_000_000_000, 0.01)
    # the optimum is n·ln(1/p)/ln(2)^2 bits = 1.198e9 bytes with ceil(9.59·ln 2) = 7 hashers
    assert abs(req.bytes - 1.198e9) / 1.198e9 < 0.002 and req.num_hashers == 7
    size = compute_bloom_size(0.01, 10_000)
    assert prob_of_false_positive(size + 2, 10_000, optimal_number_of_hashers(size + 2, 10_000)) <= 0.01
    assert prob_of_false_positive(size // 2, 10_000, optimal_number_of_hashers(size // 2, 10_000)) > 0.01
    assert sysreq(10_000, 0.01, num_hashers=3).num_hashers == 3
    with pytest.raises(DclmError):
        sysreq(0, 0.01)


def test_measured_false_positive_rate_is_near_the_target():
    n = 20_000
    bf = BloomFilter.create(n, 0.01, 0, seed=1)
    seeds = Seeds.from_seed(1)
    rng = np.random.default_rng(0)
    f = (bf.bits, np.uint64(bf.m_bits), bf.num_hashers, np.uint64(seeds.probe))
    kernels.insert_many(*f, rng.integers(0, 2**63, n, dtype=np.uint64))
    rate = kernels.contains_many(*f, rng.integers(0, 2**63, 50_000, dtype=np.uint64)).mean()
    assert 0.005 < rate < 0.02


def test_file_round_trip_and_bad_files(tmp_path):
    bf = BloomFilter(10, 3, seed=42)
    bf.bits[:] = np.arange(10, dtype=np.uint64) * 0x0101010101
    path = tmp_path / "f.bloom"
    bf.save(str(path))
    assert path.read_bytes()[:8] == b"DCLMBLM1" and path.stat().st_size == 32 + 80
    back = BloomFilter.load(str(path), shared=True)
    assert (back.bits == bf.bits).all() and (back.num_hashers, back.seed, back.words) == (3, 42, 10)
    (tmp_path / "bad").write_bytes(b"\x17\xf1\xf0\x81" + b"\0" * 40)
    with pytest.raises(DclmError, match="bad magic"):
        BloomFilter.load(str(tmp_path / "bad"))
    path.write_bytes(path.read_bytes()[:-8])
    with pytest.raises(DclmError, match="truncated"):
        BloomFilter.load(str(path))


def test_a_filter_that_does_not_fit_is_refused():
    with pytest.raises(DclmError, match="needs .* but only"):
        BloomFilter.create(10**14, 1e-6, 0, seed=0)


def test_cli_sysreq_and_missing_args(capsys):
    assert main(["dedup", "bff", "sysreq", "--expected-ngram-count", "1000000", "--fp-rate", "0.01"]) == 0
    out = capsys.readouterr().out
    assert "7 hashers" in out and json.loads(out.splitlines()[-1])["fits"] is True
    assert main(["dedup", "bff", "--inputs", "x"]) == 2
    assert "missing --output-directory" in capsys.readouterr().err


def test_cli_bff_and_exact(tmp_path, capsys):
    inp = tmp_path / "in"
    inp.mkdir()
    pages = [{"text": "a b c d e", "url": "https://www.x.org/p/"}, {"text": "a b c d e", "url": "http://x.org/p"},
             {"text": "other words here now", "url": "http://x.org/q"}]
    (inp / "s.jsonl").write_bytes(b"".join(orjson.dumps(p) + b"\n" for p in pages))
    rc = main(["-q", "dedup", "bff", "--inputs", str(inp), "--output-directory", str(tmp_path / "o"),
               "--expected-ngram-count", "1000", "--fp-rate", "0.001", "--min-ngram-size", "3", "--max-ngram-size", "3",
               "--remove-type", "old-both", "--no-progress-bar", "-t", "1", "--json"])  # bff's own flag names
    assert rc == 0
    stats = json.loads(capsys.readouterr().out)
    assert (stats["docs_in"], stats["docs_out"], stats["workers"], stats["shards"]) == (3, 2, 1, 1)
    rc = main(["dedup", "exact", "--inputs", str(inp), "--output-directory", str(tmp_path / "e"), "--key", "url",
               "--normalize", "normalize_url"])
    assert rc == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["pages_in"] == 3 and stats["pages_out"] == 2 and stats["units_removed"] == 1
    kept = [orjson.loads(x) for x in (tmp_path / "e" / "s.jsonl").read_bytes().splitlines()]
    assert [p["url"] for p in kept] == ["https://www.x.org/p/", "http://x.org/q"]
