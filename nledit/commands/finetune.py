"""`nledit train-head` in both modes: its settings from a recipe's ``train_head`` section, from
flags, or both (flags win); the training itself is ``nledit.training``.

``mode: head`` gives a plain encoder a classification head; ``mode: answer`` fine-tunes a
causal LM to answer the recipe's zero-shot prompt with the label word. A recipe whose
``model.id`` is ``nledit:train_head`` edits the checkpoint its own ``train_head`` section
produces, trained once into nledit's cache (``resolved_recipe``, which every recipe command
reads its recipe through).
"""

from __future__ import annotations

import argparse

from pydantic import BaseModel, ValidationError

from ..recipe import TRAINED_BASE, PromptSpec, RecipeError, TrainHeadSpec, load_recipe
from ..recipe.loading import format_errors
from ..recipe.overrides import parse_set
from ..training import resolved_recipe, train_for_command

__all__ = ["cmd_train_head", "head_spec", "resolved_recipe"]

# flag -> train_head field (flags that are not None override the recipe)
FLAGS = {
    "base": "base",
    "data": "data",
    "eval_data": "eval_data",
    "train_examples": "train_examples",
    "eval_examples": "eval_examples",
    "epochs": "epochs",
    "lr": "lr",
    "batch_size": "batch_size",
    "max_length": "max_length",
    "seed": "seed",
    "out": "out",
    "mode": "mode",
    "train_layers": "train_layers",
}


class _HeadOnly(BaseModel):
    train_head: TrainHeadSpec


def head_spec(args: argparse.Namespace) -> tuple[TrainHeadSpec, PromptSpec | None]:
    """The training settings (the recipe's ``train_head`` section with flags on top) and the
    recipe's prompt (None without a recipe)."""
    flags = {key: getattr(args, flag) for flag, key in FLAGS.items()}
    flags = {k: v for k, v in flags.items() if v is not None}
    if getattr(args, "overwrite", False):
        flags["overwrite"] = True
    if args.recipe:
        overrides = parse_set(args.set or [])
        overrides |= {f"train_head.{k}": v for k, v in flags.items()}
        recipe, _ = load_recipe(args.recipe, overrides or None)
        spec = recipe.train_head
        if spec is None:
            raise RecipeError(
                args.recipe,
                ["train_head: the recipe has no train_head section; add one or pass --base/--data"],
            )
        if spec.out is None and recipe.model.id != TRAINED_BASE:
            spec = spec.updated(out=recipe.model.id)
        return spec, recipe.prompt
    if args.set:
        raise RecipeError("--set", ["--set: needs a recipe; without one, use the flags"])
    try:
        return _HeadOnly.model_validate({"train_head": flags}).train_head, None
    except ValidationError as err:
        problems = [
            p.replace("required field is missing", "required (give the flag)")
            for p in format_errors(err)
        ]
        raise RecipeError("flags", problems) from None


def cmd_train_head(args: argparse.Namespace) -> int:
    """`nledit train-head`: train in the recipe's (or the flags') mode and save; a recipe that
    edits its own fine-tuned base without ``--out`` trains into the cache, like `nledit run`."""
    spec, prompt = head_spec(args)
    recipe = None
    if spec.out is None and spec.mode == "answer" and args.recipe:
        recipe, _ = load_recipe(args.recipe, None)
    folder = train_for_command(spec, prompt, recipe)
    if folder is not None:
        print(f"checkpoint: {folder}")
    return 0
