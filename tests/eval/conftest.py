import json
import re

import pytest

torch = pytest.importorskip("torch")


class WordTokenizer:
    """Words with their leading space as tokens (so " a" is one token, like GPT-2 BPE); ids from 1, 0 = EOS."""

    def __init__(self):
        self.ids: dict[str, int] = {}
        self.words: dict[int, str] = {}

    def encode(self, text: str) -> list[int]:
        out = []
        for piece in re.findall(r" ?[^\s]+|\s", text):
            if piece not in self.ids:
                self.ids[piece] = len(self.ids) + 1
                self.words[self.ids[piece]] = piece
            out.append(self.ids[piece])
        return out

    def decode(self, ids) -> str:
        return "".join(self.words[i] for i in ids)


@pytest.fixture
def word_tok():
    return WordTokenizer()


@pytest.fixture
def tiny_model():
    from dclm.model.openlm import ModelArgs, Transformer

    torch.manual_seed(0)
    return Transformer(ModelArgs(dim=32, n_layers=2, n_heads=4, vocab_size=512, seq_len=256)).eval()


MC = [{"query": f"Question: what is item {i}?", "choices": [f"red {i}", "blue", "green sea", "a b c"], "gold": i % 4}
      for i in range(7)]
SCHEMA = [{"context_options": [f"Tom saw {i} cats because Tom", f"Tom saw {i} cats because the cats"],
           "continuation": "was curious.", "gold": i % 2} for i in range(5)]
LM = [{"context": f"HISTORY: fact number {i}", "continuation": f"answer {i}", "category": ["b_cat", "a_cat"][i % 2]}
      for i in range(8)]
GEN = [{"context": f"Question: what is {i} plus one?\nAnswer:", "answer": str(i + 1), "aliases": [f"{i + 1}.0"]}
       for i in range(5)]
COT = [{"context": f"What is {i} times two?", "chain_of_thought": f"{i} and {i} make {2 * i}.", "answer": str(2 * i)}
       for i in range(4)]

SUITE = """name: mini
max_seq_len: 256
batch_size: 4
tasks:
  - {label: arc_easy, file: local_data/world_knowledge/mc.jsonl, type: multiple_choice, shots: 2, continuation_delimiter: "\\nAnswer: "}
  - {label: winograd, file: local_data/language_understanding/schema.jsonl, type: schema, shots: 1}
  - {label: jeopardy, file: local_data/world_knowledge/lm.jsonl, type: language_modeling, shots: 2, has_categories: true}
  - {label: triviaqa_sm_sub, file: local_data/world_knowledge/gen.jsonl, type: generation_task_with_answers, shots: 1}
  - {label: gsm8k_cot, file: local_data/symbolic_problem_solving/cot.jsonl, type: generation_task_with_answers, shots: 1, question_prelimiter: "Q: ", continuation_delimiter: "\\nA: Let's think step by step. ", cot_delimiter: " #### ", stop: ["\\n\\n", "Q:"]}
  - {label: squad, file: local_data/reading_comprehension/squad.jsonl, type: language_modeling, shots: 0}
"""


def write_jsonl(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.fixture(scope="session")
def eval_root(tmp_path_factory):
    """A data dir in the local_data layout (squad's file absent) and a suite YAML over it."""
    root = tmp_path_factory.mktemp("evaldata")
    ld = root / "local_data"
    write_jsonl(ld / "world_knowledge" / "mc.jsonl", MC)
    write_jsonl(ld / "language_understanding" / "schema.jsonl", SCHEMA)
    write_jsonl(ld / "world_knowledge" / "lm.jsonl", LM)
    write_jsonl(ld / "world_knowledge" / "gen.jsonl", GEN)
    write_jsonl(ld / "symbolic_problem_solving" / "cot.jsonl", COT)
    (root / "mini.yaml").write_text(SUITE)
    return root


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    """A DCLM-layout checkpoint of a tiny random model with a byte-level BPE tokenizer.json (EOS = 0)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    from dclm.model.checkpoint import save_model
    from dclm.model.openlm import ModelArgs, Transformer

    d = tmp_path_factory.mktemp("tiny")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    text = [json.dumps(r) for r in MC + SCHEMA + LM + GEN + COT] * 5
    tok.train_from_iterator(text, trainer)
    torch.manual_seed(0)
    save_model(Transformer(ModelArgs(dim=32, n_layers=2, n_heads=4, vocab_size=400, seq_len=256)).eval(), d)
    tok.save(str(d / "tokenizer.json"))
    return d
