"""The Bloom filter: bff's sizing formulas, a flat uint64 bit array in shared memory, and its file format.

Sizing (bff `compute_bloom_size`, `optimal_number_of_hashers`, `prob_of_false_positive`):
k(m) = ceil(8·bytes / n · ln 2); FP(m) = (1 − (1 − 1/m_bits)^(k·n))^k; a binary search over the byte size
finds the smallest filter whose FP is at most the target. bff then silently caps the filter at 90% of
RAM; here a filter that does not fit in the memory available now is refused with a message instead.
The byte size is rounded up to whole 64-bit words.

File format (little-endian), ours and *not* bff-compatible: bff's hashers are `ahash::RandomState`
whose output depends on the CPU's AES support and crate version, so its bit positions cannot be
reproduced portably; ours come from `hashing.py` and a single seed stored in the header.

    offset  size  field
    0       8     magic b"DCLMBLM1"
    8       4     format version (1)
    12      4     number of hashers k
    16      8     seed (the user's --seed; every hash seed derives from it)
    24      8     number of uint64 words w
    32      8·w   the words (bit b lives in word b >> 6 at bit b & 63)
"""

from __future__ import annotations

import math
import mmap
import os
import struct
from dataclasses import dataclass

import numpy as np

from dclm.errors import DclmError
from dclm.runtime.config import ConfigError

MAGIC = b"DCLMBLM1"
VERSION = 1
_HEADER = struct.Struct("<8sIIQQ")
_MAX_SEARCH = 420_744_073_709_551_615  # bff's upper bound when not limited to system RAM


def optimal_number_of_hashers(size_in_bytes: int, expected_elements: int) -> int:
    return math.ceil((size_in_bytes * 8) / expected_elements * math.log(2))


def prob_of_false_positive(size_in_bytes: int, expected_elements: int, num_hashers: int) -> float:
    m = float(size_in_bytes * 8)
    return (1.0 - (1.0 - 1.0 / m) ** (num_hashers * expected_elements)) ** num_hashers


def compute_bloom_size(fp_rate: float, expected_ngram_count: int, num_hashers: int = 0) -> int:
    """bff's binary search for the filter size in bytes (without its system-RAM cap)."""
    lo, hi = 1, _MAX_SEARCH
    compute = num_hashers == 0
    while lo < hi - 1:
        mid = lo + (hi - lo) // 2
        k = optimal_number_of_hashers(mid, expected_ngram_count) if compute else num_hashers
        if prob_of_false_positive(mid, expected_ngram_count, k) > fp_rate:
            lo = mid + 1
        else:
            hi = mid - 1
    return hi


@dataclass(frozen=True)
class FilterSize:
    """What bff's formulas give for a filter (`dclm dedup bff sysreq`)."""

    expected_ngram_count: int
    fp_rate: float
    bytes: int
    words: int
    num_hashers: int
    predicted_fp_rate: float


def sysreq(expected_ngram_count: int, fp_rate: float, num_hashers: int = 0) -> FilterSize:
    """Filter bytes and hasher count for `expected_ngram_count` n-grams at `fp_rate` (bff `sysreq`)."""
    if expected_ngram_count < 1:
        raise ConfigError("expected_ngram_count", "must be at least 1")
    if not 0.0 < fp_rate < 1.0:
        raise ConfigError("fp_rate", "must be between 0 and 1 (exclusive)")
    if num_hashers < 0:
        raise ConfigError("num_hashers", "must be >= 0")
    size = compute_bloom_size(fp_rate, expected_ngram_count, num_hashers)
    words = max(1, -(-size // 8))
    k = num_hashers or optimal_number_of_hashers(size, expected_ngram_count)
    return FilterSize(expected_ngram_count, fp_rate, words * 8, words, k,
                      prob_of_false_positive(words * 8, expected_ngram_count, k))


def available_memory() -> int:
    """Bytes of memory available to a new allocation now (MemAvailable, else physical RAM)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n} B"


def check_fits(nbytes: int, what: str = "Bloom filter") -> None:
    avail = available_memory()
    if nbytes > 0.9 * avail:
        raise DclmError(
            f"the {what} needs {human_bytes(nbytes)} but only {human_bytes(avail)} of memory is available; "
            "raise fp_rate, lower expected_ngram_count, or split the inputs and share one filter "
            "(bloom_filter_file) across runs on a machine with more memory")


class BloomFilter:
    """k-probe Bloom filter over a flat uint64 array; the array may live in shared memory."""

    def __init__(self, words: int, num_hashers: int, seed: int, shared: bool = False):
        if words < 1 or num_hashers < 1:
            raise DclmError("a Bloom filter needs at least one word and one hasher")
        self.num_hashers = num_hashers
        self.seed = seed
        self.words = words
        # anonymous zeroed memory; MAP_SHARED lets forked workers see and update the same bits.
        # Huge pages cut the TLB misses of random probes into a large filter.
        flags = mmap.MAP_SHARED if shared else mmap.MAP_PRIVATE
        self._mmap = mmap.mmap(-1, words * 8, flags=flags, prot=mmap.PROT_READ | mmap.PROT_WRITE)
        if hasattr(mmap, "MADV_HUGEPAGE"):
            try:
                self._mmap.madvise(mmap.MADV_HUGEPAGE)
            except OSError:
                pass
        self.bits = np.frombuffer(self._mmap, dtype=np.uint64)

    @property
    def m_bits(self) -> int:
        return self.words * 64

    @property
    def size_in_bytes(self) -> int:
        return self.words * 8

    @classmethod
    def create(cls, expected_ngram_count: int, fp_rate: float, num_hashers: int, seed: int, shared: bool = False):
        size = sysreq(expected_ngram_count, fp_rate, num_hashers)
        check_fits(size.bytes)
        return cls(size.words, size.num_hashers, seed, shared)

    @classmethod
    def load(cls, path: str, shared: bool = False) -> "BloomFilter":
        try:
            with open(path, "rb") as f:
                head = f.read(_HEADER.size)
                if len(head) < _HEADER.size:
                    raise DclmError(f"{path}: not a dclm Bloom filter file (too short)")
                magic, version, k, seed, words = _HEADER.unpack(head)
                if magic != MAGIC:
                    raise DclmError(f"{path}: not a dclm Bloom filter file (bad magic; bff's own files are not readable)")
                if version != VERSION:
                    raise DclmError(f"{path}: unsupported Bloom filter version {version}")
                if os.fstat(f.fileno()).st_size != _HEADER.size + 8 * words:
                    raise DclmError(f"{path}: truncated Bloom filter file")
                check_fits(8 * words)
                bf = cls(words, k, seed, shared)
                f.readinto(memoryview(bf.bits).cast("B"))
        except FileNotFoundError:
            raise DclmError(f"Bloom filter file not found: {path}") from None
        if not np.little_endian:
            bf.bits.byteswap(inplace=True)
        return bf

    def save(self, path: str) -> None:
        """Write atomically (temp file + rename)."""
        d = os.path.dirname(os.path.abspath(path))
        os.makedirs(d, exist_ok=True)
        tmp = os.path.join(d, f".tmp-{os.getpid()}-{os.path.basename(path)}")
        try:
            with open(tmp, "wb") as f:
                f.write(_HEADER.pack(MAGIC, VERSION, self.num_hashers, self.seed, self.words))
                bits = self.bits if np.little_endian else self.bits.byteswap()
                f.write(memoryview(bits).cast("B"))
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.remove(tmp)
            raise

    def fill_ratio(self) -> float:
        """Fraction of bits set."""
        ones = sum(int(np.bitwise_count(self.bits[i:i + (1 << 24)]).sum()) for i in range(0, self.words, 1 << 24))
        return ones / self.m_bits

    def predicted_fp_rate(self, n: int) -> float:
        return prob_of_false_positive(self.size_in_bytes, n, self.num_hashers)
