import argparse
from dataclasses import dataclass
from typing import Literal

import pytest

from dclm.runtime.config import ConfigError, add_config_arguments, arg, config_from_args, replace, to_dict


@dataclass(frozen=True)
class Example:
    output: str = arg(help="where to write")
    inputs: tuple[str, ...] = arg((), help="files", flag="--input")
    lr: float | None = arg(None, help="learning rate")
    steps: int = arg(10, help="steps")
    compile: bool = arg(False, help="compile")
    precision: Literal["bf16", "fp32"] = arg("bf16", help="precision")
    hidden: int = arg(3, help="not on the CLI", cli=False)
    modules: tuple[str, ...] = arg((), help="repeatable", flag="--module", repeatable=True)


def parse(argv):
    p = argparse.ArgumentParser()
    add_config_arguments(p, Example)
    return p, config_from_args(Example, p.parse_args(argv))


def test_defaults_come_from_the_dataclass():
    _, c = parse(["--output", "o"])
    assert c == Example(output="o")
    assert c.inputs == ()


def test_values_types_choices_and_bools():
    _, c = parse(["--output", "o", "--input", "a", "b", "--lr", "0.5", "--steps", "3", "--compile",
                  "--precision", "fp32"])
    assert c == Example(output="o", inputs=("a", "b"), lr=0.5, steps=3, compile=True, precision="fp32")
    _, c = parse(["--output", "o", "--no-compile"])
    assert c.compile is False


def test_help_shows_the_real_default_and_required_flags(capsys):
    p, _ = parse(["--output", "o"])
    text = p.format_help()
    assert "steps (default: 10)" in text and "--hidden" not in text
    with pytest.raises(SystemExit):
        p.parse_args([])
    assert "--output" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        p.parse_args(["--output", "o", "--precision", "fp16"])


def test_config_error_names_the_flag_and_replace_suggests():
    e = ConfigError("micro_batch_size", "must divide global_batch_size")
    assert e.as_flag() == "--micro-batch-size: must divide global_batch_size"
    with pytest.raises(ConfigError, match="did you mean steps"):
        replace(Example(output="o"), stepz=2)
    assert to_dict(Example(output="o", inputs=("a",)))["inputs"] == ["a"]


def test_repeatable_flags_collect_one_value_each():
    _, c = parse(["--output", "o", "--module", "a", "--module", "b.py"])
    assert c.modules == ("a", "b.py")
    assert parse(["--output", "o"])[1].modules == ()
