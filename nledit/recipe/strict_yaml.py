"""Strict YAML for recipes and ``--set`` values: safe types only, no key given twice.

``yaml.safe_load`` keeps the last of two equal keys without a word; here every repeated key is
reported with both line numbers under its own dotted path. Plain scalars resolve under the
YAML 1.2 core schema (``5e-5`` and ``0o17`` are numbers, ``1_000`` is not), and a plain scalar
that YAML 1.1 reads as another number (``010`` as 8, ``1:30`` as 90, ``1_000``, ``0b101``) is
refused with its line, so no number changes meaning with the YAML version a reader assumes.
``yes``/``no``/``on``/``off`` stay booleans, as in YAML 1.1, so they are refused as booleans
wherever a number belongs. A number too large for a float becomes ``inf`` and is then refused
as not finite.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

# The YAML 1.2 core schema's plain-scalar forms (https://yaml.org/spec/1.2.2/#1032-tag-resolution).
_CORE = {
    "tag:yaml.org,2002:null": r"~|null|Null|NULL|",
    # plus YAML 1.1's yes/no/on/off, kept as booleans so a boolean where a number or text
    # belongs is refused as a boolean by the recipe models
    "tag:yaml.org,2002:bool": (
        r"true|True|TRUE|false|False|FALSE|yes|Yes|YES|no|No|NO|on|On|ON|off|Off|OFF"
    ),
    "tag:yaml.org,2002:int": r"[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+",
    "tag:yaml.org,2002:float": (
        r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.nan|\.NaN|\.NAN"
    ),
}
_CORE_RE = {tag: re.compile(rf"^(?:{rx})$") for tag, rx in _CORE.items()}
# YAML 1.1 booleans that YAML 1.2 core reads as text
_BOOL_11 = re.compile(r"yes|Yes|YES|no|No|NO|on|On|ON|off|Off|OFF")


_MAX_INT_CHARS = 100


class StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` resolving plain scalars under the YAML 1.2 core schema."""

    yaml_implicit_resolvers: dict = {}  # noqa: RUF012 (PyYAML's class-level table)

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:  # type: ignore[override]
        """A YAML 1.2 core int: decimal (leading zeros allowed), ``0o`` octal or ``0x`` hex."""
        text = str(self.construct_scalar(node))
        if len(text) > _MAX_INT_CHARS:  # no setting takes one; Python would refuse to read it
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"an integer of {len(text)} digits is larger than any setting takes",
                node.start_mark,
            )
        if text.startswith("0o"):
            return int(text[2:], 8)
        return int(text, 16) if text.startswith("0x") else int(text, 10)


for _tag, _rx in _CORE_RE.items():
    StrictLoader.add_implicit_resolver(_tag, _rx, None)
StrictLoader.add_constructor("tag:yaml.org,2002:int", StrictLoader.construct_yaml_int)


def _value(loader_cls: type[yaml.SafeLoader], node: yaml.ScalarNode) -> Any:
    """What ``loader_cls`` makes of the plain scalar ``node`` (its own tag resolution)."""
    loader = loader_cls("")
    try:
        tag = loader.resolve(yaml.ScalarNode, node.value, (True, False))
        return loader.construct_object(yaml.ScalarNode(tag, node.value, style=None))
    except (yaml.YAMLError, ValueError):
        return None
    finally:
        loader.dispose()


def ambiguous_scalars(root: yaml.Node, at: list[str] | None = None) -> list[str]:
    """``path: line L: ...`` for every plain scalar that YAML 1.1 reads as another number
    than YAML 1.2 core does (``010``, ``1:30``, ``1_000``, ``0b11``), and every YAML 1.1
    boolean (``yes``, ``off``) that YAML 1.2 reads as text."""
    out: list[str] = []
    seen: set[int] = set()

    def walk(node: yaml.Node, path: list[str]) -> None:
        if id(node) in seen:
            return
        seen.add(id(node))
        if (
            isinstance(node, yaml.ScalarNode)
            and node.style is None
            and _BOOL_11.fullmatch(node.value)
        ):
            out.append(
                f"{'.'.join(path) or 'recipe'}: line {node.start_mark.line + 1}: {node.value!r} is "
                "a boolean in YAML 1.1 but text in YAML 1.2; write true or false, or quote it "
                "for text"
            )
        elif isinstance(node, yaml.ScalarNode) and node.style is None and node.value:
            old, new = _value(yaml.SafeLoader, node), _value(StrictLoader, node)
            # 1.1 reading text where 1.2 reads a number (``5e-5``, ``0o17``) is no ambiguity
            differ = type(old) is not type(new) or (old != new and old == old)  # nan == nan here
            if isinstance(old, (int, float)) and not isinstance(old, bool) and differ:
                where = ".".join(path) or "recipe"
                out.append(
                    f"{where}: line {node.start_mark.line + 1}: {node.value!r} is read as "
                    f"{old!r} by YAML 1.1 but {new!r} by YAML 1.2; quote it for text or write "
                    "numbers in plain decimal"
                )
        elif isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                name = str(key.value) if isinstance(key, yaml.ScalarNode) else "?"
                walk(key, path)
                walk(value, [*path, name])
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                walk(item, [*path, str(i)])

    walk(root, list(at or []))
    return out


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
    out += ambiguous_scalars(root, [at] if at else [])
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
