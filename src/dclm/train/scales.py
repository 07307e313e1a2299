"""Training scales: DCLM's five competition scales (training/configs/*.json in mlfoundations/dclm) and small
ones that train on a laptop CPU.

A scale fixes the model shape, the token budget and the optimisation hyperparameters. Step counts follow
DCLM's training/params.py and open_lm's main.py: the budget (tokens x Chinchilla multiplier) is split into
`num_checkpoints` "epochs" of (budget // num_checkpoints) // seq_len sequences each, and
total_steps = sequences_per_epoch * num_checkpoints // global_batch_size (411m_1x -> 7,850 steps).
"""

from __future__ import annotations

import difflib
from dataclasses import asdict, dataclass

from dclm.errors import DclmError
from dclm.model.configs import get_config
from dclm.model.openlm import ModelArgs


@dataclass(frozen=True)
class Scale:
    name: str
    model: str  # a dclm.model.configs name
    tokens: int | None  # at chinchilla multiplier 1; None: 20 tokens per parameter, as DCLM's configs have it
    warmup: int
    lr: float
    wd: float
    cd: float  # the lr at the end of the cosine
    global_bs: int  # sequences per optimizer step
    micro_bs: int  # sequences per forward pass on one device (default; --micro-batch-size overrides)
    z_loss: float
    chinchilla_multiplier: float = 1.0
    seq_len: int | None = None  # None: the model config's
    vocab_size: int | None = None  # None: the model config's
    num_checkpoints: int = 5  # DCLM's --epochs: checkpoints over the run (and the budget's split)
    qk_norm: bool = True
    vocab_from_data: bool = False  # size the vocabulary to the data's tokenizer (padded to a multiple of 128)
    dclm: bool = False  # one of DCLM's competition scales

    def model_args(self) -> ModelArgs:
        overrides = {"apply_qk_norm": self.qk_norm}
        if self.seq_len is not None:
            overrides["seq_len"] = self.seq_len
        if self.vocab_size is not None:
            overrides["vocab_size"] = self.vocab_size
        return get_config(self.model, **overrides)

    @property
    def budget_tokens(self) -> int:
        tokens = self.tokens if self.tokens is not None else 20 * dclm_param_count(self.model_args())
        return int(tokens * self.chinchilla_multiplier)

    @property
    def total_steps(self) -> int:
        seq_len = self.model_args().seq_len
        per_epoch = (self.budget_tokens // self.num_checkpoints) // seq_len
        return per_epoch * self.num_checkpoints // self.global_bs

    def to_dict(self) -> dict:
        return asdict(self)


def dclm_param_count(args: ModelArgs) -> int:
    """Parameters as DCLM's configs count them: q/k-norm gains excluded (411m: 411,616,256)."""
    return args.num_params() - (2 * args.dim * args.n_layers if args.apply_qk_norm else 0)


def _dclm(name, model, tokens, warmup, lr, wd, global_bs, micro_bs, z_loss, mult=1.0) -> Scale:
    return Scale(name, model, tokens, warmup, lr, wd, 3e-5, global_bs, micro_bs, z_loss, mult, dclm=True)


# DCLM's values (training/configs/{411m_1x,1b_1x_fast,3b_1x_fast_3e-3_lr_1e-4_zloss,7b_*_fast_2e-3_lr_5e-6_zloss}.json);
# micro_bs is ours: what fits one 80 GB GPU in bf16 without activation checkpointing
SCALES: dict[str, Scale] = {s.name: s for s in (
    Scale("smoke", "smoke", tokens=819_200, warmup=10, lr=1e-2, wd=0.033, cd=3e-5, global_bs=16, micro_bs=16,
          z_loss=1e-4, vocab_from_data=True),
    Scale("10m", "10m", tokens=5_242_880, warmup=30, lr=3e-3, wd=0.033, cd=3e-5, global_bs=32, micro_bs=16,
          z_loss=1e-4, vocab_from_data=True),
    Scale("100m", "100m", tokens=None, warmup=1000, lr=3e-3, wd=0.033, cd=3e-5, global_bs=256,
          micro_bs=32, z_loss=1e-4),
    _dclm("411m_1x", "411m", 8_232_325_120, 2000, 3e-3, 0.033, 512, 16, 1e-4),
    _dclm("1b_1x", "1b", 28_795_904_000, 5000, 3e-3, 0.033, 256, 8, 1e-4),
    _dclm("3b_1x", "3b", 55_918_643_200, 5000, 3e-3, 0.033, 256, 4, 1e-4),
    _dclm("7b_1x", "7b", 137_788_211_200, 5000, 2e-3, 0.05, 2048, 2, 5e-6),
    _dclm("7b_2x", "7b", 137_788_211_200, 5000, 2e-3, 0.05, 2048, 2, 5e-6, mult=2.0),
)}
# DCLM's own file names for the same scales
ALIASES = {
    "1b_1x_fast": "1b_1x",
    "3b_1x_fast_3e-3_lr_1e-4_zloss": "3b_1x",
    "7b_1x_fast_2e-3_lr_5e-6_zloss": "7b_1x",
    "7b_2x_fast_2e-3_lr_5e-6_zloss": "7b_2x",
}


def get_scale(name: str) -> Scale:
    key = ALIASES.get(name, name)
    if key in SCALES:
        return SCALES[key]
    close = difflib.get_close_matches(name, list(SCALES) + list(ALIASES), n=3, cutoff=0.5)
    hint = f"; did you mean {' or '.join(close)}?" if close else f"; known: {', '.join(SCALES)}"
    raise DclmError(f"unknown scale {name!r}{hint} (dclm train --list-scales)")


def _short(n: float) -> str:
    for unit, size in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.3g}{unit}"
    return str(int(n))


def list_scales() -> str:
    """One line per scale, smallest first, the name as the first word (after one header line)."""
    rows = [("scale", "params", "non-embed", "tokens", "steps", "global_bs", "seq_len", "warmup", "lr", "source")]
    for s in sorted(SCALES.values(), key=lambda s: (s.model_args().num_params(), s.budget_tokens)):
        a = s.model_args()
        n = dclm_param_count(a)
        rows.append((s.name, _short(n), _short(n - a.vocab_size * a.dim),
                     _short(s.budget_tokens), f"{s.total_steps:,}", str(s.global_bs), str(a.seq_len), str(s.warmup),
                     f"{s.lr:g}", "DCLM" if s.dclm else "dclm"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    return "\n".join(lines + ["(params at vocab 50432; smoke and 10m size their vocabulary to the data's tokenizer)"])
