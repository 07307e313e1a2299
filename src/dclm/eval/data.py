"""Task files in llm-foundry's local_data layout: JSON lines, one item each, checked per task type.

As llm-foundry 0.9.0 reads them (datasets' json loader, then `strip_data`): lines are split on "\\n" only
(str.splitlines would also split at the raw U+0085 inside a triviaqa string), blank lines are skipped,
and only top-level string values are stripped. `has_categories` tasks are split by their `category`
field, categories in sorted order and items in file order within each (llm-foundry's
`partition_dataset_by_category`).
"""

from __future__ import annotations

import json
from pathlib import Path

from dclm.errors import DclmError

# fields each task type reads: name -> the JSON types accepted
_FIELDS = {
    "multiple_choice": {"query": (str,), "choices": (list,), "gold": (int,)},
    "schema": {"context_options": (list,), "continuation": (str,), "gold": (int,)},
    "language_modeling": {"context": (str,), "continuation": (str,)},
    "generation_task_with_answers": {"context": (str,), "answer": (str,)},
}


def _check(row: dict, task_type: str, where: str) -> None:
    for name, types in _FIELDS[task_type].items():
        if name not in row:
            raise DclmError(f"{where}: missing field {name!r} for a {task_type} task")
        if not isinstance(row[name], types) or isinstance(row[name], bool):
            raise DclmError(f"{where}: field {name!r} must be {types[0].__name__}, not {type(row[name]).__name__}")
    options = row.get("choices") if task_type == "multiple_choice" else row.get("context_options")
    if options is not None:
        if not options or not all(isinstance(c, str) for c in options):
            raise DclmError(f"{where}: {'choices' if task_type == 'multiple_choice' else 'context_options'} "
                            "must be a non-empty list of strings")
        if not 0 <= row["gold"] < len(options):
            raise DclmError(f"{where}: gold {row['gold']} is out of range for {len(options)} options")
    if task_type == "generation_task_with_answers":
        aliases = row.get("aliases", [])
        if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
            raise DclmError(f"{where}: aliases must be a list of strings")


def read_task_file(path: Path, task_type: str) -> list[dict]:
    """The file's items (top-level strings stripped), each checked for the fields `task_type` reads."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DclmError(f"{path}: no such task file") from None
    except UnicodeDecodeError as e:
        raise DclmError(f"{path}: not UTF-8 ({e.reason} at byte {e.start})") from None
    rows = []
    for lineno, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise DclmError(f"{where}: not a JSON object ({e.msg} at column {e.colno})") from None
        if not isinstance(row, dict):
            raise DclmError(f"{where}: not a JSON object")
        _check(row, task_type, where)
        rows.append({k: v.strip() if isinstance(v, str) else v for k, v in row.items()})
    if not rows:
        raise DclmError(f"{path}: no items")
    return rows


def split_categories(rows: list[dict], path: Path) -> dict[str, list[dict]]:
    """{category: rows in file order}, categories sorted."""
    out: dict[str, list[dict]] = {}
    for i, row in enumerate(rows):
        if "category" not in row:
            raise DclmError(f"{path}: item {i + 1} has no 'category' field but the task sets has_categories")
        out.setdefault(str(row["category"]), []).append(row)
    return dict(sorted(out.items()))
