"""Seeded 64-bit hashing of tokens, n-grams and Bloom-filter probe positions, in plain Python.

These are the definitions; `kernels.py` computes the same values in numba and the tests compare the two.

* token hash: FNV-1a over the token's code points, started from a seed, then the murmur3 finaliser;
* n-gram hash: multiply-xor fold of the window's token hashes, then the finaliser with the length;
* probes: bit i of k is `((h + i·h2) mod 2^64) · m_bits >> 64` with `h2 = fmix(h ^ probe_seed) | 1`
  (double hashing, mapped onto [0, m_bits) by a multiply-shift instead of a modulo).

All three seeds derive from one user seed, so `--seed` fixes every filter position.
"""

from __future__ import annotations

from dataclasses import dataclass

M64 = (1 << 64) - 1
FNV_PRIME = 0x100000001B3
NGRAM_MULT = 0xC4CEB9FE1A85EC53  # odd, so each step is a bijection of the running state


def fmix64(h: int) -> int:
    """MurmurHash3's 64-bit finaliser: a bijection that spreads every input bit over the output."""
    h ^= h >> 33
    h = (h * 0xFF51AFD7ED558CCD) & M64
    h ^= h >> 33
    h = (h * 0xC4CEB9FE1A85EC53) & M64
    h ^= h >> 33
    return h


@dataclass(frozen=True)
class Seeds:
    token: int
    ngram: int
    probe: int

    @classmethod
    def from_seed(cls, seed: int) -> "Seeds":
        s = seed & M64
        return cls(fmix64(s ^ 0x9E3779B97F4A7C15), fmix64(s ^ 0xC2B2AE3D27D4EB4F), fmix64(s ^ 0x165667B19E3779F9))


def token_hash(token: str, seeds: Seeds) -> int:
    h = seeds.token
    for c in token:
        h = ((h ^ ord(c)) * FNV_PRIME) & M64
    return fmix64(h)


def ngram_hash(token_hashes: list[int] | tuple[int, ...], seeds: Seeds) -> int:
    h = seeds.ngram
    for t in token_hashes:
        h = ((h ^ t) * NGRAM_MULT) & M64
    return fmix64(h ^ len(token_hashes))


def probes(h: int, k: int, m_bits: int, seeds: Seeds) -> list[int]:
    h2 = fmix64(h ^ seeds.probe) | 1
    return [(((h + i * h2) & M64) * m_bits) >> 64 for i in range(k)]
