import argparse
import importlib.util

import pytest

from dclm import cli
from dclm.errors import DclmError
from dclm.extras import extra_for, require


def test_extra_for_maps_top_level_names():
    assert extra_for("safetensors") == extra_for("torch.nn") == "model"
    assert extra_for("ray") == "ray" and extra_for("no_such_module") is None and extra_for(None) is None


def test_every_named_extra_is_declared_in_pyproject():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    from pathlib import Path

    from dclm.extras import EXTRA_OF_MODULE

    pyproject = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    assert set(EXTRA_OF_MODULE.values()) <= set(pyproject["project"]["optional-dependencies"])


def test_require_names_the_extra(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == "safetensors" else real(name))
    with pytest.raises(DclmError, match=r"dclm demo needs safetensors: pip install 'dclm\[model\]'"):
        require("dclm demo", "numpy", "safetensors")
    require("dclm demo", "numpy")


def test_demo_without_the_model_extra_is_one_line(monkeypatch, capsys, tmp_path):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == "safetensors" else real(name))
    assert cli.main(["demo", "--output", str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install 'dclm[model]'" in err
    assert not (tmp_path / "d").exists()  # nothing was started


def _parser_running(func):
    parser = argparse.ArgumentParser(prog="dclm")
    parser.add_argument("-v", "--verbose", action="store_true")
    parser.add_argument("-q", "--quiet", action="store_true")
    parser.set_defaults(verb="x", func=func)
    return parser


def test_a_stray_missing_optional_import_becomes_one_line(monkeypatch, capsys):
    def needs_ray(args):
        raise ModuleNotFoundError("No module named 'ray'", name="ray")

    monkeypatch.setattr(cli, "build_parser", lambda: _parser_running(needs_ray))
    assert cli.main([]) == 2
    assert capsys.readouterr().err == "dclm: dclm x needs ray: pip install 'dclm[ray]'\n"


def test_a_missing_non_optional_module_keeps_its_traceback(monkeypatch):
    def broken(args):
        raise ModuleNotFoundError("No module named 'dclm.nothing'", name="dclm.nothing")

    monkeypatch.setattr(cli, "build_parser", lambda: _parser_running(broken))
    with pytest.raises(ModuleNotFoundError):
        cli.main([])
