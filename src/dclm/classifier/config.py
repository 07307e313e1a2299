"""`dclm classifier score` and `select` parameters (kept apart from score.py/select.py so that building the
CLI imports nothing heavy)."""

from __future__ import annotations

from dataclasses import dataclass

from dclm.classifier.model import DEFAULT_KEY
from dclm.runtime.config import ConfigError, arg, as_tuples
from dclm.runtime.jobs import Execution

REPORT = "_select_report.json"


@dataclass(frozen=True, kw_only=True)
class ScoreConfig(Execution):
    """Score every page under `inputs` with the fastText `model` into sidecar shards under `output`."""

    model: str = arg(help="fastText model: a path, a file in DCLM's quality_prediction_enrichment_models/, or a "
                     "dclm asset name")
    inputs: tuple[str, ...] = arg(flag="--input", help="page shards or folders (local paths or fsspec URLs)")
    output: str = arg(help="folder for the sidecar attribute shards")
    key: str = arg(DEFAULT_KEY, help="attribute name for the score (DCLM's YAML uses fasttext_oh_eli5_vs_rw_v2_prob)")
    text_key: str = arg("text", help="page field holding the text")
    batch_size: int = arg(1024, help="pages per fastText predict call")
    overwrite: bool = arg(False, help="rescore every shard instead of resuming")

    def __post_init__(self):
        as_tuples(self, "inputs")
        if self.batch_size < 1:
            raise ConfigError("batch_size", f"must be at least 1, got {self.batch_size}")


@dataclass(frozen=True, kw_only=True)
class SelectConfig(Execution):
    """Keep pages by their sidecar scores: `threshold`, or the best `keep_top_fraction` of scored pages."""

    attributes: str = arg(help="sidecar folder written by `dclm classifier score`")
    threshold: float | None = arg(None, metavar="T", help="keep pages with score >= T (DCLM's quality_filter)")
    keep_top_fraction: float | None = arg(None, metavar="F", help="keep the top F of scored pages (e.g. 0.1)")
    inputs: tuple[str, ...] = arg((), flag="--input", help="the page shards that were scored (needed with --output)")
    output: str | None = arg(None, help="folder for the kept pages, mirroring input paths (none = a report only)")
    key: str | None = arg(None, help="score attribute (none = the one recorded by `score`)")
    report: str | None = arg(None, help=f"JSON report path (none = OUTPUT/{REPORT}, or stdout without --output)")
    add_score: bool = arg(True, help="copy the score into kept pages (DCLM's enricher leaves it there)")
    bins: int = arg(20, help="score histogram bins over [0, 1]")

    def __post_init__(self):
        as_tuples(self, "inputs")
        if (self.threshold is None) == (self.keep_top_fraction is None):
            raise ConfigError("threshold", "give exactly one of threshold and keep_top_fraction")
        if self.keep_top_fraction is not None and not 0.0 <= self.keep_top_fraction <= 1.0:
            raise ConfigError("keep_top_fraction", f"must be in [0, 1], got {self.keep_top_fraction}")
        if self.output and not self.inputs:
            raise ConfigError("output", "needs inputs (the page shards that were scored)")
