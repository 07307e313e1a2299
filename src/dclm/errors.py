"""Errors that reach the user as one line and a non-zero exit code."""


class DclmError(Exception):
    """A user-facing failure: bad input, bad config, missing file. The CLI prints `dclm: <message>`."""

    exit_code = 2


class ShardFailed(DclmError):
    """One input shard could not be processed (e.g. truncated archive); the others still finish."""

    exit_code = 1
