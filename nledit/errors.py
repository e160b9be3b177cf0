"""The base of every error that user input can cause; the CLI reports these without a traceback."""

from __future__ import annotations


class NleditError(Exception):
    """A problem with the user's input, files or environment, explained by its message."""
