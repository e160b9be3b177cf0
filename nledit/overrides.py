"""``--set key=value`` overrides of recipe fields on the command line."""

from __future__ import annotations

from typing import Any

import yaml

from .recipe import RecipeError


def parse_set(items: list[str]) -> dict[str, Any]:
    """``["edits.0.tau=2", ...]`` as ``{"edits.0.tau": 2.0}`` (values read as YAML)."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise RecipeError("--set", [f"--set {item!r}: expected key=value, e.g. edits.0.tau=2"])
        out[key.strip()] = yaml.safe_load(value)
    return out
