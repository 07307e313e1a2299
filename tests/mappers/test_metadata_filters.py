import pickle
import random
import re

import pytest

from dclm.errors import DclmError
from dclm.mappers.filters.metadata_filters import (
    language_filter,
    quality_filter,
    random_sampling_filter,
    url_substring_filter,
)


def U(url, **kw):
    return {"url": url, "text": "t", **kw}


def test_random_sampling_filter_draws_from_the_global_random():
    page = {"text": "the same page every time"}
    for seed in (1, 2, 3):
        random.seed(seed)
        kept = [bool(random_sampling_filter(page, 0.1)) for _ in range(10_000)]
        assert 900 <= sum(kept) <= 1100
        random.seed(seed)
        assert [bool(random_sampling_filter(page, 0.1)) for _ in range(10_000)] == kept
    assert random_sampling_filter(page, 1.0) == [page] and random_sampling_filter(page, 0.0) == []
    for bad in (1.1, -0.1):
        with pytest.raises(AssertionError):
            random_sampling_filter(page, bad)


def test_language_filter_strictly_greater():
    page = {"lid": {"en": 0.65}}
    assert language_filter(page, ["en"], key="lid", threshold=0.65) == []
    page = {"lid": {"en": 0.66}}
    assert language_filter(page, ["en"], key="lid", threshold=0.65) == [page]
    page = {"lid": {"fr": 0.99, "en": 0.3}}
    assert language_filter(page, ["de", "en"], key="lid", threshold=0.2) == [page]
    assert language_filter({"lid": {}}, ["en"], key="lid") == []
    with pytest.raises(TypeError):
        language_filter(page, "en", key="lid")
    with pytest.raises(AssertionError):
        language_filter({"text": "x"}, ["en"])


def test_quality_filter():
    page = {"fasttext_hq_prob": 0.5}
    assert quality_filter(page, threshold=0.5) == [page]  # >=
    assert quality_filter(page, threshold=0.51) == []
    assert quality_filter(page, threshold=0.5, lower_better=True) == [page]
    assert quality_filter(page, threshold=0.49, lower_better=True) == []
    with pytest.raises(AssertionError):
        quality_filter({"text": "x"})
    assert quality_filter({"text": "x"}, key_must_exist=False, threshold=-1e300) == []  # missing = -inf
    assert quality_filter({"text": "x"}, key_must_exist=False, lower_better=True, threshold=1e300) == []


def test_url_substring_filter_exact_domain_ignore_www_quirk():
    f = url_substring_filter(banlist=["bad.com", "evil.org"], exact_domain_match=True, ignore_chars=["www"])
    assert f(U("https://bad.com/x")) == []
    assert f(U("http://EVIL.org")) == []
    assert f(U("https://sub.bad.com/")) != []  # exact netloc only
    # "www" is deleted anywhere in the netloc, so "www.bad.com" becomes ".bad.com" and is not matched
    assert f(U("https://www.bad.com/")) != []
    assert f(U("https://bad.com:8080/")) != []  # ports defeat exact matching too
    g = url_substring_filter(banlist=["le.com"], exact_domain_match=True)
    assert g(U("https://google.com")) != []


def test_url_substring_filter_substrings_words_and_counts():
    strict = url_substring_filter(banlist=["badword"], ignore_chars=["-", "."])
    assert strict(U("https://ok.com/bad-word.html")) == []
    assert strict(U("https://ok.com/BADWORDS")) == []  # substring, case-insensitive
    hard = url_substring_filter(banlist=["cam"], match_substrings=False)
    assert hard(U("https://x.com/camera")) != []
    assert hard(U("https://x.com/cam/live")) == []
    soft = url_substring_filter(banlist=["escort", "nude", "live"], num_banned_substrs=2, match_substrings=False)
    assert soft(U("https://x.com/escort/escort")) != []  # distinct items count
    assert soft(U("https://x.com/escort-nude")) == []
    cs = url_substring_filter(banlist=["Bad"], case_sensitive=True)
    assert cs(U("https://x.com/bad")) != [] and cs(U("https://x.com/Bad")) == []


def test_url_substring_filter_real_banlists(reference_dir):
    d = reference_dir / "banlists"
    hard = url_substring_filter(banlist_from_fname=str(d / "refinedweb_banned_words_hard_reverse_engineered.txt"),
                                match_substrings=False)
    assert hard(U("https://shop.example.com/bondage-gear")) == []
    assert hard(U("https://www.gardening.example.org/tomatoes")) != []


def test_url_substring_filter_pickled_regex(tmp_path):
    p = tmp_path / "ban.pkl"
    p.write_bytes(pickle.dumps(re.compile(r"bad|worse")))
    f = url_substring_filter(banlist_from_fname=str(p))
    assert f(U("https://x.com/worse")) == [] and f(U("https://x.com/ok")) != []
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps({"not": "a pattern"}))
    with pytest.raises(Exception):
        url_substring_filter(banlist_from_fname=str(evil))
    with pytest.raises(AssertionError):
        url_substring_filter(banlist_from_fname=str(p), exact_domain_match=True)


def test_url_substring_filter_missing_banlist_is_one_line_error(tmp_path, monkeypatch):
    monkeypatch.setenv("DCLM_ASSETS_DIR", str(tmp_path))
    with pytest.raises(DclmError, match="dclm assets fetch"):
        url_substring_filter(banlist_from_fname="baselines/mappers/banlists/nope.txt")
