"""Task suites: our bundled YAMLs (suites/*.yaml) or a DCLM/llm-foundry eval YAML (`icl_tasks:`), as TaskSpecs.

Defaults are llm-foundry 0.9.0's (llmfoundry/utils/builders.py `_validate_cfg`): example delimiter "\\n",
continuation delimiter " ", empty prompt string and prelimiter, few-shot seed 1234. A YAML's top-level
`seed` is composer's global seed, not the few-shot seed, so it is ignored here.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from dclm.errors import DclmError

TASK_TYPES = ("multiple_choice", "schema", "language_modeling", "generation_task_with_answers")
SUITES = ("light", "medium", "mmlu_and_lowvar", "heavy")


@dataclass(frozen=True)
class TaskSpec:
    label: str
    file: str  # relative to the data dir, e.g. local_data/world_knowledge/arc_easy.jsonl
    type: str
    shots: int
    continuation_delimiter: str = " "
    example_delimiter: str = "\n"
    prelimiter: str = ""
    prompt_string: str = ""
    cot_delimiter: str = ""
    stop: tuple[str, ...] = ()
    has_categories: bool = False
    fewshot_seed: int = 1234


@dataclass(frozen=True)
class Suite:
    name: str
    tasks: tuple[TaskSpec, ...]
    max_seq_len: int = 2048
    batch_size: int = 4


# our key -> llm-foundry's key, for YAMLs in DCLM's format
_FOUNDRY_KEYS = {"label": "label", "file": "dataset_uri", "type": "icl_task_type", "shots": "num_fewshot",
                 "continuation_delimiter": "continuation_delimiter", "example_delimiter": "example_delimiter",
                 "prelimiter": "question_prelimiter", "prompt_string": "prompt_string",
                 "cot_delimiter": "cot_delimiter", "stop": "early_stopping_criteria",
                 "has_categories": "has_categories", "fewshot_seed": "fewshot_random_seed"}


def _task(raw: dict, where: str, foundry: bool) -> list[TaskSpec]:
    if not isinstance(raw, dict):
        raise DclmError(f"{where}: a task must be a mapping")
    keys = _FOUNDRY_KEYS if foundry else {k: k for k in _FOUNDRY_KEYS} | {"prelimiter": "question_prelimiter"}
    get = {ours: raw[theirs] for ours, theirs in keys.items() if theirs in raw}
    for need in ("label", "file", "type", "shots"):
        if need not in get:
            raise DclmError(f"{where}: task {raw.get('label', '?')!r} lacks {keys[need]!r}")
    if get["type"] not in TASK_TYPES:
        raise DclmError(f"{where}: task {get['label']!r}: unknown type {get['type']!r} (one of {', '.join(TASK_TYPES)})")
    shots = get.pop("shots")
    shots = list(shots) if isinstance(shots, (list, tuple)) else [shots]
    if not shots or not all(isinstance(k, int) and k >= 0 for k in shots):
        raise DclmError(f"{where}: task {get['label']!r}: shots must be non-negative integers")
    get["file"] = str(get["file"]).split("#")[0].strip()
    if "stop" in get:
        get["stop"] = tuple(get["stop"] or ())
    # several shot counts: llm-foundry reports each as label/k-shot; DCLM's suites use one, kept as the label
    out = []
    for k in shots:
        label = get["label"] if len(shots) == 1 else f"{get['label']}/{k}-shot"
        out.append(TaskSpec(**{**get, "label": label, "shots": k}))
    return out


def parse_suite(doc: dict, source: str) -> Suite:
    if not isinstance(doc, dict):
        raise DclmError(f"{source}: not a task suite (expected a mapping with `tasks:` or `icl_tasks:`)")
    foundry = "icl_tasks" in doc
    raw_tasks = doc.get("icl_tasks" if foundry else "tasks")
    if not isinstance(raw_tasks, list) or not raw_tasks:
        raise DclmError(f"{source}: no tasks (expected a non-empty `tasks:` or `icl_tasks:` list)")
    tasks = [t for i, raw in enumerate(raw_tasks) for t in _task(raw, f"{source}: task {i + 1}", foundry)]
    labels = [t.label for t in tasks]
    dup = sorted({x for x in labels if labels.count(x) > 1})
    if dup:
        raise DclmError(f"{source}: duplicate task labels {', '.join(dup)}")
    name = doc.get("name") or Path(source).stem
    batch = doc.get("batch_size", doc.get("device_eval_batch_size", 4))
    return Suite(name=str(name), tasks=tuple(tasks), max_seq_len=int(doc.get("max_seq_len", 2048)), batch_size=int(batch))


def load_suite(name_or_path: str) -> Suite:
    """A bundled suite by name (light, medium, mmlu_and_lowvar, heavy) or a YAML file in either format."""
    import yaml

    if name_or_path in SUITES:
        text = resources.files("dclm.eval").joinpath("suites", f"{name_or_path}.yaml").read_text(encoding="utf-8")
        source = name_or_path
    else:
        p = Path(name_or_path)
        if not p.is_file():
            raise DclmError(f"unknown task suite {name_or_path!r}: not one of {', '.join(SUITES)} and no such YAML file")
        text, source = p.read_text(encoding="utf-8"), str(p)
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f":{mark.line + 1}" if mark is not None else ""
        raise DclmError(f"{source}{at}: bad YAML ({getattr(e, 'problem', None) or e})") from None
    return parse_suite(doc, source)


def select_tasks(suite: Suite, labels: tuple[str, ...]) -> Suite:
    """The suite restricted to `labels` (in the suite's order); an unknown label is an error."""
    if not labels:
        return suite
    known = {t.label for t in suite.tasks}
    unknown = [x for x in labels if x not in known]
    if unknown:
        raise DclmError(f"unknown task {', '.join(map(repr, unknown))} in suite {suite.name} "
                        f"(tasks: {', '.join(sorted(known))})")
    keep = set(labels)
    return Suite(suite.name, tuple(t for t in suite.tasks if t.label in keep), suite.max_seq_len, suite.batch_size)


def resolve_file(data_dir: Path, file: str) -> Path:
    """`file` under `data_dir`; `data_dir` may be the directory holding local_data/ or local_data itself."""
    p = data_dir / file
    if not p.exists() and data_dir.name == "local_data" and file.startswith("local_data/"):
        p = data_dir / file[len("local_data/"):]
    return p
