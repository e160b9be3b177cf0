"""``--set key=value`` overrides of recipe fields on the command line."""

from __future__ import annotations

from typing import Any

import yaml

from . import RecipeError, strict_yaml


def parse_set(items: list[str]) -> dict[str, Any]:
    """``["edits.0.tau=2", ...]`` as ``{"edits.0.tau": 2.0}`` (values read as strict YAML:
    duplicate keys, alias bombs and unparsable text are refused with the field named)."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise RecipeError("--set", [f"--set {item!r}: expected key=value, e.g. edits.0.tau=2"])
        key = key.strip()
        try:
            problems = strict_yaml.problems(value, at=key)
            out[key] = strict_yaml.load(value)
        except yaml.YAMLError as err:
            problem = strict_yaml.describe_error(err)
            raise RecipeError(
                "--set", [f"{key}: --set value is not valid YAML: {problem}"]
            ) from None
        if problems:
            raise RecipeError("--set", problems)
    return out
