"""DCLM-format YAML pipelines of mappers over page shards: config, execution, stats, resume."""

from dclm.pipeline.runner import ProcessResult, run_process

__all__ = ["ProcessResult", "run_process"]
