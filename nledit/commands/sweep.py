"""`nledit sweep`: range masking against neuron masking over tau, top_p or the edited layer
(the job: ``nledit.sweep.run_sweep``); the flags become ``sweep.*`` overrides."""

from __future__ import annotations

import argparse

from ..recipe import load_recipe_text
from ..sweep import run_sweep
from .args import check_recipe_outputs, recipe_from_args


def cmd_sweep(args: argparse.Namespace) -> int:
    """`nledit sweep`: the flags become ``sweep.*`` overrides, shown as the command in the table."""
    extra, shown = [], [f"nledit sweep {args.recipe}"]
    if args.over:
        extra.append(f"sweep.over={args.over}")
        shown.append(f"--over {args.over}")
    values = ",".join(v.strip(",") for v in args.values or [])
    if values:
        extra.append(f"sweep.values=[{values}]")
        shown.append(f"--values {values}")
    elif args.over:  # the recipe's values belong to the recipe's own `over`
        _, raw = load_recipe_text(args.recipe)
        section = raw.get("sweep") if isinstance(raw, dict) else None
        if isinstance(section, dict) and section.get("over", "tau") != args.over:
            extra.append("sweep.values=null")
    if args.sweep_out:
        extra.append(f"sweep.out={args.sweep_out}")
        shown.append(f"--out {args.sweep_out}")
    shown += [f"--set {item}" for item in args.set or []]
    args.set = (args.set or []) + extra
    recipe, text = recipe_from_args(args)
    check_recipe_outputs(recipe, ("sweep.out", recipe.sweep.out), itself=True)
    run_sweep(recipe, text, command=" ".join(shown))
    return 0
