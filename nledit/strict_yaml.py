"""Strict YAML for recipes and ``--set`` values: safe types only, no key given twice.

``yaml.safe_load`` keeps the last of two equal keys without a word; here every repeated key is
reported with both line numbers under its own dotted path. Floats written without a dot
(``5e-5``, ``1e400``) are read as numbers, as YAML 1.2 does, so they are checked as numbers (a
number too large for a float becomes ``inf`` and is then refused as not finite).
"""

from __future__ import annotations

import re
from typing import Any

import yaml

# YAML 1.2 floats that YAML 1.1 (PyYAML) reads as strings: an exponent without a dot.
_EXP_FLOAT = re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$")


class StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that also reads ``1e-5`` as a float."""


StrictLoader.add_implicit_resolver("tag:yaml.org,2002:float", _EXP_FLOAT, list("-+0123456789"))


def duplicate_keys(text: str) -> list[str]:
    """``path: key given twice (lines a and b)`` for every repeated mapping key in ``text``."""
    root = yaml.compose(text, Loader=StrictLoader)
    out: list[str] = []
    seen_nodes: set[int] = set()  # aliases share nodes: visit each once

    def walk(node: yaml.Node, path: list[str]) -> None:
        if id(node) in seen_nodes:
            return
        seen_nodes.add(id(node))
        if isinstance(node, yaml.MappingNode):
            first: dict[str, int] = {}
            for key, value in node.value:
                name = str(key.value) if isinstance(key, yaml.ScalarNode) else None
                if name is not None and name != "<<":
                    line = key.start_mark.line + 1
                    if name in first:
                        where = ".".join([*path, name])
                        out.append(
                            f"{where}: given twice, at lines {first[name]} and {line} "
                            "(keep one; YAML would silently use the last)"
                        )
                    else:
                        first[name] = line
                walk(value, [*path, name or "?"])
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                walk(item, [*path, str(i)])

    if root is not None:
        walk(root, [])
    return out


def load(text: str) -> Any:
    """Parse ``text`` with :class:`StrictLoader` (duplicates: see ``duplicate_keys``)."""
    loader = StrictLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def describe_error(err: yaml.YAMLError) -> str:
    """A YAML syntax error as ``line L, column C: problem`` with a hint where one helps."""
    mark = getattr(err, "problem_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
    problem = getattr(err, "problem", None) or str(err)
    context, start = getattr(err, "context", None), getattr(err, "context_mark", None)
    if context and start and start.line != getattr(mark, "line", None):
        problem += f" ({context} that starts at line {start.line + 1}, column {start.column + 1})"
    if "'\\t'" in problem:
        problem += "; indent with spaces, not tabs"
    elif "<block" in problem or "mapping values are not allowed" in problem:
        problem += "; check the indentation"
    return f"{where}{problem}"
