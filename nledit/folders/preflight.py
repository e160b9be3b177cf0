"""Output folders are checked before any model work: each must be a folder nledit can create.

A path under a regular file, in a folder that cannot be written, or in a system folder such as
``/proc`` is refused at the start, with the field it came from, instead of after a whole fit.
Nothing is created by the check (the write probe is an unnamed temporary file).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

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
