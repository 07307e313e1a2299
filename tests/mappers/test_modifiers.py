import copy
import functools
import random
import re

import pytest
from retrie.retrie import Blacklist

from dclm.mappers.modifiers import (
    citation_removal_modifier,
    counter_line_modifier,
    html_content_extraction_modifier,
    join_lines_modifier,
    key_name_modifier,
    line_length_modifier,
    move_url_modifier,
    newline_removal_modifier,
    numeric_ratio_line_modifier,
    punctuation_line_modifier,
    split_lines_modifier,
    substring_line_modifier,
    uppercase_ratio_line_modifier,
    url_removal_modifier,
    within_page_dedup,
    word_length_modifier,
)


def P(text, **kw):
    return {"text": text, **kw}


def text_of(out):
    return out[0]["text"] if out else None


# ---------------------------------------------------------------- plain twins (DCLM's straightforward code)

def _plain_substring_line(text, banlist, case_sensitive=False, location="any", max_length=None, remove_substring_only=False):
    banlist = [banlist] if isinstance(banlist, str) else banlist
    banlist = banlist if case_sensitive else [b.lower() for b in banlist]
    pat = f"(?:{'|'.join(banlist)})"
    pat = {"prefix": rf"^{pat}\s?", "suffix": rf"\s?{pat}$"}.get(location, rf"\s?{pat}")
    rx = re.compile(pat) if case_sensitive else re.compile(pat, re.I)
    out = []
    for line in text.split("\n"):
        if max_length is None or len(line.split()) <= max_length:
            if remove_substring_only:
                new = rx.sub("", line)
                if line and (not new or new.isspace()):
                    continue
                line = new
            elif rx.search(line):
                continue
        out.append(line)
    doc = "\n".join(out).strip()
    return doc or None


def _plain_ratio(text, max_ratio, pred):
    lines = [ln for ln in text.split("\n") if not ln or sum(pred(c) for c in ln) / len(ln) <= max_ratio]
    return "\n".join(lines).strip() or None


_COUNTER = re.compile(r"^\W*\d(?:,|\.|\d)*(?:K|k|M|m|B|b)?\s+(?:likes|shares|comments|retweets|reposts|quotes|bookmarks|"
                      r"upvotes|downvotes|downloads|views|followers)\W*$")


def _plain_counter(text):
    return "\n".join(ln for ln in text.split("\n") if not _COUNTER.search(ln.lower())).strip() or None


@functools.lru_cache(maxsize=2)
def _plain_url_regexes(tlds_path):
    tlds = [re.escape(t) for t in open(tlds_path).read().splitlines()]
    trie = Blacklist(tlds, match_substrings=True).compiled
    url = re.compile(rf"\s{{0,10}}(?:((https?|ftp)://))?[-a-zA-Z0-9@:%._\+~#=]{{1,256}}\.({trie.pattern})\b"
                     r"([-a-zA-Z0-9()@:%_\+.~#?&//=]*)")
    ip = re.compile(r"\s{0,10}\b((https?|ftp)://)?(?:[0-2]?[0-9]{1,2}\.){3}[0-2]?[0-9]{1,2}[-a-zA-Z0-9()@:%_\+.~#?&//=]*")
    return trie, url, ip


def _plain_url_removal(text, tlds_path):
    trie, url, ip = _plain_url_regexes(tlds_path)
    if trie.match(text):
        text = url.sub("", text)
    text = ip.sub("", text)
    return text or None


def _texts(web_pages):
    rng = random.Random(4)
    extra = ["", "\n", "a\n   \nb", "a\n\t\n", " \u00a0\nx", "12 likes", "THE END\nok", "read more...\nx Read more...", "Sign-in to comment\nSign-in",
             "3 items in cart\nitems in cart", " \n \n", "é É 1²3", "Ⅻ ① 2023", "  12,345 views  \nx", "1.2K Followers!!"]
    extra += ["".join(rng.choice(["A", "a", "1", " ", "\n", ".", "likes", "Read more...", "É", "²"]) for _ in range(rng.randrange(30)))
              for _ in range(300)]
    return [p["text"] for p in web_pages] + extra


# ---------------------------------------------------------------- tests

def test_move_url_and_key_name():
    page = {"text": "x", "metadata": {"WARC-Target-URI": "https://a.b/c"}}
    assert move_url_modifier(page) == [page] and page["url"] == "https://a.b/c"
    page = {"content": "x"}
    assert key_name_modifier(page) == [{"text": "x"}]
    page = {"content": "x", "text": "y"}
    with pytest.warns(UserWarning, match="text is already in the page but allow_overwrite is set to False."):
        assert key_name_modifier(page) == [{"content": "x", "text": "y"}]
    assert key_name_modifier(page, allow_overwrite=True) == [{"text": "x"}]
    assert key_name_modifier({"a": 1}) == [{"a": 1}]


def test_substring_line_modifier_recipe_steps():
    cart = substring_line_modifier(banlist="items in cart", max_length=10, remove_substring_only=True)
    assert text_of(cart(P("Welcome\n3 items in cart\nok"))) == "Welcome\n3\nok"
    assert text_of(cart(P("items in cart\nok"))) == "ok"  # a line left blank is dropped
    assert text_of(cart(P("a\n   \nb"))) == "a\nb"  # DCLM: whitespace-only lines go too, match or not
    read = substring_line_modifier(banlist="Read more...", location="suffix", max_length=10, remove_substring_only=True)
    assert text_of(read(P("Great recipe. Read more...\nx"))) == "Great recipe.\nx"
    assert text_of(read(P("Great recipe. Read moreXYZ\nx"))) == "Great recipe.\nx"  # unescaped dots are wildcards
    long_line = "one two three four five six seven eight nine ten eleven Read more..."
    assert text_of(read(P(long_line))) == long_line  # lines over max_length words are untouched
    sign = substring_line_modifier(banlist="Sign-in", location="prefix", max_length=10, remove_substring_only=True)
    assert text_of(sign(P("Sign-in to comment\nplease Sign-in"))) == "to comment\nplease Sign-in"
    assert sign(P("Sign-in")) == []
    whole = substring_line_modifier(banlist=["javascript"])
    assert text_of(whole(P("a\nEnable JavaScript now\nb"))) == "a\nb"
    cs = substring_line_modifier(banlist=["Foo"], case_sensitive=True)
    assert text_of(cs(P("foo\nFoo"))) == "foo"


@pytest.mark.parametrize("kwargs", [
    dict(banlist="items in cart", max_length=10, remove_substring_only=True),
    dict(banlist="Read more...", location="suffix", max_length=10, remove_substring_only=True),
    dict(banlist="Sign-in", location="prefix", max_length=10, remove_substring_only=True),
    dict(banlist=["terms of use", "privacy policy", "cookie policy", "uses cookies", "use of cookies", "use cookies"]),
    dict(banlist=["(?<=x)likes"]),  # a lookaround item: the probe is not used
    dict(banlist=["^a", "b$"], location="any"),
])
def test_substring_line_modifier_equals_plain(web_pages, kwargs):
    mod = substring_line_modifier(**kwargs)
    for t in _texts(web_pages):
        assert text_of(mod(P(t))) == _plain_substring_line(t, **kwargs), repr(t)


def test_ratio_line_modifiers_equal_plain(web_pages):
    up = uppercase_ratio_line_modifier
    for t in _texts(web_pages):
        assert text_of(up(P(t), 0.5)) == _plain_ratio(t, 0.5, str.isupper)
        assert text_of(numeric_ratio_line_modifier(P(t), 0.999999)) == _plain_ratio(t, 0.999999, str.isdigit)
        assert text_of(numeric_ratio_line_modifier(P(t), 0.3)) == _plain_ratio(t, 0.3, str.isdigit)


def test_ratio_line_modifiers():
    assert text_of(uppercase_ratio_line_modifier(P("BUY NOW\nHello there\n\nOK ok"))) == "Hello there\n\nOK ok"
    assert text_of(numeric_ratio_line_modifier(P("2023\nIn 2023 we\n12 34"), 0.999999)) == "In 2023 we\n12 34"
    assert numeric_ratio_line_modifier(P("2023"), 0.999999) == []


def test_counter_line_modifier():
    mod = counter_line_modifier()
    assert text_of(mod(P("Nice post\n12 likes\n1.2K Views\n(3,456 comments)\n5 people like this"))) == \
        "Nice post\n5 people like this"
    assert mod(P("10 likes")) == []


def test_counter_line_modifier_equals_plain(web_pages):
    mod = counter_line_modifier()
    for t in _texts(web_pages) + ["LI\u212aES\n3 li\u212aes"]:  # Kelvin sign lowercases to "k"
        assert text_of(mod(P(t))) == _plain_counter(t), repr(t)


def test_url_removal_modifier_anchored_gate(tlds_path):
    mod = url_removal_modifier(tlds_filepath=tlds_path)
    # the text starts with "Th" (".th" is a TLD): the gate passes and URLs are removed
    assert text_of(mod(P("The site www.example.com/page is up"))) == "The site is up"
    # the text starts with no TLD-like string: URLs stay (DCLM's re.match quirk)
    assert text_of(mod(P("Hello, see www.example.com/page today"))) == "Hello, see www.example.com/page today"
    # IPv4-style URLs are removed regardless of the gate
    assert text_of(mod(P("Hello, see http://192.168.0.1/admin today"))) == "Hello, see today"
    assert mod(P("th.com")) == []  # an emptied text drops the page


def test_url_removal_modifier_equals_plain(tlds_path, web_pages):
    mod = url_removal_modifier(tlds_filepath=tlds_path)
    texts = _texts(web_pages) + ["The a.com b.org", "In x\n  http://a.co.uk/?q=1 and 10.0.0.1:8080/x", "Com.COM", "at 1.2.3.4"]
    for t in texts:
        assert text_of(mod(P(t))) == _plain_url_removal(t, tlds_path), repr(t)


def test_url_removal_modifier_equals_plain_random(tlds_path):
    mod = url_removal_modifier(tlds_filepath=tlds_path)
    rng = random.Random(9)
    parts = ["The", "th", "x", ".com", ".org", "example", "http://", "ftp://", "/", "?q=1", "1", "10.0.0.1", ".2.3",
             "(", ")", "a@b", "-", "_", " ", "  ", " " * 12, "\n", "\t", "\u00a0", "é", "www.", ".co.uk", "#", ":80"]
    for _ in range(3000):
        t = "".join(rng.choice(parts) for _ in range(rng.randrange(1, 25)))
        assert text_of(mod(P(t))) == _plain_url_removal(t, tlds_path), repr(t)


def test_url_removal_default_path_resolves_in_dclm_checkout(in_dclm_workdir):
    mod = url_removal_modifier()
    assert text_of(mod(P("The site a.com is"))) == "The site is"


def test_newline_removal_modifier():
    mod = newline_removal_modifier(max_consecutive=2)
    assert text_of(mod(P("a\n\n\n\nb\n\nc\nd"))) == "a\n\nb\n\nc\nd"
    assert text_of(newline_removal_modifier(max_consecutive=1)(P("a\n\nb"))) == "a\nb"
    assert newline_removal_modifier()(P("")) == [P("")]  # never drops


def test_line_modifiers():
    assert text_of(line_length_modifier(P("one\ntwo words\n\nthree more words"), min_length=2)) == "two words\n\nthree more words"
    assert text_of(line_length_modifier(P("a b c\n  \nx y"), min_length=2)) == "a b c\nx y"  # whitespace-only lines go
    assert text_of(line_length_modifier(P("a b c\nd"), max_length=2)) == "d"
    assert line_length_modifier(P("a"), min_length=2) == []
    assert text_of(word_length_modifier(P("ok line\n" + "x" * 12 + " y"), max_length=10, model="split")) == "ok line"
    punct = punctuation_line_modifier()
    assert text_of(punct(P("Ends well.\nno end\n\nQuote\"\nWait…"))) == "Ends well.\n\nQuote\"\nWait…"
    ell = punctuation_line_modifier(remove_ellipses=True)
    assert text_of(ell(P("Fine.\nAnd so...\nHm…  "))) == "Fine."
    assert text_of(citation_removal_modifier()(P("Fact[1] and[edit] more[citation needed][]."))) == "Fact and more."


def test_within_page_dedup():
    page = P("A\nb\na \n\nB\nc\n\n")
    assert text_of(within_page_dedup(page)) == "A\nb\n\nc\n\n"
    page = P("A\nb\na")
    assert text_of(within_page_dedup(page, normalize=False)) == "A\nb\na"
    page = P("p1\n\np2\n\nP1")
    assert text_of(within_page_dedup(page, granularity="paragraph")) == "p1\n\np2"
    with pytest.raises(ValueError):
        within_page_dedup(P("x"), granularity="word")


def test_split_and_join_lines():
    page = P("a\nb")
    assert split_lines_modifier(page) == [P(["a", "b"])]
    assert split_lines_modifier(page) == [P(["a", "b"])]  # already a list
    assert join_lines_modifier(page) == [P("a\nb")]
    assert split_lines_modifier(P("")) == [] and join_lines_modifier(P([])) == []
    with pytest.raises(TypeError):
        split_lines_modifier(P(3))


def test_html_content_extraction_modifier():
    html = "<html><body><p>First paragraph of text here.</p><div>Menu</div><p>Second one.</p></body></html>"
    out = html_content_extraction_modifier(P(html))
    assert text_of(out) == "First paragraph of text here.\n\nMenu\n\nSecond one."
    assert html_content_extraction_modifier(P("")) == []


def test_modifiers_do_not_touch_other_keys(web_pages):
    page = copy.deepcopy(web_pages[0])
    before = {k: v for k, v in page.items() if k != "text"}
    uppercase_ratio_line_modifier(page)
    assert {k: v for k, v in page.items() if k != "text"} == before
