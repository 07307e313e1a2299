import random

import pytest

from dclm.demo.webpages import generate_pages
from dclm.mappers.core_utils import (
    count_words,
    fasttext_tokenize,
    join_paragraphs,
    join_sentences,
    split_paragraphs,
    split_sentences,
    split_words,
    uniseg_words,
)

COMPLICATED = "Also one with complications e.g., a 1.4 floating points..."


def test_split_paragraphs():
    assert split_paragraphs("Hello\n\nWorld and all\nand beyond") == ["Hello", "World and all", "and beyond"]
    assert split_paragraphs("Hello\n\nWorld and all\nand beyond", remove_empty=False) == ["Hello", "", "World and all", "and beyond"]
    assert split_paragraphs("Hello\n\nWorld and all\nand beyond", "\n\n") == ["Hello", "World and all\nand beyond"]
    assert split_paragraphs("") == []
    assert split_paragraphs("Hello World") == ["Hello World"]
    assert split_paragraphs("a1b22c", paragraph_end=r"\d+") == ["a", "b", "c"]  # the delimiter is a regex
    assert split_paragraphs("  a \n \n b ") == ["a", "b"]


def test_split_sentences_blingfire():
    text = ("Hello. World and all. And beyond. A sentence with an abbreviation, e.g. a sentence. "
            "Also one with a 1.4 floating points?")
    assert split_sentences(text) == ["Hello.", "World and all.", "And beyond.",
                                     "A sentence with an abbreviation, e.g. a sentence.", "Also one with a 1.4 floating points?"]
    assert split_sentences("") == []
    assert split_sentences("Hello World") == ["Hello World"]
    with pytest.raises(ValueError):
        split_sentences("Hello. World and all.", tokenizer="invalid")


def test_split_sentences_nltk_offline():
    pytest.importorskip("nltk")
    pytest.importorskip("punkt")
    drunken = ("This we I sit down with Wildman Weiler and K-Love (new to the show) and we talk as the title says, "
               "simply drunken... This was a random off the wall show... Enjoy!")
    assert split_sentences("Hello. World and all.", tokenizer="nltk") == ["Hello.", "World and all."]
    assert split_sentences(drunken, tokenizer="nltk") == [drunken]  # no language: default Punkt parameters
    assert split_sentences("Hello. World and all.", tokenizer="nltk", tokenizer_lang="en") == ["Hello.", "World and all."]
    assert split_sentences(drunken, tokenizer="nltk", tokenizer_lang="en") == [
        "This we I sit down with Wildman Weiler and K-Love (new to the show) and we talk as the title says, simply drunken...",
        "This was a random off the wall show...", "Enjoy!"]
    assert split_sentences("Dr. Smith came at 3 p.m. today. He left.", tokenizer="nltk", tokenizer_lang="english") == [
        "Dr. Smith came at 3 p.m. today.", "He left."]


def test_split_words_dclm_examples():
    assert len(split_words("Hello World and all", model="uniseg", ignore_punctuation=True)) == 4
    assert len(split_words(COMPLICATED, model="uniseg", ignore_punctuation=True)) == 9
    assert len(split_words(COMPLICATED, model="uniseg", ignore_punctuation=False)) == 14
    assert len(split_words(COMPLICATED, model="uniseg", ignore_whitespace=False, ignore_punctuation=True)) == 17
    assert len(split_words("One with CamelCasedWords", model="uniseg")) == 3
    assert len(split_words("Hello World and all", model="fasttext", ignore_punctuation=True)) == 4
    assert len(split_words("Hello World and all", model="split", ignore_punctuation=True)) == 4
    with pytest.raises(ValueError):
        split_words("Hello World and all", model="invalid")


# outputs of uniseg 0.8.1 `wordbreak.words`, recorded with that version
UNISEG_08 = {
    "don't": ["don", "'", "t"],
    "It's 3'4 O'Neil's": ["It", "'", "s", " ", "3", "'", "4", " ", "O", "'", "Neil", "'", "s"],
    "a  b\t\tc \r\n d": ["a", " ", " ", "b", "\t", "\t", "c", " ", "\r\n", " ", "d"],
    "👨\u200d👩\u200d👧 🇺🇸🇫🇷 👍🏽": ["👨", "\u200d", "👩", "\u200d", "👧", " ", "🇺🇸🇫🇷", " ", "👍🏽"],
    COMPLICATED: ["Also", " ", "one", " ", "with", " ", "complications", " ", "e.g", ".", ",", " ", "a", " ", "1.4", " ",
                  "floating", " ", "points", ".", ".", "."],
    "क्\u200dष": ["क्", "\u200d", "ष"],
    "rock’n’roll don’t": ["rock’n’roll", " ", "don’t"],
    "1,000.5 a:b 5.6.7 _x a_b": ["1,000.5", " ", "a:b", " ", "5.6.7", " ", "_x", " ", "a_b"],
}


@pytest.mark.parametrize("text", list(UNISEG_08))
def test_uniseg_words_match_uniseg_08(text):
    assert uniseg_words(text) == UNISEG_08[text]
    assert split_words(text, "uniseg", ignore_punctuation=True) == [w for w in UNISEG_08[text] if w[0].isalnum()]


def _varied_text() -> str:
    pages = generate_pages(40, seed=3)
    extra = ("naïve café l’été Ελληνικά русский 日本語のテキスト 中文 한국어 ½ cup x² ①② Ⅻ 一二 a\u0301b "
             "e.g. 3.14 1,000.5 example.com a:b _x __init__ x\u200by $5 #tag @at 50% 𝟙𝟚 ꧐ ‘y’ “q” — … ©")
    return "\n".join(p["text"] for p in pages) + "\n" + extra


def _uniseg_010_as_08(text: str) -> list[str]:
    """uniseg 0.10's segments turned into 0.8's, for text without apostrophes, ZWJ and regional indicators:
    0.8 splits a run of horizontal whitespace into single characters."""
    from uniseg.wordbreak import words

    out = []
    for w in words(text):
        if len(w) > 1 and w.isspace() and "\n" not in w and "\r" not in w and "\x0b" not in w and "\x0c" not in w:
            out.extend(w)
        else:
            out.append(w)
    return out


def test_uniseg_words_equal_uniseg_on_varied_text():
    pytest.importorskip("uniseg")
    text = _varied_text().replace("'", "")
    assert "\u200d" not in text
    assert uniseg_words(text) == _uniseg_010_as_08(text)
    assert split_words(text, "uniseg", ignore_punctuation=True) == [w for w in _uniseg_010_as_08(text) if w[0].isalnum()]


def test_uniseg_alnum_words_with_apostrophes_match_full_segmentation():
    text = _varied_text()
    assert "'" in text
    assert split_words(text, "uniseg", ignore_punctuation=True) == [w for w in uniseg_words(text) if w[0].isalnum()]


def test_fasttext_tokenize_equals_fasttext():
    fasttext = pytest.importorskip("fasttext")
    rng = random.Random(0)
    alphabet = "ab é日 \n\r\t\x0b\x0c\x00\u00a0.,'-"
    texts = ["", " ", "\n", "a\n", "a b\nc", "\n\n x", " a\u00a0b "] + [
        "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 40))) for _ in range(500)]
    texts += [p["text"] for p in generate_pages(20, seed=1)]
    for t in texts:
        assert fasttext_tokenize(t) == fasttext.FastText.tokenize(t), repr(t)


@pytest.mark.parametrize("model", ["fasttext", "uniseg", "split"])
@pytest.mark.parametrize("ignore_punctuation", [True, False])
@pytest.mark.parametrize("ignore_whitespace", [True, False])
def test_count_words_equals_len_split_words(model, ignore_punctuation, ignore_whitespace):
    texts = [p["text"] for p in generate_pages(30, seed=5)] + ["", "é x", "\x00a b", " 1 _a ½"]
    for t in texts:
        assert count_words(t, model, ignore_punctuation, ignore_whitespace) == len(
            split_words(t, model, ignore_punctuation, ignore_whitespace))


def test_split_words_filters():
    text = "Hi, you  there!\n"
    assert split_words(text, "uniseg", ignore_punctuation=True, ignore_whitespace=False) == ["Hi", " ", "you", " ", " ", "there", "\n"]
    assert split_words(text, "uniseg", ignore_punctuation=False, ignore_whitespace=True) == ["Hi", ",", "you", "there", "!"]
    assert split_words(text, "fasttext", ignore_punctuation=False) == ["Hi,", "you", "there!", "</s>"]


def test_join():
    assert join_sentences(["Hello", "World and all", "and beyond"]) == "Hello World and all and beyond"
    assert join_sentences([]) == ""
    assert join_sentences(["Hello", "World"], sep="-") == "Hello-World"
    assert join_paragraphs(["Hello", "World and all", "and beyond"]) == "Hello\nWorld and all\nand beyond"
