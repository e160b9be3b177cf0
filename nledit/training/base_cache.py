"""The fine-tuned base a recipe names as its model, and training in either mode.

A recipe whose ``model.id`` is ``nledit:train_head`` edits the checkpoint its own
``train_head`` section produces. ``nledit run`` trains it once into nledit's cache
(``<cache>/trained/<key>``; the key is a sha256 of the base's identity, the training and
held-out data, the settings and the prompt) and reuses it while every file still matches the
sha256 its record holds. The folder is written through ``folders.atomic.atomic_dir`` (an owned
temporary folder beside it), so a killed run leaves nothing half-written; a folder at that
path that nledit did not write is refused, never replaced.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from ..models.loading import HEAD_RECORD
from ..models.threads import apply_threads
from ..recipe import TRAINED_BASE as TRAINED
from ..recipe import ModelSpec, PromptSpec, Recipe, RecipeError, TrainHeadSpec
from .answer import check_answer_settings, train_answer
from .head import HeadResult, train_head

KEY_FORMAT = 1  # bump when training changes what the same settings produce


def train(
    spec: TrainHeadSpec, prompt: PromptSpec | None, log: Any = print, cache_key: str | None = None
) -> HeadResult:
    """Train in the spec's mode and save the checkpoint."""
    if spec.mode == "answer":
        return train_answer(spec, check_answer_settings(spec, prompt), log, cache_key)
    return train_head(spec, log)[0]


def _file_sha(path: str) -> str:
    from ..models.loading import sha256_file

    p = Path(path).expanduser()
    return sha256_file(p) if p.is_file() else f"hub:{path}"


def cache_key(spec: TrainHeadSpec, prompt: PromptSpec) -> str:
    """sha256 of what determines the trained checkpoint: base identity, data, settings, prompt."""
    from ..fitting.provenance import model_fingerprint
    from ..models.loading import resolve_source

    source = resolve_source(ModelSpec(id=spec.base, task="causal-lm"))
    base = model_fingerprint(source)
    base.pop("origin", None)  # the same weights under another name are the same base
    settings = spec.model_dump(exclude={"out", "overwrite"})
    doc = {
        "format": KEY_FORMAT,
        "base": base,
        "data": _file_sha(spec.data),
        "eval_data": _file_sha(spec.eval_data) if spec.eval_data else None,
        "settings": settings,
        "prompt": prompt.model_dump(),
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def cache_folder(key: str) -> Path:
    """Where the checkpoint with this key lives in nledit's cache."""
    from ..folders.owned import cache_dir

    return cache_dir() / "trained" / key[:20]


def cached_problem(folder: Path, key: str) -> str | None:
    """Why ``folder`` cannot be reused for ``key`` (None when every file matches its record)."""
    from ..checkpoint.integrity import walk
    from ..models.loading import sha256_file

    try:
        record = json.loads((folder / HEAD_RECORD).read_text(encoding="utf-8"))
        files = record["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return f"{folder} holds no readable training record"
    if record.get("cache_key") != key:
        return f"{folder} was trained with other settings"
    listed, odd = walk(folder)
    if odd or set(listed) != set(files) | {HEAD_RECORD}:
        return f"the files of {folder} changed since training"
    for name, want in files.items():
        if sha256_file(folder / name) != want:
            return f"{folder / name} was modified since training (sha256 mismatch)"
    return None


def trained_base(recipe: Recipe, log: Any = print) -> Recipe:
    """``recipe`` with ``model.id: nledit:train_head`` replaced by the cached checkpoint of its
    ``train_head`` section (trained first when absent or damaged); other recipes unchanged."""
    import sys

    if recipe.model.id != TRAINED:
        return recipe
    spec = recipe.train_head
    if spec is None:
        raise RecipeError(
            "recipe", [f"model.id: {TRAINED} needs a train_head section to train the model"]
        )
    if spec.mode != "answer":
        raise RecipeError(
            "recipe", [f"train_head.mode: model.id {TRAINED} needs mode answer (got {spec.mode})"]
        )
    prompt = check_answer_settings(spec, recipe.prompt)
    key = cache_key(spec, prompt)
    folder = cache_folder(key)
    problem = cached_problem(folder, key) if folder.exists() else "absent"
    if problem is None:
        log(f"fine-tuned base: reusing {folder}")
    else:
        if folder.exists():
            if folder.is_symlink() or not (folder / HEAD_RECORD).is_file():
                raise RecipeError(
                    "recipe", [f"model.id: {folder} was not written by nledit; remove it"]
                )
            print(f"note: {problem}; training again", file=sys.stderr)
        log(f"fine-tuned base: not in the cache yet, training it into {folder}")
        owned = spec.updated(out=str(folder), overwrite=folder.exists())
        train(owned, prompt, log, key)
    model = recipe.model.updated(id=str(folder))
    return recipe.updated(model=model)


def planned_base(recipe: Recipe) -> Recipe:
    """For planning without training: the cached checkpoint when it is there, else the model
    it will be trained from (``nledit run`` trains it first)."""
    if recipe.model.id != TRAINED or recipe.train_head is None:
        return recipe
    spec = recipe.train_head
    key = cache_key(spec, check_answer_settings(spec, recipe.prompt))
    folder = cache_folder(key)
    if folder.exists() and cached_problem(folder, key) is None:
        mid = str(folder)
    else:
        print(
            f"note: model.id {TRAINED}: not trained yet; nledit run fine-tunes {spec.base} "
            "first (planned here from that model)"
        )
        mid = spec.base
    return recipe.updated(model=recipe.model.updated(id=mid))


def resolved_recipe(recipe: Recipe, train: bool = True, log: Any = print) -> Recipe:
    """The recipe as a command runs it: its ``threads`` pinned before any model work (training
    included), and ``model.id: nledit:train_head`` naming the cached checkpoint, trained first
    when ``train`` (``trained_base``), else planned from its base (``planned_base``)."""
    apply_threads(recipe.threads)
    return trained_base(recipe, log) if train else planned_base(recipe)


def train_for_command(
    spec: TrainHeadSpec, prompt: PromptSpec | None, recipe: Recipe | None = None
) -> str | None:
    """`nledit train-head`'s job: train ``spec`` and save it to ``spec.out``. With ``recipe``
    (its threads pinned first) whose ``model.id`` is ``nledit:train_head``, train into the cache
    as ``nledit run`` would (reused when it is there) and return the checkpoint's folder."""
    if recipe is not None:
        apply_threads(recipe.threads)
        if recipe.model.id == TRAINED:
            return resolved_recipe(recipe.updated(train_head=spec, prompt=prompt)).model.id
    train(spec, prompt)
    return None
