"""Folders nledit writes: checked before any model work, written atomically, and removed only
when nledit can prove it created them.

The names below are the preflight a command runs on its output folders before any model work
(``preflight.py``, which loads nothing heavy).
"""

from __future__ import annotations

from .preflight import check_apart, check_outputs, recipe_inputs

__all__ = ["check_apart", "check_outputs", "recipe_inputs"]
