"""DCLM's per-task facts for aggregation: category and random baseline (percent), v1 and v2, and the task lists.

Numbers from DCLM's eval/eval_meta_data.csv (v2) and eval_meta_data_v1.csv (v1); lists from
eval/additional_aggregation.json. The 95%/99% lists name "gsm8k" and "svamp", which match no task label
(the tasks are gsm8k_cot and svamp_cot), so DCLM's aggregates over them silently leave those two out; kept as is.
"""

from __future__ import annotations

# task: (category, baseline_v1 %, baseline_v2 %)
TASKS: dict[str, tuple[str, float, float]] = {
    "bigbench_novel_concepts": ("commonsense reasoning", 20, 25),
    "bigbench_strange_stories": ("commonsense reasoning", 50, 50),
    "bigbench_strategy_qa": ("commonsense reasoning", 50, 50),
    "commonsense_qa": ("commonsense reasoning", 20, 40.3),
    "copa": ("commonsense reasoning", 50, 50),
    "openbook_qa": ("commonsense reasoning", 25, 25),
    "piqa": ("commonsense reasoning", 50, 50),
    "siqa": ("commonsense reasoning", 33.3, 50),
    "bigbench_conceptual_combinations": ("language understanding", 25, 33),
    "bigbench_conlang_translation": ("language understanding", 0, 0),
    "bigbench_language_identification": ("language understanding", 9.1, 25),
    "hellaswag": ("language understanding", 25, 25),
    "hellaswag_zeroshot": ("language understanding", 25, 25),
    "lambada_openai": ("language understanding", 0, 0),
    "winograd": ("language understanding", 50, 50),
    "winogrande": ("language understanding", 50, 50),
    "agi_eval_lsat_lr": ("reading comprehension", 20, 25),
    "agi_eval_lsat_rc": ("reading comprehension", 20, 25),
    "agi_eval_sat_en": ("reading comprehension", 25, 25),
    "bigbench_understanding_fables": ("reading comprehension", 20, 25),
    "boolq": ("reading comprehension", 62, 62),
    "coqa": ("reading comprehension", 0, 0),
    "pubmed_qa_labeled": ("reading comprehension", 0, 0),
    "squad": ("reading comprehension", 0, 0),
    "bbq": ("safety", 50, 50),
    "enterprise_pii_classification": ("safety", 50, 50),
    "winogender_mc_female": ("safety", 50, 50),
    "winogender_mc_male": ("safety", 50, 50),
    "agi_eval_lsat_ar": ("symbolic problem solving", 20, 25),
    "agi_eval_sat_math_cot": ("symbolic problem solving", 0, 0),
    "aqua_cot": ("symbolic problem solving", 0, 0),
    "bigbench_cs_algorithms": ("symbolic problem solving", 0, 0),
    "bigbench_dyck_languages": ("symbolic problem solving", 0, 0),
    "bigbench_elementary_math_qa": ("symbolic problem solving", 20, 25),
    "bigbench_logical_deduction": ("symbolic problem solving", 20, 25),
    "bigbench_operators": ("symbolic problem solving", 0, 0),
    "bigbench_repeat_copy_logic": ("symbolic problem solving", 0, 0),
    "gsm8k_cot": ("symbolic problem solving", 0, 0),
    "logi_qa": ("symbolic problem solving", 27, 25),
    "math_qa": ("symbolic problem solving", 20, 20),
    "simple_arithmetic_nospaces": ("symbolic problem solving", 0, 0),
    "simple_arithmetic_withspaces": ("symbolic problem solving", 0, 0),
    "svamp_cot": ("symbolic problem solving", 0, 0),
    "arc_challenge": ("world knowledge", 25, 25),
    "arc_easy": ("world knowledge", 25, 25),
    "bigbench_misconceptions": ("world knowledge", 50, 50),
    "bigbench_qa_wikidata": ("world knowledge", 0, 0),
    "gpqa_diamond": ("world knowledge", 25, 25),
    "gpqa_main": ("world knowledge", 25, 25),
    "jeopardy": ("world knowledge", 0, 0),
    "mmlu_fewshot": ("world knowledge", 25, 25),
    "mmlu_zeroshot": ("world knowledge", 25, 25),
    "triviaqa_sm_sub": ("world knowledge", 0, 0),
}

# aggregate name in the eval JSON: member tasks
AGGREGATION_LISTS: dict[str, tuple[str, ...]] = {
    "rw_small": (
        "arc_challenge", "arc_easy", "boolq", "copa",
        "hellaswag_zeroshot", "winogrande",
    ),
    "95%_CI_above": (
        "agi_eval_lsat_ar", "arc_challenge", "arc_easy", "bbq",
        "bigbench_conceptual_combinations", "bigbench_cs_algorithms", "bigbench_dyck_languages", "bigbench_novel_concepts",
        "bigbench_operators", "bigbench_qa_wikidata", "bigbench_repeat_copy_logic", "bigbench_strategy_qa",
        "boolq", "commonsense_qa", "copa", "coqa",
        "enterprise_pii_classification", "gsm8k", "hellaswag", "hellaswag_zeroshot",
        "jeopardy", "lambada_openai", "logi_qa", "openbook_qa",
        "piqa", "pubmed_qa_labeled", "squad", "svamp",
        "winograd", "winogrande",
    ),
    "99%_CI_above": (
        "agi_eval_lsat_ar", "arc_challenge", "arc_easy", "bigbench_cs_algorithms",
        "bigbench_dyck_languages", "bigbench_operators", "bigbench_qa_wikidata", "bigbench_repeat_copy_logic",
        "boolq", "commonsense_qa", "copa", "coqa",
        "enterprise_pii_classification", "gsm8k", "hellaswag", "hellaswag_zeroshot",
        "jeopardy", "lambada_openai", "openbook_qa", "piqa",
        "pubmed_qa_labeled", "squad", "svamp", "winograd",
        "winogrande",
    ),
    "low_variance_datasets": (
        "agi_eval_lsat_ar", "arc_challenge", "arc_easy", "bigbench_cs_algorithms",
        "bigbench_dyck_languages", "bigbench_language_identification", "bigbench_operators", "bigbench_qa_wikidata",
        "bigbench_repeat_copy_logic", "boolq", "commonsense_qa", "copa",
        "coqa", "hellaswag", "hellaswag_zeroshot", "jeopardy",
        "lambada_openai", "openbook_qa", "piqa", "squad",
        "winograd", "winogrande",
    ),
}
