import posixpath

import pytest
import yaml

from dclm import mappers
from dclm.configs import bundled_configs, resolve_config
from dclm.errors import DclmError

BUNDLED = ["c4", "content_to_text", "dclm_baseline_refinedweb", "fasttext_filter", "refinedweb"]
ASSET_SUFFIXES = (".txt", ".bin", ".ftz", ".pkl", ".model", ".arpa")


def _load(path):
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


def _normalized(value):
    """Asset paths compare by file name: DCLM writes baselines/mappers/banlists/X.txt, we write X.txt."""
    if isinstance(value, str) and value.endswith(ASSET_SUFFIXES):
        return posixpath.basename(value)
    if isinstance(value, dict):
        return {k: _normalized(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_normalized(v) for v in value]
    return value


def _steps(config):
    return {entry["source"]: [_normalized(step) for step in entry["steps"]] for entry in config}


def test_bundled_names_and_resolution(tmp_path):
    assert bundled_configs() == BUNDLED
    for name in BUNDLED:
        path = resolve_config(name)
        assert path.is_file() and path.name == f"{name}.yaml"
        assert resolve_config(f"{name}.yaml") == path
    own = tmp_path / "mine.yaml"
    own.write_text("- source: cc\n  steps:\n    - func: move_url_modifier\n")
    assert resolve_config(str(own)) == own
    with pytest.raises(DclmError, match="dclm_baseline_refinedweb"):  # the error lists the bundled names
        resolve_config("no_such_recipe")


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_config_uses_known_mappers(name):
    config = _load(resolve_config(name))
    assert isinstance(config, list) and config
    known = set(mappers.names()) | {"exact_dedup"}
    for entry in config:
        assert set(entry) == {"source", "steps"}
        for step in entry["steps"]:
            assert step["func"] in known, f"{name}: {step['func']} is not a registered mapper"


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_config_loads_in_the_pipeline(name):
    from dclm.process.pipeline import load_pipeline

    pipeline = load_pipeline(name)  # validates every func and keyword argument, builds nothing
    assert pipeline.name == name and pipeline.steps


@pytest.mark.parametrize("name", BUNDLED)
def test_same_steps_as_dclm(shared_dir, name):
    ours = _steps(_load(resolve_config(name)))
    dclm = _steps(_load(shared_dir / "dclm_reference" / "baselines_configs" / f"{name}.yaml"))
    assert ours == dclm


def test_refinedweb_is_baseline_plus_domain_rule():
    base = _load(resolve_config("dclm_baseline_refinedweb"))[0]["steps"]
    rw = _load(resolve_config("refinedweb"))[0]["steps"]
    assert rw[:2] + rw[3:] == base
    assert rw[2]["exact_domain_match"] is True and "en.wikipedia.org" in rw[2]["banlist"]
