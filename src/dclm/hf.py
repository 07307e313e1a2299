"""`import dclm.hf` registers model_type "openlm" with transformers' Auto classes; the code is dclm.model.hf."""

from dclm.model.hf import *  # noqa: F401,F403
from dclm.model.hf import __all__  # noqa: F401
