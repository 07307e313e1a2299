"""Prompt building against llm-foundry 0.9.0's rules, on hand-rendered examples."""

import random

import pytest

from dclm.eval.prompts import PromptBuilder, fewshot_indices, trim_left
from dclm.eval.tasks import TaskSpec

from .conftest import COT, GEN, LM, MC, SCHEMA


def test_fewshot_indices_match_llm_foundry_draws():
    # values from llm-foundry 0.9.0's get_fewshot_sample_idxs with random.Random(1234), items in order
    rng = random.Random(1234)
    assert [list(fewshot_indices(7, 2, i, rng)) for i in range(7)] == [[3, 6], [0, 6], [0, 4], [0, 5], [0, 5], [0, 2], [0, 1]]
    rng = random.Random(1234)
    got = [list(fewshot_indices(40, 10, i, rng)) for i in range(3)]
    # set iteration order, not sorted order
    assert got[0] == [1, 2, 36, 5, 6, 7, 37, 15, 22, 28]
    assert got[2] == [32, 34, 35, 4, 5, 38, 15, 17, 26, 29]
    rng = random.Random(1234)
    assert [list(fewshot_indices(3, 5, i, rng)) for i in range(3)] == [[1, 2], [0, 2], [0, 1]]


def _spec(type_, shots, **kw):
    return TaskSpec(label="t", file="f.jsonl", type=type_, shots=shots, **kw)


def test_multiple_choice_rendering_and_three_tokenizer_calls(word_tok):
    b = PromptBuilder(_spec("multiple_choice", 2, continuation_delimiter="\nAnswer: "), MC, word_tok, 2048)
    item = b.build()[0]  # shots are items 3 and 6
    shots = "Question: what is item 3?\nAnswer: a b c\nQuestion: what is item 6?\nAnswer: green sea"
    ctx = "\nQuestion: what is item 0?\nAnswer:"  # right-stripped: "Answer: " -> "Answer:"
    assert item.gold == 0 and len(item.rows) == 4
    for row, choice in zip(item.rows, [" red 0", " blue", " green sea", " a b c"]):
        assert word_tok.decode(row.context) == shots + ctx
        assert list(row.context) == word_tok.encode(shots) + word_tok.encode(ctx)
        assert word_tok.decode(row.continuation) == choice


def test_schema_rendering_zero_and_one_shot(word_tok):
    one = PromptBuilder(_spec("schema", 1), SCHEMA, word_tok, 2048).build()[1]  # shot: item 0
    shot = "Tom saw 0 cats because Tom was curious."
    assert [word_tok.decode(r.context) for r in one.rows] == [
        shot + "\nTom saw 1 cats because Tom", shot + "\nTom saw 1 cats because the cats"]
    assert all(word_tok.decode(r.continuation) == " was curious." for r in one.rows) and one.gold == 1
    zero = PromptBuilder(_spec("schema", 0), SCHEMA, word_tok, 2048).build()[0]
    assert [word_tok.decode(r.context) for r in zero.rows] == ["Tom saw 0 cats because Tom", "Tom saw 0 cats because the cats"]


def test_language_modeling_rendering_per_category(word_tok):
    from dclm.eval.data import split_categories

    parts = split_categories(LM, "lm.jsonl")
    assert list(parts) == ["a_cat", "b_cat"]  # sorted; a_cat holds file items 1, 3, 5, 7
    item = PromptBuilder(_spec("language_modeling", 2), parts["a_cat"], word_tok, 2048).build()[0]  # shots 2, 3
    assert word_tok.decode(item.rows[0].context) == (
        "HISTORY: fact number 5 answer 5\nHISTORY: fact number 7 answer 7\nHISTORY: fact number 1")
    assert word_tok.decode(item.rows[0].continuation) == " answer 1"


def test_generation_rendering_answers_and_budget(word_tok):
    b = PromptBuilder(_spec("generation_task_with_answers", 1), GEN, word_tok, 2048)
    item = b.build()[0]  # shot: item 3
    assert word_tok.decode(item.prompt) == "Question: what is 3 plus one?\nAnswer: 4\nQuestion: what is 0 plus one?\nAnswer:"
    assert set(item.aliases) == {"1", "1.0"} and item.max_new_tokens == 1
    cot = PromptBuilder(_spec("generation_task_with_answers", 1, prelimiter="Q: ", cot_delimiter=" #### ",
                              continuation_delimiter="\nA: Let's think step by step. "), COT, word_tok, 2048)
    it = cot.build()[0]
    assert word_tok.decode(it.prompt) == ("Q: What is 3 times two?\nA: Let's think step by step. 3 and 3 make 6. #### 6"
                                         "\nQ: What is 0 times two?\nA: Let's think step by step.")
    # longest "cot #### answer" is 7 word tokens, +10 for a CoT delimiter
    assert it.max_new_tokens == 17


def test_left_truncation(word_tok):
    assert trim_left([1, 2, 3, 4, 5], 2, 5) == [3, 4, 5]
    assert trim_left([1, 2, 3], 2, 5) == [1, 2, 3]
    b = PromptBuilder(_spec("language_modeling", 2), LM, word_tok, 6)
    row = b.build()[0].rows[0]
    assert len(row.context) + len(row.continuation) == 6 and word_tok.decode(row.continuation) == " answer 0"
    assert word_tok.decode(row.context) == "HISTORY: fact number 0"  # the last 4 tokens: the shots are cut away
    g = PromptBuilder(_spec("generation_task_with_answers", 1), GEN, word_tok, 5).build()[0]
    assert len(g.prompt) == 5 - g.max_new_tokens


def test_limit_keeps_full_run_prompts(word_tok):
    spec = _spec("multiple_choice", 2, continuation_delimiter="\nAnswer: ")
    full = PromptBuilder(spec, MC, word_tok, 2048).build()
    limited = PromptBuilder(spec, MC, word_tok, 2048).build(limit=3)
    assert len(limited) == 3 and [i.rows for i in limited] == [i.rows for i in full[:3]]
