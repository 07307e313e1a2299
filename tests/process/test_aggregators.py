import pytest

from dclm.errors import DclmError
from dclm.process.aggregators import histogram, make_aggregator, percentiles, threshold_transform


def test_percentiles_nearest():
    out = percentiles(list(range(1, 11)))
    assert out["min"] == 1 and out["max"] == 10 and out["mean"] == 5.5
    assert out["median"] == 5 or out["median"] == 6
    assert out["p99"] == 10 and out["p25"] == 3


def test_histogram_strings_and_numbers():
    assert histogram(["en", "fr", "en"]) == {"en": 2, "fr": 1}
    h = histogram([0.0, 1.0, 1.0, 2.0])
    assert sum(h.values()) == 4 and len(h) == 10


def test_threshold_transform():
    assert threshold_transform({"en": 0.995, "fr": 0.2}, 0.99) == "en"
    assert threshold_transform({"en": 0.5}, 0.99) == "unknown"
    assert threshold_transform({"en": 0.5}, 0.99, default="x") == "x"


def test_make_aggregator_with_transform():
    agg = make_aggregator("lang", {"type": "histogram", "transform": "threshold_transform", "threshold": 0.99, "default": "unknown"})
    assert agg([{"en": 0.999}, {"en": 0.5}, {"de": 1.0}]) == {"de": 1, "en": 1, "unknown": 1}
    with pytest.raises(DclmError, match="unknown type"):
        make_aggregator("k", "median")
