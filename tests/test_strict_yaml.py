"""Plain scalars follow YAML 1.2 core; numbers YAML 1.1 reads otherwise are refused."""

from __future__ import annotations

import pytest
import yaml

from nledit.recipe import strict_yaml


@pytest.mark.parametrize("scalar", ["010", "1:30", "1_000", "0b101", "-0x1A", "1:30:00.5"])
def test_a_number_yaml_1_1_reads_otherwise_is_refused_with_its_path_and_line(scalar: str) -> None:
    text = f"a:\n  b: {scalar}\n"
    assert yaml.safe_load(text)["a"]["b"] != strict_yaml.load(text)["a"]["b"]  # they disagree
    [problem] = strict_yaml.problems(text)
    assert problem.startswith("a.b: line 2:") and repr(scalar) in problem


@pytest.mark.parametrize(
    ("scalar", "value"),
    [("0x1A", 26), ("0o17", 15), ("5e-5", 5e-5), ("+.inf", float("inf")), ("7", 7), ("-2.5", -2.5)],
)
def test_yaml_1_2_core_numbers_are_read_as_numbers(scalar: str, value: float) -> None:
    text = f"a: {scalar}\n"
    assert strict_yaml.problems(text) == []
    assert strict_yaml.load(text)["a"] == value


@pytest.mark.parametrize("scalar", ["'010'", '"1:30"', "'1_000'"])
def test_a_quoted_scalar_stays_text(scalar: str) -> None:
    text = f"a: {scalar}\n"
    assert strict_yaml.problems(text) == []
    assert strict_yaml.load(text)["a"] == scalar.strip("'\"")
