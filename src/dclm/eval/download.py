"""`dclm eval download`: the public task files of a suite, laid out as llm-foundry's local_data.

DCLM copies local_data from llm-foundry's scripts/eval/; the files at tag v0.9.0 are the ones its
suites name. GPQA is not there (DCLM unzips it from a password-protected archive), so it is reported as
unavailable rather than fetched.
"""

from __future__ import annotations

import shutil
import urllib.error
import urllib.request
from pathlib import Path

from dclm.errors import DclmError

FOUNDRY_BASE_URL = "https://raw.githubusercontent.com/mosaicml/llm-foundry/v0.9.0/scripts/eval/"


def download(dest: str, suite: str = "heavy", base_url: str | None = None) -> dict:
    """Fetch each task file of `suite` missing under `dest`; returns {fetched, present, unavailable}."""
    from dclm.eval.tasks import load_suite

    base = (base_url or FOUNDRY_BASE_URL).rstrip("/") + "/"
    root = Path(dest)
    fetched, present, unavailable = [], [], {}
    for file in sorted({t.file for t in load_suite(suite).tasks}):
        target = root / file
        if target.is_file():
            present.append(file)
            continue
        if not file.startswith("local_data/"):
            unavailable[file] = "not part of llm-foundry's local_data"
            continue
        url = base + file
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".part")
        try:
            with urllib.request.urlopen(url, timeout=60) as r, open(tmp, "wb") as f:
                shutil.copyfileobj(r, f)
        except (urllib.error.URLError, OSError) as e:
            tmp.unlink(missing_ok=True)
            reason = getattr(e, "reason", None) or e
            unavailable[file] = f"{url}: {reason}"
            continue
        tmp.replace(target)
        fetched.append(file)
    if not fetched and not present:
        first = next(iter(unavailable.values()), "nothing to fetch")
        raise DclmError(f"no task file could be fetched into {root} (e.g. {first})")
    return {"dest": str(root), "fetched": fetched, "present": present, "unavailable": unavailable}
