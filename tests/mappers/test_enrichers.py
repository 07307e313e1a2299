import copy

import pytest

from dclm.mappers import get
from dclm.mappers.enrichers.counters import line_counter_enricher, word_counter_enricher
from dclm.mappers.enrichers.language_id import (
    detect_lang_paragraph_enricher,
    detect_lang_whole_page_enricher,
    is_space_or_punct,
)


def P(text, **kw):
    return {"text": text, **kw}


def test_line_counter_enricher():
    page = P("Hello\n\nWorld and all\nand beyond")
    assert line_counter_enricher(page)[0]["num_lines"] == 3
    assert line_counter_enricher(P("a\n\nb"), remove_empty=False)[0]["num_lines"] == 3
    assert line_counter_enricher(P("a\n\nb\nc"), paragraph_end="\n\n", key="n")[0]["n"] == 2
    with pytest.raises(AssertionError):
        line_counter_enricher(page)
    assert line_counter_enricher(page, overwrite=True)[0]["num_lines"] == 3


def test_word_counter_enricher():
    page = P("Hello, world!\n-- 42 items... (yes)")
    assert word_counter_enricher(page)[0]["word_count"] == 4  # fastText tokens starting alphanumeric
    assert word_counter_enricher(P("Hello, world!"), ignore_punctuation=False)[0]["word_count"] == 2
    assert word_counter_enricher(P("Also one e.g., a 1.4"), model="uniseg", key="k")[0]["k"] == 5
    with pytest.raises(AssertionError):
        word_counter_enricher(page)


def test_is_space_or_punct():
    assert is_space_or_punct("") and is_space_or_punct(" .,!? ")
    assert not is_space_or_punct("\n") and not is_space_or_punct(" a ")


def test_fasttext_whole_page(lid_model):
    enrich = detect_lang_whole_page_enricher(model="fasttext")
    text = "The weather is lovely today and we are going to the park with the children."
    page = enrich(P(text))[0]
    scores = page["language_id_whole_page_fasttext"]
    assert list(scores) == ["en"] and scores["en"] > 0.65  # top-1 only
    assert type(scores["en"]) is float
    assert enrich(P(" ... !! "))[0]["language_id_whole_page_fasttext"] == {}
    fr = enrich(P("Nous allons au marché avec les enfants cet après-midi pour acheter du pain."))[0]
    assert list(fr["language_id_whole_page_fasttext"]) == ["fr"]
    with pytest.raises(AssertionError):
        enrich(page)
    other = detect_lang_whole_page_enricher(model="fasttext", key_prefix="lid", overwrite=True)
    assert "lid_fasttext" in other(page)[0]


def test_fasttext_newlines_are_deleted_not_replaced(lid_model):
    enrich = detect_lang_whole_page_enricher(model="fasttext")
    text = "first line ends here\nsecond line starts\nthird"
    labels, probs = lid_model.predict(text.replace("\n", ""))
    page = enrich(P(text))[0]
    assert page["language_id_whole_page_fasttext"] == {labels[0][len("__label__"):]: float(probs[0])}
    spaced_labels, spaced_probs = lid_model.predict(text.replace("\n", " "))
    assert float(spaced_probs[0]) != float(probs[0])  # words merged across lines change the score


def test_fasttext_batch_equals_per_page(lid_model, web_pages):
    enrich = detect_lang_whole_page_enricher(model="fasttext")
    pages = copy.deepcopy(web_pages) + [P(""), P(" . "), P("\n\nx")]
    single = [enrich(copy.deepcopy(p))[0]["language_id_whole_page_fasttext"] for p in pages]
    batch = [r[0]["language_id_whole_page_fasttext"] for r in enrich.map_batch(copy.deepcopy(pages))]
    assert batch == single
    with pytest.raises(AssertionError):  # an existing key fails the batch (the executor then goes per page)
        enrich.map_batch([P("x", language_id_whole_page_fasttext={})])


def test_fasttext_model_path_parameter_and_env(lid_model, monkeypatch, tmp_path):
    from dclm.assets import lid_model_path
    from dclm.errors import DclmError

    path = str(lid_model_path())
    enrich = detect_lang_whole_page_enricher(model="fasttext", model_path=path)
    assert list(enrich(P("This is an English sentence about the weather."))[0]["language_id_whole_page_fasttext"]) == ["en"]
    monkeypatch.setenv("DCLM_LID_MODEL", str(tmp_path / "missing.bin"))
    with pytest.raises(DclmError):
        lid_model_path()


def test_langdetect_whole_page_seeded():
    enrich = detect_lang_whole_page_enricher(model="langdetect", seed=0)
    text = "The weather is lovely today and we are going to the park with the children."
    a = enrich(P(text))[0]["language_id_whole_page_langdetect"]
    b = enrich(P(text))[0]["language_id_whole_page_langdetect"]
    assert a == b and max(a, key=a.get) == "en"
    assert enrich(P("..."))[0]["language_id_whole_page_langdetect"] == {}


def test_paragraph_enricher(lid_model):
    enrich = detect_lang_paragraph_enricher(model="fasttext", tokenizer="blingfire")
    text = ("The children are playing in the garden with their new ball. "
            "Les enfants jouent dans le jardin avec leur nouveau ballon. "
            "We will have dinner together at seven in the evening.")
    res = enrich(P(text))[0]["language_id_paragraph_fasttext"]
    assert res["en"]["number_of_sentences"] == 2 and res["fr"]["number_of_sentences"] == 1
    assert 0 < res["en"]["average_probability"] <= 1.0001
    ld = detect_lang_paragraph_enricher(model="langdetect", tokenizer="blingfire")
    assert "language_id_paragraph_langdetect" in ld(P(text))[0]


def test_unknown_model():
    with pytest.raises(ValueError):
        detect_lang_whole_page_enricher(model="cld3")(P("x"))


@pytest.fixture(scope="module")
def kenlm_models(tmp_path_factory):
    kenlm = pytest.importorskip("kenlm")
    spm = pytest.importorskip("sentencepiece")
    d = tmp_path_factory.mktemp("kenlm")
    corpus = d / "corpus.txt"
    corpus.write_text("\n".join(f"the cat sat on mat number {i} and the dog ran away" for i in range(200)))
    spm.SentencePieceTrainer.train(input=str(corpus), model_prefix=str(d / "en.sp"), vocab_size=40,
                                   model_type="unigram", minloglevel=2)
    sp = spm.SentencePieceProcessor(model_file=str(d / "en.sp.model"))
    pieces = sorted({p for line in corpus.read_text().splitlines() for p in sp.encode_as_pieces(line)})
    n = len(pieces) + 3
    lines = ["\\data\\", f"ngram 1={n}", "ngram 2=1", "", "\\1-grams:", "-1.0\t<unk>\t0", "-99\t<s>\t0",
             "-1.0\t</s>\t0"]
    lines += [f"-1.5\t{p}\t0" for p in pieces]
    lines += ["", "\\2-grams:", f"-0.5\t{pieces[0]} {pieces[1]}", "", "\\end\\", ""]
    (d / "en.arpa").write_text("\n".join(lines))
    return d, kenlm


def test_kenlm_perplexity_enricher(kenlm_models):
    d, kenlm = kenlm_models
    enrich = get("ken_lm_perplexity_enricher")(model_path=str(d / "en.arpa"), sp_model_path=str(d / "en.sp.model"))
    page = enrich(P("  The cat sat on mat 42\n… and ran “away” ’\x07 "))[0]
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(d / "en.sp.model"))
    normalized = "The cat sat on mat 00... and ran \"away\" '"  # digits to 0, punctuation mapped, \n and \x07 gone
    pieces = " ".join(sp.encode_as_pieces(normalized))
    model = kenlm.Model(str(d / "en.arpa"))
    expected = round(10.0 ** (-model.score(pieces) / (len(pieces.split()) + 1)), 1)
    assert page["kenlm_perplexity"] == expected
    with pytest.raises(AssertionError):
        enrich(page)


def test_kenlm_missing_model_is_one_line_error(tmp_path, monkeypatch):
    from dclm.errors import DclmError

    pytest.importorskip("kenlm")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DCLM_ASSETS_DIR", str(tmp_path))
    with pytest.raises(DclmError, match="dclm assets fetch"):
        get("ken_lm_perplexity_enricher")()
