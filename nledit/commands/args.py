"""What every recipe command reads from its arguments: the recipe with its overrides, and the
output folders it will write, checked before any model work."""

from __future__ import annotations

import argparse

from ..folders import check_apart, recipe_inputs
from ..folders import check_outputs as check_folders
from ..recipe import Recipe, load_recipe
from ..recipe.overrides import parse_set

# Flag -> the recipe field it overrides (a flag left out keeps the recipe's value).
FLAG_FIELDS = (
    ("out", "output.dir"),
    ("device", "model.device"),
    ("dtype", "model.dtype"),
    ("batch_size", "batch_size"),
    ("seed", "seed"),
    ("seeds", "eval.seeds"),
    ("method", "output.method"),
    ("weights", "output.weights"),
    ("threads", "threads"),
)


def recipe_from_args(args: argparse.Namespace, train: bool = True) -> tuple[Recipe, str]:
    """The recipe ``args.recipe`` with ``--set`` items and the flags of ``FLAG_FIELDS`` applied,
    and its text. A recipe that edits its own fine-tuned base (``model.id: nledit:train_head``)
    names the cached checkpoint, trained first when ``train`` (else planned from its base)."""
    overrides = parse_set(args.set or [])
    for flag, key in FLAG_FIELDS:
        value = getattr(args, flag, None)
        if value is not None:
            overrides[key] = value
    if getattr(args, "overwrite", False):
        overrides["output.overwrite"] = True
    recipe, text = load_recipe(args.recipe, overrides or None)
    from .finetune import resolved_recipe  # the fine-tuned base is the train-head command's

    return resolved_recipe(recipe, train), text


def check_outputs(
    *pairs: tuple[str, str | None],
    inputs: list[tuple[str, str | None]] | None = None,
    itself: bool = False,
) -> None:
    """Every output folder the command will write, as (recipe field, folder), checked before
    any model work: writable, apart from every input ``(field, path)`` it reads, not inside
    an nledit export or fit folder (``itself``: nor one, for commands that write other files)."""
    check_folders(list(pairs))
    check_apart(list(pairs), inputs or [], itself)


def check_recipe_outputs(
    recipe: Recipe, *pairs: tuple[str, str | None], itself: bool = False
) -> None:
    """``check_outputs`` of ``pairs`` against every input ``recipe`` reads."""
    check_outputs(*pairs, inputs=recipe_inputs(recipe), itself=itself)
