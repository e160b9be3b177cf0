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


MAX_VALUES = 100_000  # values after expanding aliases: far above any recipe, far below a bomb


def problems(text: str, at: str = "") -> list[str]:
    """Keys given twice, and aliases that nest into themselves or expand without bound, as
    ``field.path: message`` (``at``: the dotted path the text sits at, e.g. a ``--set`` key).

    Raises ``yaml.YAMLError`` for a syntax error (``RecursionError`` becomes one too)."""
    try:
        root = yaml.compose(text, Loader=StrictLoader)
    except RecursionError:
        raise yaml.YAMLError("the YAML is nested too deeply") from None
    if root is None:
        return []
    out = duplicate_keys(root, [at] if at else [])
    try:
        _expanded_size(root, {}, set())
    except ValueError as err:
        out.append(f"{at or 'recipe'}: {err}")
    return out


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return list(node.value) if isinstance(node, yaml.SequenceNode) else []


def _expanded_size(node: yaml.Node, memo: dict[int, int], open_: set[int]) -> int:
    """How many values ``node`` holds once its aliases are expanded (bounded by MAX_VALUES)."""
    key = id(node)
    if key in memo:
        return memo[key]
    if key in open_:
        raise ValueError(f"line {node.start_mark.line + 1}: an alias refers to a value holding it")
    open_.add(key)
    total = 1 + sum(_expanded_size(c, memo, open_) for c in _children(node))
    open_.discard(key)
    if total > MAX_VALUES:
        raise ValueError(
            f"line {node.start_mark.line + 1}: aliases expand to more than {MAX_VALUES} values"
        )
    memo[key] = total
    return total


def duplicate_keys(root: yaml.Node, at: list[str] | None = None) -> list[str]:
    """``path: key given twice (lines a and b)`` for every repeated mapping key under ``root``
    (paths start with ``at``)."""
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

    walk(root, list(at or []))
    return out


def load(text: str) -> Any:
    """Parse ``text`` with :class:`StrictLoader` (check it first with ``problems``)."""
    loader = StrictLoader(text)
    try:
        return loader.get_single_data()
    except RecursionError:
        raise yaml.YAMLError("the YAML is nested too deeply") from None
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
