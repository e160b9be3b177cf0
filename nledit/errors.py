"""The errors nledit reports to its users.

Every user-facing error derives from :class:`NleditError`: the command line catches it and
prints the message (exit code 2, no traceback), and a library caller can catch it in one
``except`` clause. Each class keeps a second base (``ValueError``, ``RuntimeError``) so
existing handlers keep working. A traceback from nledit is then always a bug.

(``gate.NleditLoadError`` stands apart: ``gate.py`` is copied into checkpoints and imports
nothing from nledit.)
"""

from __future__ import annotations


class NleditError(Exception):
    """Base of every error nledit raises about its input (recipe, data, model, files)."""


class DataError(NleditError, ValueError):
    """The concept data cannot be used as the recipe says."""


class PerplexityError(NleditError, ValueError):
    """The perplexity text cannot be used."""


class EditError(NleditError, ValueError):
    """An edit cannot be fitted, applied, saved or loaded as asked (library API)."""


class OutputError(NleditError, ValueError):
    """An output path cannot be written, or must not be replaced."""


class FlagError(NleditError, ValueError):
    """A command-line flag's value cannot be used (the message names the flag)."""
