"""`nledit train-head` in both modes, and the fine-tuned base a recipe names as its model.

``mode: head`` (``train_head.py``) gives a plain encoder a classification head. ``mode:
answer`` (``nledit.training.lm``) fine-tunes a causal LM to answer the recipe's zero-shot prompt
with the label word; the result is an ordinary causal-LM checkpoint.

A recipe whose ``model.id`` is ``nledit:train_head`` edits the checkpoint its own
``train_head`` section produces. ``nledit run`` trains it once into nledit's cache
(``<cache>/trained/<key>``; the key is a sha256 of the base's identity, the training and
held-out data, the settings and the prompt) and reuses it while every file still matches the
sha256 its record holds. The folder is written through ``outdir.atomic_dir`` (an owned
temporary folder beside it), so a killed run leaves nothing half-written; a folder at that
path that nledit did not write is refused, never replaced.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path
from typing import Any

from ..recipe import TRAINED_BASE as TRAINED
from ..recipe import ModelSpec, PromptSpec, Recipe, RecipeError, TrainHeadSpec
from .train_head import (
    HEAD_RECORD,
    HeadResult,
    Split,
    head_spec,
    load_splits,
    save_checkpoint,
    split_digest,
    train_head,
)

KEY_FORMAT = 1  # bump when training changes what the same settings produce


def check_answer_settings(spec: TrainHeadSpec, prompt: PromptSpec | None) -> PromptSpec:
    """The prompt answer-mode training uses; bad combinations name the field."""
    if prompt is None:
        raise RecipeError(
            "flags",
            ["train_head.mode: answer needs a recipe (its prompt section frames the question)"],
        )
    problems = []
    if prompt.shots != 0 or prompt.demonstrations:
        problems.append(
            f"prompt.shots: train_head.mode answer trains and edits a zero-shot prompt; set "
            f"prompt.shots to 0 (got {prompt.shots}) and leave out prompt.demonstrations"
        )
    if problems:
        raise RecipeError("recipe", problems)
    return prompt


def encode(cm: Any, split: Split) -> Any:
    """Each example's prompt tokens (as evaluation builds them) and its label."""
    from ..training.lm import Encoded

    return Encoded(cm.prompt_rows(split.texts), list(split.labels))


def train_answer(
    spec: TrainHeadSpec, prompt: PromptSpec, log: Any = print, cache_key: str | None = None
) -> HeadResult:
    """Fine-tune ``spec.base`` in answer mode, report held-out accuracy, save to ``spec.out``."""
    from ..checkpoint.write import versions
    from ..data.concept import ConceptModel
    from ..data.dataset import Examples
    from ..folders.atomic import check_destination
    from ..models.arch import find_layout
    from ..models.loading import load_model, resolve_source
    from ..training.lm import train_answer as fit

    if spec.out is None:
        raise RecipeError("train_head", ["train_head.out: required (give --out)"])
    out = Path(spec.out)
    check_destination(out, spec.overwrite, (HEAD_RECORD,), "train_head.out")
    t0 = time.perf_counter()
    names, train, held = load_splits(spec)
    mspec = ModelSpec(id=spec.base, task="causal-lm")
    source = resolve_source(mspec)
    model, tokenizer, _ = load_model(mspec, source)
    cm = ConceptModel(
        model,
        tokenizer,
        "causal-lm",
        find_layout(model),
        names,
        prompt,
        Examples([], []),
        spec.max_length,
    )
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    tr, ho = encode(cm, train), encode(cm, held)
    t1 = time.perf_counter()
    log(
        f"fine-tuning {spec.base} to answer with the label word ({len(names)} labels: "
        f"{', '.join(w.strip() for w in cm.label_words)}): top {spec.train_layers} layer(s), "
        f"{len(train.texts)} examples, {spec.epochs} epoch(s), batch {spec.batch_size}"
    )
    steps, loss, epochs = fit(model, tr, ho, names, cm.label_ids, pad_id, spec, log)
    t2 = time.perf_counter()
    last = epochs[-1]
    n_right = sum(last.per_class[n] * held.labels.count(c) for c, n in enumerate(names))
    result = HeadResult(
        str(out),
        names,
        len(train.texts),
        len(held.texts),
        steps,
        n_right / len(held.texts),
        last.per_class,
        loss,
        {"load_s": t1 - t0, "train_s": t2 - t1},
    )
    record = {
        **vars(result),
        "mode": "answer",
        "balanced_acc": last.balanced_acc,
        "balanced_acc_ci": last.balanced_acc_ci,
        "epochs": [vars(e) for e in epochs],
        "base": spec.base,
        "base_location": source.location,
        "base_hub_id": source.base_model,
        "base_gguf_sha256": source.gguf_sha256,
        "label_words": list(cm.label_words),
        "prompt": prompt.model_dump(),
        "settings": spec.model_dump(),
        "train_sha256": split_digest(train),
        "eval_sha256": split_digest(held),
        "cache_key": cache_key,
        "versions": versions(),
    }
    model.config.architectures = [type(model).__name__]
    save_checkpoint(out, spec.overwrite, model, tokenizer, record)
    result.timings["save_s"] = time.perf_counter() - t2
    log(
        f"held-out balanced accuracy {last.balanced_acc:.3f} [{last.balanced_acc_ci[0]:.3f}, "
        f"{last.balanced_acc_ci[1]:.3f}] on {len(held.texts)} examples; saved to {out}"
    )
    return result


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


def cmd_train_head(args: argparse.Namespace) -> int:
    """`nledit train-head`: train in the recipe's (or the flags') mode and save."""
    from ..models.threads import apply_threads

    spec, prompt = head_spec(args)
    if spec.out is None and spec.mode == "answer" and args.recipe:
        from ..recipe import load_recipe

        recipe, _ = load_recipe(args.recipe, None)
        apply_threads(recipe.threads)
        if recipe.model.id == TRAINED:
            base = trained_base(recipe.updated(train_head=spec, prompt=prompt))
            print(f"checkpoint: {base.model.id}")
            return 0
    train(spec, prompt)
    return 0
