"""Fast path of fastText language ID (lid.176.ftz and models like it): the model file is read here and a numba
kernel predicts a batch of lines in one call, bit-identical to fastText's own `predict` (its plain twin;
tests/mappers/test_fasttext_quant.py compares them).

It serves supervised models with character n-grams, a product-quantized input matrix (with or without
quantized norms, pruned or not), a dense output matrix, hierarchical-softmax loss and word n-grams of length 1,
which is what lid.176.ftz is. It redoes fastText's C++ step by step, in the same float32 order:
  - `Dictionary::readWord`/`getLine`: tokens split on ' ', '\\n', '\\r', '\\t', '\\v', '\\f', '\\0', the final
    newline is `</s>`, a literal `</s>` ends the line, tokens starting with the label prefix are skipped;
  - `Dictionary::addSubwords`: a word in vocabulary adds its id and its n-grams, any other word the n-grams of
    `<word>` (`computeSubwords`: UTF-8 aware, minn..maxn characters, FNV-1a over signed bytes modulo bucket,
    then the pruned-index map of a quantized dictionary, `pushHash`);
  - `QuantMatrix::averageRowsToVector` (`ProductQuantizer::addcode`), then `HierarchicalSoftmaxLoss::dfs` for
    the top label (`DenseMatrix::dotRow` per node) (sigmoid with `std::exp(float)`, `std_log` in double, the pruning at log(1e-5)) and
    `std::exp` of its score (`FastText::predictLine`).
`QuantLid.load` returns None for any other kind of model, and callers then use fastText.
"""

from __future__ import annotations

import math
import struct

import numpy as np
from numba import njit

from dclm.classifier.kernels import build_table, fnv, fnv_step, has_prefix, is_eos, longest_line, lookup, next_word

_MAGIC = 793712314
_KSUB = 256
_FNV_OFFSET = np.uint32(2166136261)
_LOSS_HS, _MODEL_SUP = 1, 3


@njit(cache=True)
def _add_row(x, t, codes, centroids, nsubq, dsub, lastdsub, qnorm, norm_codes, norm_centroids):
    """x += row t of the quantized matrix (`QuantMatrix::addRowToVector`, `ProductQuantizer::addcode`)."""
    alpha = np.float32(1.0)
    if qnorm:
        alpha = norm_centroids[norm_codes[t]]
    base_code = nsubq * t
    for m in range(nsubq):
        code = np.int64(codes[base_code + m])
        if m == nsubq - 1:
            c = m * _KSUB * dsub + code * lastdsub
            d = lastdsub
        else:
            c = (m * _KSUB + code) * dsub
            d = dsub
        for n in range(d):
            x[m * dsub + n] += alpha * centroids[c + n]


@njit(cache=True)
def _subwords(word, length, minn, maxn, bucket, prune_size, prune_map, nwords, out, nout):
    """Append the n-gram rows of `word[:length]` to out[nout:] (`Dictionary::computeSubwords` + `pushHash`)."""
    for i in range(length):
        if (word[i] & 0xC0) == 0x80:
            continue
        h = _FNV_OFFSET
        j = i
        n = 1
        while j < length and n <= maxn:
            h = fnv_step(h, word[j])
            j += 1
            while j < length and (word[j] & 0xC0) == 0x80:
                h = fnv_step(h, word[j])
                j += 1
            if n >= minn and not (n == 1 and (i == 0 or j == length)):
                b = np.int64(h % np.uint32(bucket))
                if prune_size != 0:
                    if prune_size > 0:
                        b = np.int64(prune_map[b])
                    if b >= 0:
                        out[nout] = nwords + b
                        nout += 1
            n += 1
    return nout


@njit(cache=True)
def build_word_subwords(vocab, offsets, eos_id, minn, maxn, bucket, prune_size, prune_map, nwords):
    """Each word's rows (its id, then the n-grams of `<word>`), as CSR arrays (`Dictionary::initNgrams`)."""
    n = len(offsets) - 1
    longest = 0
    for w in range(n):
        longest = max(longest, offsets[w + 1] - offsets[w])
    word = np.empty(longest + 2, dtype=np.uint8)
    tmp = np.empty((longest + 2) * max(maxn, 1) + 1, dtype=np.int64)
    counts = np.zeros(n + 1, dtype=np.int64)
    pieces = []
    for w in range(n):
        tmp[0] = w
        k = 1
        if w != eos_id:
            length = offsets[w + 1] - offsets[w]
            word[0] = 60  # '<'
            for i in range(length):
                word[1 + i] = vocab[offsets[w] + i]
            word[length + 1] = 62  # '>'
            k = _subwords(word, length + 2, minn, maxn, bucket, prune_size, prune_map, nwords, tmp, 1)
        pieces.append(tmp[:k].copy())
        counts[w + 1] = k
    sub_off = np.cumsum(counts)
    sub_ids = np.empty(sub_off[-1], dtype=np.int64)
    for w in range(n):
        sub_ids[sub_off[w]:sub_off[w + 1]] = pieces[w]
    return sub_off, sub_ids


@njit(cache=True)
def _dot(wo, hidden, row):
    """`DenseMatrix::dotRow`: a sequential float32 sum."""
    d = np.float32(0.0)
    for j in range(hidden.shape[0]):
        d += wo[row, j] * hidden[j]
    return d


@njit(cache=True)
def _std_log(x):
    return np.float32(math.log(np.float64(np.float32(x)) + 1e-5))


@njit(cache=True)
def predict_lines(buf, starts, ends, table, hashes, vocab, offsets, sub_off, sub_ids, label, eos_id,
                  minn, maxn, bucket, prune_size, prune_map, nwords, dim,
                  codes, centroids, nsubq, dsub, lastdsub, qnorm, norm_codes, norm_centroids, wo, left, right, nlabels):
    """(top label index, probability as float32, status) per line; status 1: no input row (fastText predicts
    nothing), 2: a NaN output (fastText raises); both are left to fastText by the caller."""
    n = len(starts)
    best_out = np.zeros(n, dtype=np.int32)
    probs = np.zeros(n, dtype=np.float32)
    status = np.zeros(n, dtype=np.int8)
    longest = longest_line(starts, ends)
    word = np.empty(longest + 2, dtype=np.uint8)
    grams = np.empty((longest + 2) * max(maxn, 1) + 1, dtype=np.int64)
    hidden = np.empty(dim, dtype=np.float32)
    stack_node = np.empty(2 * nlabels + 2, dtype=np.int64)
    stack_score = np.empty(2 * nlabels + 2, dtype=np.float32)
    log_threshold = _std_log(0.0)
    for k in range(n):
        for d in range(dim):
            hidden[d] = np.float32(0.0)
        nrows = 0
        i = starts[k]
        end = ends[k]
        ended = False
        while True:
            i, j = next_word(buf, i, end)
            if i >= end:
                break
            is_label = has_prefix(buf, i, j, label)
            eos = is_eos(buf, i, j)
            if not is_label:
                h = fnv(buf, i, j)
                w = lookup(buf, i, j, h, table, hashes, vocab, offsets)
                if w >= 0:
                    for r in range(sub_off[w], sub_off[w + 1]):
                        _add_row(hidden, sub_ids[r], codes, centroids, nsubq, dsub, lastdsub, qnorm, norm_codes,
                                 norm_centroids)
                    nrows += sub_off[w + 1] - sub_off[w]
                elif not eos:
                    length = j - i
                    word[0] = 60
                    for q in range(length):
                        word[1 + q] = buf[i + q]
                    word[length + 1] = 62
                    g = _subwords(word, length + 2, minn, maxn, bucket, prune_size, prune_map, nwords, grams, 0)
                    for r in range(g):
                        _add_row(hidden, grams[r], codes, centroids, nsubq, dsub, lastdsub, qnorm, norm_codes,
                                 norm_centroids)
                    nrows += g
            if eos:
                ended = True
                break
            i = j
        if not ended and eos_id >= 0:  # the final newline: `</s>`, in vocabulary (an unknown one adds nothing)
            for r in range(sub_off[eos_id], sub_off[eos_id + 1]):
                _add_row(hidden, sub_ids[r], codes, centroids, nsubq, dsub, lastdsub, qnorm, norm_codes, norm_centroids)
            nrows += sub_off[eos_id + 1] - sub_off[eos_id]
        if nrows == 0:
            status[k] = 1
            continue
        scale = np.float32(1.0 / nrows)
        for d in range(dim):
            hidden[d] *= scale
        # HierarchicalSoftmaxLoss::dfs from the root, left subtree first, k = 1, threshold 0
        top = 0
        stack_node[0] = 2 * nlabels - 2
        stack_score[0] = np.float32(0.0)
        have = False
        best = np.float32(0.0)
        best_node = -1
        nan = False
        while top >= 0:
            node = stack_node[top]
            score = stack_score[top]
            top -= 1
            if score < log_threshold:
                continue
            if have and score < best:
                continue
            if left[node] == -1 and right[node] == -1:
                have = True
                best = score
                best_node = node
                continue
            f = _dot(wo, hidden, node - nlabels)
            if math.isnan(f):
                nan = True
                break
            f = np.float32(1.0 / np.float64(np.float32(1.0) + math.exp(np.float32(-f))))
            top += 1
            stack_node[top] = right[node]
            stack_score[top] = np.float32(score + _std_log(f))
            top += 1
            stack_node[top] = left[node]
            stack_score[top] = np.float32(score + _std_log(np.float64(1.0) - np.float64(f)))
        if nan or not have:
            status[k] = 2
            continue
        best_out[k] = best_node
        probs[k] = math.exp(best)
    return best_out, probs, status


def _tree(counts: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Children of every node of fastText's Huffman tree over the label counts (`HierarchicalSoftmaxLoss::buildTree`)."""
    osz = len(counts)
    count = [float(c) for c in counts] + [1e15] * (osz - 1)
    left = [-1] * (2 * osz - 1)
    right = [-1] * (2 * osz - 1)
    leaf, node = osz - 1, osz
    for i in range(osz, 2 * osz - 1):
        mini = [0, 0]
        for j in range(2):
            if leaf >= 0 and count[leaf] < count[node]:
                mini[j] = leaf
                leaf -= 1
            else:
                mini[j] = node
                node += 1
        left[i], right[i] = mini
        count[i] = count[mini[0]] + count[mini[1]]
    return np.array(left, dtype=np.int64), np.array(right, dtype=np.int64)


class _Reader:
    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def take(self, fmt: str):
        size = struct.calcsize(fmt)
        out = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += size
        return out if len(out) > 1 else out[0]

    def array(self, dtype, count: int) -> np.ndarray:
        a = np.frombuffer(self.data, dtype=dtype, count=count, offset=self.pos)
        self.pos += a.nbytes
        return a

    def cstr(self) -> bytes:
        end = self.data.index(b"\0", self.pos)
        s = self.data[self.pos:end]
        self.pos = end + 1
        return s


def _quant_matrix(r: _Reader) -> dict:
    qnorm = r.take("<?")
    m, n = r.take("<qq")
    codesize = r.take("<i")
    codes = r.array(np.uint8, codesize)
    dim, nsubq, dsub, lastdsub = r.take("<iiii")
    centroids = r.array(np.float32, dim * _KSUB)
    q = {"m": m, "n": n, "codes": codes, "nsubq": nsubq, "dsub": dsub, "lastdsub": lastdsub, "centroids": centroids,
         "qnorm": qnorm, "norm_codes": np.zeros(1, dtype=np.uint8), "norm_centroids": np.zeros(1, dtype=np.float32)}
    if qnorm:
        q["norm_codes"] = r.array(np.uint8, m)
        ndim, _, _, _ = r.take("<iiii")
        q["norm_centroids"] = r.array(np.float32, ndim * _KSUB)
    return q


class QuantLid:
    """A quantized hierarchical-softmax fastText model read from its file, predicting through the kernel."""

    @classmethod
    def load(cls, path: str) -> "QuantLid | None":
        """The fast predictor of the model file at `path`, or None when it is not a model this path serves."""
        with open(path, "rb") as f:
            data = f.read()
        try:
            return cls(data)
        except (ValueError, struct.error, IndexError, UnicodeDecodeError):
            return None

    def __init__(self, data: bytes):
        r = _Reader(data)
        magic, version = r.take("<ii")
        if magic != _MAGIC or version not in (11, 12):
            raise ValueError("not a fastText model")
        dim, _ws, _epoch, _min_count, _neg, word_ngrams, loss, model, bucket, minn, maxn, _lr_rate = r.take("<12i")
        r.take("<d")
        if version == 11 and model == _MODEL_SUP:
            maxn = 0
        if model != _MODEL_SUP or loss != _LOSS_HS or word_ngrams > 1 or maxn <= 0:
            raise ValueError("not a model this path serves")
        size, nwords, nlabels = r.take("<iii")
        r.take("<q")
        prune_size = r.take("<q")
        words, label_counts, types = [], [], []
        for _ in range(size):
            word = r.cstr()
            count, etype = r.take("<qb")
            words.append(word)
            types.append(etype)
            if etype == 1:
                label_counts.append(count)
        if types[:nwords] != [0] * nwords or len(label_counts) != nlabels:
            raise ValueError("unexpected dictionary layout")
        prune_map = np.full(max(bucket, 1) if prune_size > 0 else 1, -1, dtype=np.int64)
        if prune_size > 0:
            pairs = r.array(np.int32, 2 * prune_size).reshape(-1, 2)
            prune_map[pairs[:, 0]] = pairs[:, 1]
        quant_input = r.take("<?")
        if not quant_input:
            raise ValueError("dense input: the classifier fast path serves those")
        self.inp = _quant_matrix(r)
        if r.take("<?"):
            raise ValueError("quantized output matrix: not served here")
        m, n = r.take("<qq")
        self.wo = r.array(np.float32, m * n).reshape(m, n)
        word_bytes = words[:nwords]
        self.labels = [w.decode("utf-8") for w in words[nwords:]]
        self.label = b"__label__"
        offsets = np.zeros(nwords + 1, dtype=np.int64)
        np.cumsum([len(w) for w in word_bytes], out=offsets[1:])
        self.vocab = np.frombuffer(b"".join(word_bytes), dtype=np.uint8) if word_bytes else np.zeros(0, dtype=np.uint8)
        self.offsets = offsets
        self.eos_id = word_bytes.index(b"</s>") if b"</s>" in word_bytes else -1
        self.table, self.hashes = build_table(self.vocab, offsets)
        self.prune_size, self.prune_map = prune_size, prune_map
        self.minn, self.maxn, self.bucket, self.nwords, self.dim = minn, maxn, bucket, nwords, dim
        self.sub_off, self.sub_ids = build_word_subwords(self.vocab, offsets, self.eos_id, minn, maxn, bucket, prune_size,
                                                         prune_map, nwords)
        self.left, self.right = _tree(label_counts)
        self.nlabels = nlabels

    def predict(self, lines: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(top label index, its probability as float32, status) per line; status != 0 = ask fastText."""
        encoded = [line.encode("utf-8") for line in lines]
        lengths = np.fromiter((len(e) for e in encoded), dtype=np.int64, count=len(encoded))
        ends = np.cumsum(lengths)
        buf = np.frombuffer(b"".join(encoded), dtype=np.uint8)
        i = self.inp
        return predict_lines(buf, ends - lengths, ends, self.table, self.hashes, self.vocab, self.offsets, self.sub_off,
                             self.sub_ids, np.frombuffer(self.label, dtype=np.uint8), self.eos_id, self.minn,
                             self.maxn, self.bucket, self.prune_size, self.prune_map, self.nwords, self.dim,
                             i["codes"], i["centroids"], i["nsubq"], i["dsub"], i["lastdsub"], i["qnorm"],
                             i["norm_codes"], i["norm_centroids"], self.wo, self.left, self.right, self.nlabels)
