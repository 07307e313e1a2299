import json
import subprocess
import sys
from pathlib import Path

import pytest

SEQ_LEN = 64


def run_cli(*argv: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dclm", *argv], capture_output=True, text=True, env=env)


def read_metrics(run_dir) -> list[dict]:
    return [json.loads(x) for x in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="session")
def token_data(tmp_path_factory) -> Path:
    return make_token_data(tmp_path_factory.mktemp("train-data"))


def make_token_data(root: Path) -> Path:
    """Token shards (native + open_lm tars) of the demo's seeded prose: 65-token contexts, a 512-id BPE."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    from dclm.demo.webpages import generate_pages
    from dclm.io import write_pages
    from dclm.tokenize.config import TokenizeConfig
    from dclm.tokenize.run import run_tokenize_shuffle

    pages = [p for p in generate_pages(600, seed=3) if p["text"].isascii()]
    write_pages(str(root / "pages" / "part_0.jsonl"), pages)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=512, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator((p["text"] for p in pages), trainer=trainer)
    tok.save(str(root / "tokenizer.json"))
    run_tokenize_shuffle(TokenizeConfig(input=(str(root / "pages"),), output=str(root / "tokens"),
                                        tokenizer=str(root / "tokenizer.json"), seqlen=SEQ_LEN + 1, chunk_size=256,
                                        workers=1, progress=False))
    return root / "tokens"
