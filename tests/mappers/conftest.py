from pathlib import Path

import pytest

from dclm.demo.webpages import BANNED_DOMAINS, generate_pages


@pytest.fixture(scope="session")
def reference_dir(shared_dir) -> Path:
    """../shared/dclm_reference (DCLM's banlists, TLD list and YAMLs)."""
    d = shared_dir / "dclm_reference"
    if not d.is_dir():
        pytest.skip("../shared/dclm_reference is not present")
    return d


@pytest.fixture(scope="session")
def tlds_path(reference_dir) -> str:
    return str(reference_dir / "iana_tlds.txt")


@pytest.fixture(scope="session")
def lid_model():
    """The fastText LID model as dclm resolves it (skips when none can be found or fetched)."""
    from dclm.errors import DclmError
    from dclm.mappers.enrichers.language_id import load_fasttext_model

    try:
        return load_fasttext_model(None)
    except DclmError as e:
        pytest.skip(f"no language-ID model: {e}")


@pytest.fixture(scope="session")
def dclm_workdir(tmp_path_factory, reference_dir) -> Path:
    """A directory laid out like a DCLM checkout's relative asset paths (links to ../shared, plus a small
    curated domain banlist written here, since the real one is an external asset)."""
    root = tmp_path_factory.mktemp("dclm_checkout")
    ban = root / "baselines" / "mappers" / "banlists"
    ban.mkdir(parents=True)
    (ban / "refinedweb_banned_domains_curated.txt").write_text("\n".join(BANNED_DOMAINS) + "\n")
    for f in (reference_dir / "banlists").iterdir():
        (ban / f.name).symlink_to(f)
    (root / "baselines" / "mappers" / "iana_tlds.txt").symlink_to(reference_dir / "iana_tlds.txt")
    return root


@pytest.fixture
def in_dclm_workdir(dclm_workdir, monkeypatch):
    monkeypatch.chdir(dclm_workdir)
    return dclm_workdir


@pytest.fixture(scope="session")
def web_pages() -> list[dict]:
    return generate_pages(400, seed=7)


@pytest.fixture
def fresh_pages(web_pages) -> list[dict]:
    import copy

    return copy.deepcopy(web_pages)
