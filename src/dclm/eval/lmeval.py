"""lm-evaluation-harness adapter: our checkpoints as lm-eval model `dclm`, scored by dclm.eval's own code.

    lm_eval.simple_evaluate(model="dclm", model_args={"pretrained": DIR}, tasks=[...])   # after `import dclm.eval.lmeval`
    python -m dclm.eval.lmeval run --model dclm --model_args pretrained=DIR --tasks hellaswag

Importing this module registers the model. lm-eval 0.4.13 reads no plugin entry points, so its own
`lm_eval` command does not know `dclm`; `python -m dclm.eval.lmeval` is that command with `dclm` registered.
(The `lm_eval.models` entry point in pyproject.toml is for lm-eval releases that discover plugins.)

The numbers come from dclm.eval: loglikelihoods from `score_shared_prefix` (requests with the same context
tokens share one context pass, as the choices of a multiple-choice question do), greedy generation from
`generate_ours`. Tokenization, truncation and rolling windows follow lm-eval's HFLM conventions: the
context's trailing spaces move into the continuation, context + continuation is encoded whole and split
at the context's length, over-long inputs lose their left end, an empty context becomes EOS.
"""

from __future__ import annotations

import lm_eval.models  # noqa: F401  (lm-eval fills its registry with the built-in models only while it is empty)
from lm_eval.api.model import TemplateLM
from lm_eval.api.registry import register_model

from dclm.errors import DclmError
from dclm.runtime.config import ConfigError

# requests scored per call of the scorer (it sorts each chunk by length); chunks keep the progress bar moving
_CHUNK = 2048


def _batch_size(batch_size, max_batch_size) -> int:
    """lm-eval's batch_size: an int (or its string); "auto" = max_batch_size (default 64), since the scorer
    caps each batch by padded tokens anyway."""
    if isinstance(batch_size, str) and batch_size.startswith("auto"):
        return int(max_batch_size or 64)
    try:
        n = int(batch_size)
    except (TypeError, ValueError):
        raise ConfigError("batch_size", f"{batch_size!r} is not an integer or 'auto'") from None
    if n < 1:
        raise ConfigError("batch_size", "must be at least 1")
    return n


_DTYPE_NAMES = {"auto": None, "fp32": "fp32", "float32": "fp32", "bf16": "bf16", "bfloat16": "bf16",
                "fp16": "fp16", "float16": "fp16", "half": "fp16"}


@register_model("dclm")
class DclmLM(TemplateLM):
    """model_args: pretrained=DIR (DCLM/open_lm layout), tokenizer=PATH (default DIR/tokenizer.json, else
    GPT-NeoX-20B), batch_size, device (default cuda when available), dtype (fp32/bf16/fp16, default bf16 on
    cuda and fp32 on cpu), max_length (default the model's seq_len), max_gen_toks (default 256)."""

    def __init__(self, pretrained: str, tokenizer: str | None = None, batch_size: int | str = 16,
                 max_batch_size: int | None = None, device: str | None = None, dtype: str | None = None,
                 max_length: int | None = None, max_gen_toks: int = 256):
        super().__init__()
        from pathlib import Path

        from dclm.eval.runner import device_and_dtype
        from dclm.generate.tokenizer import load_tokenizer
        from dclm.model.checkpoint import load_model

        if not Path(pretrained).is_dir():
            raise ConfigError("pretrained", f"{pretrained}: no such directory")
        dtype_key = "auto" if dtype is None else str(dtype).lower()
        if dtype_key not in _DTYPE_NAMES:
            raise ConfigError("dtype", f"{dtype!r}: use fp32, bf16 or fp16")
        self._device, torch_dtype = device_and_dtype(device, _DTYPE_NAMES[dtype_key])
        self.model = load_model(pretrained, device=self._device, dtype=torch_dtype).eval()
        self.tokenizer = load_tokenizer(pretrained, tokenizer)
        self.batch_size = _batch_size(batch_size, max_batch_size)
        self.max_length = int(max_length or self.model.args.seq_len)
        self.max_gen_toks = int(max_gen_toks)
        if self.max_length < 2:
            raise ConfigError("max_length", "must be at least 2")
        if self.max_gen_toks < 1:
            raise ConfigError("max_gen_toks", "must be at least 1")
        self.pretrained = str(pretrained)

    # ---- TemplateLM's hooks ----
    @property
    def eot_token_id(self) -> int:
        return 0  # GPT-NeoX <|endoftext|>, DCLM's EOS and pad (as dclm eval uses it)

    @property
    def tokenizer_name(self) -> str:
        return self.pretrained

    def tok_encode(self, string: str, add_special_tokens: bool | None = None, **kwargs) -> list[int]:
        return self.tokenizer.encode(string)  # GPT-NeoX has no BOS: nothing to add either way

    def _rows(self, pairs):
        """Rows for (context ids, continuation ids), left-truncated to max_length inputs as HFLM does."""
        from dclm.eval.prompts import Row

        rows = []
        for ctx, cont in pairs:
            seq = (list(ctx) + list(cont))[-(self.max_length + 1):]
            n = min(len(cont), len(seq) - 1)
            rows.append(Row(tuple(seq[:-n]), tuple(seq[-n:])))
        return rows

    def _score(self, pairs, desc: str, disable_tqdm: bool):
        """RowScores of (context ids, continuation ids) pairs, in order (continuations must be non-empty)."""
        from tqdm import tqdm

        from dclm.eval.prefix import score_shared_prefix

        rows = self._rows(pairs)
        out = []
        with tqdm(total=len(rows), desc=desc, disable=disable_tqdm) as bar:
            for start in range(0, len(rows), _CHUNK):
                chunk = rows[start:start + _CHUNK]
                # one "item" for the whole chunk: every request with the same context tokens shares its pass
                out.extend(score_shared_prefix(self.model, chunk, [0] * len(chunk), self.batch_size,
                                               pad_id=self.eot_token_id))
                bar.update(len(chunk))
        return out

    def _loglikelihood_tokens(self, requests, disable_tqdm: bool = False, **kwargs) -> list[tuple[float, bool]]:
        scored = [i for i, (_, _, cont) in enumerate(requests) if cont]
        scores = self._score([(requests[i][1], requests[i][2]) for i in scored], "dclm loglikelihood", disable_tqdm)
        out: list[tuple[float, bool]] = [(0.0, True)] * len(requests)  # an empty continuation has probability 1
        for i, s in zip(scored, scores):
            out[i] = (-s.ce_sum, s.exact)
        for (key, _, _), res in zip(requests, out):
            self.cache_hook.add_partial("loglikelihood", key, res)
        return out

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False) -> list[float]:
        from lm_eval.utils import get_rolling_token_windows, make_disjoint_window

        windows, owner = [], []
        for k, req in enumerate(requests):
            tokens = self.tok_encode(req.args[0])
            for w in get_rolling_token_windows(token_list=tokens, prefix_token=self.prefix_token_id,
                                               max_seq_len=self.max_length, context_len=1):
                windows.append(make_disjoint_window(w))
                owner.append(k)
        out = [0.0] * len(requests)
        for k, s in zip(owner, self._score(windows, "dclm loglikelihood_rolling", disable_tqdm)):
            out[k] -= s.ce_sum
        for req, res in zip(requests, out):
            self.cache_hook.add_partial("loglikelihood_rolling", req.args, res)
        return out

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        """Greedy decoding only (lm-eval's default for generation tasks); requests sharing the same stop
        strings and token budget are decoded together."""
        from lm_eval.models.utils import handle_stop_sequences
        from tqdm import tqdm

        from dclm.eval.answers import decode_generated
        from dclm.eval.greedy import generate_ours

        groups: dict[tuple[tuple[str, ...], int], list[int]] = {}
        for i, req in enumerate(requests):
            kw = dict(req.args[1] or {})
            if kw.get("do_sample") and float(kw.get("temperature", 1.0)) > 0:
                raise DclmError("the dclm lm-eval model decodes greedily only (do_sample=True was asked for)")
            # no EOS text among the stops: decoding stops at the EOS id, and the text skips special tokens
            until = tuple(s for s in handle_stop_sequences(kw.get("until"), None) if s)
            groups.setdefault((until, int(kw.get("max_gen_toks", self.max_gen_toks))), []).append(i)
        out: list[str] = [""] * len(requests)
        with tqdm(total=len(requests), desc="dclm generate_until", disable=disable_tqdm) as bar:
            for (until, max_new), idx in groups.items():
                max_new = min(max_new, self.max_length - 1)
                keep = self.max_length - max_new
                prompts = [(self.tok_encode(requests[i].args[0]) or [self.eot_token_id])[-keep:] for i in idx]
                ids = generate_ours(self.model, prompts, max_new, self.tokenizer, until, self.batch_size,
                                    self.eot_token_id)
                for i, gen in zip(idx, ids):
                    text = decode_generated(self.tokenizer, gen)
                    for stop in until:
                        text = text.split(stop)[0]
                    out[i] = text
                    self.cache_hook.add_partial("generate_until", requests[i].args, text)
                bar.update(len(idx))
        return out


def main() -> None:
    """lm-eval's command line with `dclm` registered (this module is imported)."""
    from lm_eval.__main__ import cli_evaluate

    cli_evaluate()


if __name__ == "__main__":
    main()
