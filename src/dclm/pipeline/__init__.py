"""DCLM-format YAML pipelines of mappers over page shards: config, execution, stats, resume."""


def __getattr__(name: str):
    # imported on first use so that building the CLI parser stays cheap
    if name in ("ProcessResult", "run_process"):
        from dclm.pipeline import runner

        return getattr(runner, name)
    raise AttributeError(f"module 'dclm.pipeline' has no attribute {name!r}")


__all__ = ["ProcessResult", "run_process"]
