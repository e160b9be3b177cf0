"""`nledit tune`: a multi-objective search for an edit, judged on a validation split (the job:
``nledit.tune.run_tune``, described in docs/tune.md); the flags become ``tune.*`` overrides."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..tune import run_tune
from .args import check_recipe_outputs, recipe_from_args


def cmd_tune(args: argparse.Namespace) -> int:
    """`nledit tune`: the flags become ``tune.*`` overrides; the folders are checked first."""
    flags = {
        "tune.trials": args.trials,
        "tune.pick": args.pick,
        "tune.keep": args.keep,
        "tune.dir": args.tune_out,
        "tune.storage": args.storage,
        "tune.sampler": args.sampler,
        "tune.evaluate": False if args.no_eval else None,
    }
    extra = [f"{k}={json.dumps(v)}" for k, v in flags.items() if v is not None]
    args.set = (args.set or []) + extra
    recipe, text = recipe_from_args(args)
    storage = recipe.tune.storage or ""
    db = storage.removeprefix("sqlite:///") if storage.startswith("sqlite:///") else None
    check_recipe_outputs(
        recipe, ("tune.dir", recipe.tune.dir), ("tune.storage", db and str(Path(db).parent))
    )
    run_tune(recipe, text)
    return 0
