"""`nledit check`, `run`, `fit` and `export`: the recipe commands over the API's recipe jobs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..cli_errors import INCOMPETENT_BASE, USAGE_ERROR
from ..errors import NleditError
from ..folders import check_apart, recipe_inputs
from ..recipe import Recipe, edit_definition, load_recipe
from .args import check_outputs, recipe_from_args


class RefitError(NleditError, ValueError):
    """An override of `nledit export` would change the gates the fit directory holds."""


def _changed(a: object, b: object, at: str = "") -> list[str]:
    """Dotted paths where two definitions differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        keys = list(dict.fromkeys([*a, *b]))
        return [p for k in keys for p in _changed(a.get(k), b.get(k), f"{at}{k}.")]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [p for i, (x, y) in enumerate(zip(a, b)) for p in _changed(x, y, f"{at}{i}.")]
    return [] if a == b else [at.rstrip(".")]


def refuse_refit(fitted: Recipe, asked: Recipe) -> None:
    """`nledit export` writes the gates of its fit directory: an override (``--set``,
    ``--seed``) of anything that defines them (model, data, prompt, edits, seed) is refused,
    so the card and the recipe stored in the export always describe the gates exported."""
    changed = _changed(edit_definition(fitted), edit_definition(asked))
    if changed:
        raise RefitError(
            f"export: {', '.join(changed)} define(s) the fitted gates; an export cannot change "
            "them (fit again with `nledit fit --set ...`, then export)"
        )


def cmd_check(args: argparse.Namespace) -> int:
    """Validate the recipe and print the plan, without loading weights."""
    from .. import api

    recipe, _ = recipe_from_args(args, train=False)
    plan = api.check(recipe)
    if plan.problems:  # never "valid" first and a problem after
        print(f"recipe {args.recipe} has {len(plan.problems)} problem(s)")
        print(plan.render())
        print(
            f"error: recipe {args.recipe}: {len(plan.problems)} problem(s), see above",
            file=sys.stderr,
        )
        return USAGE_ERROR
    print(f"recipe {args.recipe} is valid")
    print(plan.render())
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """Fit, evaluate and export in one go."""
    from .. import api

    recipe, text = recipe_from_args(args)
    check_outputs(("output.dir", recipe.output.dir), inputs=recipe_inputs(recipe))
    done = api.run_recipe(recipe, text, Path(recipe.output.dir), recipe.output.overwrite)
    comp = done.result.competence if done.result is not None else {}
    if getattr(args, "strict", False) and comp and not comp["competent"]:
        print(
            f"error: --strict: {comp['task_why']}; the base model cannot carry an erasure claim",
            file=sys.stderr,
        )
        return INCOMPETENT_BASE
    return 0


def cmd_fit(args: argparse.Namespace) -> int:
    """One streaming pass into a fit directory (statistics, ranges, gates)."""
    from .. import api

    recipe, text = recipe_from_args(args)
    out = Path(args.out or (recipe.output.dir + "-fit"))
    field = "--out" if args.out else "output.dir (+ -fit)"
    check_apart([(field, str(out))], recipe_inputs(recipe))
    api.fit_to_folder(recipe, text, out, field)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """Evaluate a fit directory and export the patched checkpoint."""
    from .. import api

    fit_dir = Path(args.fit_dir)
    if not (fit_dir / "nledit_fit.json").is_file():
        raise FileNotFoundError(f"{fit_dir}: not a fit directory (no nledit_fit.json)")
    args.recipe = str(fit_dir / "nledit_recipe.yaml")
    recipe, text = recipe_from_args(args)
    refuse_refit(load_recipe(args.recipe)[0], recipe)
    inputs = [("fit folder", str(fit_dir)), *recipe_inputs(recipe)]
    check_outputs(("output.dir", recipe.output.dir), inputs=inputs)
    api.export_fit_folder(fit_dir, recipe, text, evaluated=not args.no_eval)
    return 0
