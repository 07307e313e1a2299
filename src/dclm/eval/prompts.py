"""Prompt building with llm-foundry 0.9.0's rules (llmfoundry/eval/datasets/in_context_learning_evaluation.py,
llmfoundry/eval/datasets/utils.py), turned into token rows to score.

- Few-shot: one random.Random(seed) per task (per category), drawn for every item in file order whatever
  `limit` is, so a limited run gives its items the very prompts of a full run.
- Each shot renders as [example delimiter if text precedes] + prelimiter + context + continuation
  delimiter + answer (schema: prelimiter + [delimiter] + gold option + delimiter + continuation); the test
  context is rendered the same without the answer and right-stripped.
- Few-shot text, test context and continuation are tokenized in three calls and concatenated; the
  scored continuation gets a leading space when the tokenizer needs one (GPT-2-style BPE).
- Rows are left-trimmed to max_seq_len minus the continuation (generation: minus max_new_tokens).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from dclm.errors import DclmError
from dclm.eval.tasks import TaskSpec

# llm-foundry's _MAX_ANSWER_BUFFER_LENGTH: room for chain-of-thought tasks beyond the longest answer
COT_ANSWER_BUFFER = 10


@dataclass(frozen=True)
class Row:
    """One scored sequence: the continuation's tokens follow the context's."""

    context: tuple[int, ...]
    continuation: tuple[int, ...]


@dataclass
class Item:
    index: int  # position in the file (in the category for has_categories tasks)
    rows: list[Row] = field(default_factory=list)  # MC/schema: one per option; LM: one
    gold: int | None = None
    prompt: tuple[int, ...] = ()  # generation: the trimmed context
    aliases: tuple[str, ...] = ()  # generation: answer and aliases
    max_new_tokens: int = 0


def fewshot_indices(n: int, k: int, item: int, rng: random.Random) -> set[int]:
    """llm-foundry's get_fewshot_sample_idxs: a sample of min(n-1, k) indices without the item itself.

    The set (not a list) matters: shots render in the set's iteration order."""
    chosen = set(rng.sample(range(0, n), min(n - 1, k)))
    if item in chosen:
        chosen.remove(item)
        if len(chosen) >= n - 1:
            return chosen
        redraw = rng.choice(range(0, n))
        while redraw in chosen or redraw == item:
            redraw = rng.choice(range(0, n))
        chosen.add(redraw)
    return chosen


def trim_left(context: list[int], continuation_len: int, max_seq_len: int) -> list[int]:
    if continuation_len + len(context) > max_seq_len:
        keep = max_seq_len - continuation_len
        if keep < 0:
            raise DclmError(f"a continuation of {continuation_len} tokens is longer than max_seq_len {max_seq_len}")
        context = context[-keep:]  # keep == 0 keeps everything, as llm-foundry's slice does
    return context


class PromptBuilder:
    """Items of one task (or one category of it) as token rows."""

    def __init__(self, spec: TaskSpec, rows: list[dict], tokenizer, max_seq_len: int):
        self.spec, self.rows, self.tok, self.max_seq_len = spec, rows, tokenizer, max_seq_len
        self.prefix_space = len(tokenizer.encode(" a")) == 1
        self.has_cot = spec.type == "generation_task_with_answers" and any("chain_of_thought" in r for r in rows)
        self.max_answer_len = self._max_answer_len() if spec.type == "generation_task_with_answers" else 0

    # ----- text
    def _spaced(self, text: str) -> str:
        return f" {text}" if self.prefix_space and not text.startswith(" ") else text

    def _gen_answer(self, row: dict, answer: str | None = None) -> str:
        answer = row["answer"] if answer is None else answer
        if self.has_cot:
            return f"{row.get('chain_of_thought', '')}{self.spec.cot_delimiter}{answer}"
        return answer

    def _shot(self, row: dict, preceding: str) -> str:
        s = self.spec
        if s.type == "schema":
            ctx = row["context_options"][row["gold"]]
            if preceding:
                ctx = s.example_delimiter + ctx
            return f"{s.prelimiter}{ctx}{s.continuation_delimiter}{row['continuation']}"
        key = "query" if s.type == "multiple_choice" else "context"
        text = s.prelimiter + row[key]
        if preceding:
            text = s.example_delimiter + text
        text += s.continuation_delimiter
        if s.type == "multiple_choice":
            return text + row["choices"][row["gold"]]
        if s.type == "language_modeling":
            return text + row["continuation"]
        return text + self._gen_answer(row)

    def fewshot_text(self, index: int, rng: random.Random) -> str:
        text = self.spec.prompt_string
        if self.spec.shots > 0:
            for j in fewshot_indices(len(self.rows), self.spec.shots, index, rng):
                text += self._shot(self.rows[j], text)
        return text

    def _max_answer_len(self) -> int:
        longest = 0
        for row in self.rows:
            for answer in [row["answer"], *sorted({row["answer"], *row.get("aliases", [])})]:
                longest = max(longest, len(self.tok.encode(self._gen_answer(row, answer))))
        return longest + (COT_ANSWER_BUFFER if self.spec.cot_delimiter else 0)

    # ----- items
    def build(self, limit: int | None = None) -> list[Item]:
        """Items 0..limit-1 (all with None); the RNG still advances over every item."""
        rng = random.Random(self.spec.fewshot_seed)
        n = len(self.rows) if limit is None else min(limit, len(self.rows))
        items = []
        for i in range(len(self.rows)):
            shots = self.fewshot_text(i, rng)
            if i < n:
                items.append(self.item(i, shots))
            elif self.spec.shots == 0:
                break  # 0-shot makes no RNG calls: nothing left to keep in step
        return items

    def item(self, index: int, shots: str) -> Item:
        s, row, enc = self.spec, self.rows[index], self.tok.encode
        preamble = enc(shots)
        if s.type == "schema":
            if shots:
                contexts = [f"{s.prelimiter}{s.example_delimiter}{c}{s.continuation_delimiter.rstrip()}"
                            for c in row["context_options"]]
            else:
                contexts = [f"{s.prelimiter}{c}" for c in row["context_options"]]
            cont = enc(self._spaced(row["continuation"]))
            rows = [Row(tuple(trim_left(preamble + enc(c), len(cont), self.max_seq_len)), tuple(cont)) for c in contexts]
            return Item(index, rows, gold=row["gold"])
        key = "query" if s.type == "multiple_choice" else "context"
        ctx_text = s.prelimiter + row[key]
        if shots:
            ctx_text = s.example_delimiter + ctx_text
        context = preamble + enc((ctx_text + s.continuation_delimiter).rstrip())
        if s.type == "multiple_choice":
            rows = []
            for choice in row["choices"]:
                cont = enc(self._spaced(choice))
                rows.append(Row(tuple(trim_left(context, len(cont), self.max_seq_len)), tuple(cont)))
            return Item(index, rows, gold=row["gold"])
        if s.type == "language_modeling":
            cont = enc(self._spaced(row["continuation"]))
            return Item(index, [Row(tuple(trim_left(context, len(cont), self.max_seq_len)), tuple(cont))])
        room = max(self.max_seq_len, self.max_answer_len) - self.max_answer_len
        aliases = tuple(sorted({row["answer"], *row.get("aliases", [])}))
        return Item(index, prompt=tuple(trim_left(context, 0, room)), aliases=aliases,
                    max_new_tokens=max(self.max_answer_len, 1))
