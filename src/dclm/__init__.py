"""dclm: DataComp for Language Models, re-implemented as one installable package."""

__version__ = "0.1.0"
