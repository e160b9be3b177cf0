"""How the command line turns exceptions into one-line messages (exit code 2, no traceback)."""

from __future__ import annotations

import json

import yaml

from .recipe import strict_yaml

# Exit code for bad input: the message names the problem, no traceback.
USAGE_ERROR = 2
# Exit code of `nledit run --strict` when the base model cannot do the task or the target.
INCOMPETENT_BASE = 3

# Library and OS errors that user input can cause where no check foresaw them.
UNFORESEEN = (OSError, UnicodeError, yaml.YAMLError, json.JSONDecodeError, RecursionError)


def user_errors() -> tuple[type[BaseException], ...]:
    """What the command line reports as a message: every ``NleditError``, the checkpoint
    loader's own error (``gate.py`` stands alone) and missing or existing files."""
    from .errors import NleditError
    from .runtime.gate import NleditLoadError

    return (NleditError, NleditLoadError, FileNotFoundError, FileExistsError)


def from_checkpoint_runtime(err: BaseException) -> bool:
    """Whether ``err`` is the ``NleditLoadError`` of a run-time transformers loaded from a
    checkpoint (a module of its own, so not the class ``user_errors`` names)."""
    cls = type(err)
    return cls.__name__ == "NleditLoadError" and cls.__module__.endswith(".modeling_nledit")


def describe(err: BaseException) -> str:
    """A library or OS error as one line naming the file (and line) it concerns."""
    if isinstance(err, json.JSONDecodeError):
        return f"invalid JSON at line {err.lineno}, column {err.colno}: {err.msg}"
    if isinstance(err, yaml.YAMLError):
        return f"invalid YAML: {strict_yaml.describe_error(err)}"
    if isinstance(err, UnicodeDecodeError):
        return f"not UTF-8 text ({err.reason} at byte {err.start})"
    if isinstance(err, RecursionError):
        return "an input file is nested too deeply to read"
    if isinstance(err, OSError) and err.strerror:
        names = [str(n) for n in (err.filename, err.filename2) if n is not None]
        return f"{err.strerror}: {' -> '.join(names)}" if names else err.strerror
    return f"{type(err).__name__}: {err}"
