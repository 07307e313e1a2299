"""DCLM-format YAML pipelines of mappers over page shards: config, execution, stats, resume.

The names are loaded on first use, so that building the CLI parser stays cheap.
"""

from dclm.lazy import lazy_exports

__all__ = ["ProcessConfig", "ProcessResult", "run_process"]
__getattr__ = lazy_exports(__name__, {**dict.fromkeys(__all__, "dclm.process.runner"), "ProcessConfig": "dclm.process.config"})
