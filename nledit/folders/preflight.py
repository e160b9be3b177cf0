"""Output folders are checked before any model work: each must be a folder nledit can create.

A path under a regular file, in a folder that cannot be written, or in a system folder such as
``/proc`` is refused at the start, with the field it came from, instead of after a whole fit.
Nothing is created by the check (the write probe is an unnamed temporary file).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from ..errors import OutputError

SYSTEM_ROOTS = ("/proc", "/sys", "/dev")
NAME_MAX = 255  # bytes in one path component on common file systems


def output_problem(field: str, value: str) -> str | None:
    """Why ``value`` (from ``field``) cannot be an output folder, or None when it can."""
    if not value.strip():
        return f"{field}: must not be empty"
    if "\0" in value:
        return f"{field}: {value!r} contains a NUL character"
    expanded = os.path.expanduser(value)
    if expanded.startswith("~"):
        return f"{field}: cannot expand {value!r}: no home folder for that user"
    path = Path(os.path.abspath(expanded))
    real = Path(os.path.realpath(path))  # a link into /proc is /proc
    for root in SYSTEM_ROOTS:
        if any(p == Path(root) or Path(root) in p.parents for p in (path, real)):
            return f"{field}: {value} is inside {root}, a system folder; choose another folder"
    long = [p for p in path.parts if len(p.encode()) > NAME_MAX]
    if long:
        return f"{field}: the name {long[0][:40]}... is longer than {NAME_MAX} bytes"
    if path.exists() and not path.is_dir():
        return f"{field}: {value} exists and is a file, not a folder"
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        return f"{field}: cannot create {value}: {parent} is a file, not a folder"
    try:
        with tempfile.TemporaryFile(dir=parent):
            pass
    except OSError as err:
        return f"{field}: cannot write in {parent} ({err.strerror or err})"
    return None


def output_problems(pairs: list[tuple[str, str | None]]) -> list[str]:
    """The problems of every ``(field, path)`` given; ``None`` paths are skipped."""
    return [p for field, value in pairs if value is not None if (p := output_problem(field, value))]


def check_outputs(pairs: list[tuple[str, str | None]]) -> None:
    """Raise ``OutputError`` naming every unusable output folder (before any work)."""
    problems = output_problems(pairs)
    if problems:
        raise OutputError("\n".join(problems))


def overlap_problem(field: str, out: str, inputs: list[tuple[str, str | None]]) -> str | None:
    """Why the output ``out`` (from ``field``) may not be written where it is: it is one of
    the command's inputs (a model folder, data file, fit folder or export), lies inside one,
    or holds one (replacing it would remove the input). None when it is apart from all."""
    target = Path(os.path.realpath(os.path.expanduser(out)))
    for name, value in inputs:
        if not value or not os.path.exists(os.path.expanduser(value)):
            continue  # a Hub id or a missing path: nothing on disk to overwrite
        source = Path(os.path.realpath(os.path.expanduser(value)))
        if target == source:
            return f"{field}: {out} is the {name} input itself; write the output elsewhere"
        if source.is_dir() and source in target.parents:
            return f"{field}: {out} is inside the {name} input {value}; write it elsewhere"
        if source in target.parents or target in source.parents:
            return f"{field}: {out} holds the {name} input {value}; write it elsewhere"
    return None


def recipe_inputs(recipe: Any) -> list[tuple[str, str | None]]:
    """The local paths a recipe reads: its model and its data (``(field, path)``)."""
    data = getattr(recipe, "data", None)
    return [
        ("model.id", recipe.model.id),
        ("data.source", getattr(data, "source", None)),
        ("data.eval_source", getattr(data, "eval_source", None)),
    ]


# Files that mark a folder as an nledit export or fit folder: their file sets are closed.
CLOSED_MARKERS = ("nledit_manifest.json", "nledit_fit.json")


def inside_output_problem(field: str, out: str, itself: bool = False) -> str | None:
    """Why ``out`` may not be created where it is: inside an nledit export or fit folder,
    whose file set is closed (an export with a foreign subfolder no longer verifies); with
    ``itself``, also ``out`` being one (a command writing other files than those)."""
    target = Path(os.path.realpath(os.path.expanduser(out)))
    for parent in [target, *target.parents] if itself else target.parents:
        marker = next((m for m in CLOSED_MARKERS if (parent / m).is_file()), None)
        if marker is not None:
            where = "is" if parent == target else "is inside"
            return (
                f"{field}: {out} {where} the nledit output {parent} (it holds {marker}); "
                "write it elsewhere"
            )
    return None


def check_apart(
    pairs: list[tuple[str, str | None]],
    inputs: list[tuple[str, str | None]],
    itself: bool = False,
) -> None:
    """Raise ``OutputError`` when an output of ``pairs`` overlaps an input (``overlap_problem``)
    or lies inside another nledit output (``inside_output_problem``; ``itself``: or is one)."""
    problems = [
        p
        for f, v in pairs
        if v is not None
        if (p := overlap_problem(f, v, inputs) or inside_output_problem(f, v, itself))
    ]
    if problems:
        raise OutputError("\n".join(problems))
