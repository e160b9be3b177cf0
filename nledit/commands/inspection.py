"""`nledit inspect`: distributions of concept-conditioned activations, as an HTML report
(``nledit.analysis.inspect``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..analysis import inspect
from .args import check_recipe_outputs, recipe_from_args


def cmd_inspect(args: argparse.Namespace) -> int:
    """`nledit inspect`: the report of the recipe's layer (or of every layer)."""
    recipe, text = recipe_from_args(args)
    report = args.report or "runs/inspect"
    check_recipe_outputs(recipe, ("--report", report), itself=True)
    path = inspect(recipe, text, Path(report), recipe.output.overwrite, all_layers=args.all_layers)
    print(f"report written to {path}")
    return 0
