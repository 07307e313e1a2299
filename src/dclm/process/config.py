"""`dclm process`'s parameters (kept apart from runner.py so that building the CLI imports nothing heavy).
The pipeline YAML itself is parsed by pipeline.py."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from dclm.runtime.config import arg, as_tuples
from dclm.runtime.jobs import Execution

OUTPUT_FORMATS = ("same", "jsonl", "jsonl.gz", "jsonl.zst", "parquet")


@dataclass(frozen=True, kw_only=True)
class ProcessConfig(Execution):
    """Run the DCLM pipeline YAML `pipeline` over every page shard under `inputs` into `output`."""

    pipeline: str = arg(flag="--config", metavar="YAML", help="pipeline YAML: a path, or a bundled name such as "
                        "dclm_baseline_refinedweb")
    inputs: tuple[str, ...] = arg(flag="--input", help="input shard files or directories (local paths or fsspec URLs)")
    output: str = arg(help="output directory; results go under OUTPUT/<yaml name>/")
    source_name: str | None = arg(None, help="which `source` entry of the YAML to run (none = the only one)")
    overwrite: bool = arg(False, help="discard earlier outputs instead of resuming")
    mapper_modules: tuple[str, ...] = arg((), flag="--mappers-module", metavar="MODULE", repeatable=True,
                                          help="import user mappers from a module name or a .py file (repeatable); "
                                          "register them with dclm.mappers.register, or name them in YAML as a "
                                          "dotted path")
    output_format: Literal[OUTPUT_FORMATS] = arg("same", help="format of processed_data files (same = as each input)")
    seed: int = arg(0, help="run seed: mappers drawing from Python's `random` (random_sampling_filter) see it "
                    "seeded per shard and step from it")

    def __post_init__(self):
        as_tuples(self, "inputs")
