"""No absolute local path in an exported file.

A recipe, a manifest and a config name local folders and files (the base model, the data, the
conversion cache, the output folder). Exported files replace each such path by
``local:<its last component>``: the reader learns what the file was called, not where it lay on
the machine that wrote the checkpoint. The recipe's own hash (``recipe_sha256``) stays that of
the verbatim recipe the edit was fitted from.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

PREFIX = "local:"


def absolute_paths(value: Any) -> set[str]:
    """Every string inside ``value`` (nested dicts and lists) that is an absolute path."""
    if isinstance(value, str):
        one_line = value and "\n" not in value and len(value) < 4096
        return {value.rstrip("/\\")} if one_line and os.path.isabs(value) else set()
    if isinstance(value, dict):
        return set().union(*(absolute_paths(v) for v in value.values()))
    if isinstance(value, list | tuple):
        return set().union(*(absolute_paths(v) for v in value))
    return set()


def recipe_paths(text: str) -> set[str]:
    """The absolute paths a recipe's YAML names (none for text that does not parse)."""
    try:
        return absolute_paths(yaml.safe_load(text))
    except yaml.YAMLError:
        return set()


def with_roots(paths: Iterable[str | Path]) -> list[str]:
    """The absolute ones of ``paths``, their resolved forms and the home folder, longest first
    (a path that contains another is replaced before it)."""
    out: set[str] = set()
    for p in paths:
        s = str(p).rstrip("/\\")
        if len(s) > 1 and os.path.isabs(s):  # a relative name is no location, and too common
            out.add(s)
            out.add(str(Path(s).resolve()))
    home = str(Path.home())
    if len(home) > 1:
        out.add(home)
    return sorted(out, key=len, reverse=True)


def portable_text(text: str, roots: list[str]) -> str:
    """``text`` with each of ``roots`` (see ``with_roots``) replaced by ``local:<name>``; a path
    below a root keeps its part below it (``local:<root name>/<rest>``)."""
    for root in roots:
        if root in text:
            text = text.replace(root, PREFIX + (Path(root).name or "root"))
    return text


def portable_data(value: Any, roots: list[str]) -> Any:
    """``portable_text`` applied to every string inside ``value``."""
    if isinstance(value, str):
        return portable_text(value, roots)
    if isinstance(value, dict):
        return {k: portable_data(v, roots) for k, v in value.items()}
    if isinstance(value, list):
        return [portable_data(v, roots) for v in value]
    return value


def portable_folder(folder: Path, roots: list[str], keep: Iterable[str] = ()) -> None:
    """Rewrite the text files directly in ``folder`` (json, yaml, md, txt) with
    ``portable_text``; names in ``keep`` stay as they are."""
    skip = set(keep)
    for p in sorted(folder.iterdir()):
        if p.name in skip or not p.is_file() or p.suffix not in (".json", ".yaml", ".md", ".txt"):
            continue
        text = p.read_text(encoding="utf-8")
        new = portable_text(text, roots)
        if new != text:
            p.write_text(new, encoding="utf-8")
