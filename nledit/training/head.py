"""Train a classification head on a plain encoder (``train_head.mode: head``, App. H).

A sentence encoder such as all-MiniLM-L6-v2 has no classification head. This fine-tunes one
(the whole encoder with a fresh ``AutoModelForSequenceClassification`` head, labels named from
the data), reports the accuracy on held-out examples that training never saw, and saves an
ordinary Hugging Face checkpoint (safetensors, tokenizer, config with ``id2label``) atomically.
A recipe then edits it like any other classifier: ``model.id`` names the saved folder.
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..models.loading import HEAD_RECORD
from ..recipe import ModelSpec, RecipeError, TrainHeadSpec
from .splits import Split, load_splits, split_digest

HEAD_MARKERS = (HEAD_RECORD,)


@dataclass
class HeadResult:
    """What training produced (also written to ``nledit_head.json`` beside the weights)."""

    out: str
    label_names: list[str]
    n_train: int
    n_eval: int
    steps: int
    accuracy: float
    per_class: dict[str, float]
    final_loss: float
    timings: dict[str, float] = field(default_factory=dict)


def load_base(spec: TrainHeadSpec, names: list[str]) -> tuple[Any, Any, str]:
    """(model with a fresh head, tokenizer, folder) for ``spec.base``."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from ..models.loading import BASE_FOLDER_KW, ModelLoadError, resolve_source

    source = resolve_source(ModelSpec(id=spec.base))
    try:
        tokenizer = AutoTokenizer.from_pretrained(source.location, trust_remote_code=False)
        model = AutoModelForSequenceClassification.from_pretrained(
            source.location,
            trust_remote_code=False,
            num_labels=len(names),
            id2label=dict(enumerate(names)),
            label2id={n: i for i, n in enumerate(names)},
            dtype=torch.float32,
            **BASE_FOLDER_KW,
        )
    except (OSError, ValueError) as err:
        raise ModelLoadError(f"train_head.base: cannot load {spec.base!r}: {err}") from err
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer, source.location


def _batches(split: Split, order: list[int], size: int) -> list[list[int]]:
    return [order[i : i + size] for i in range(0, len(order), size)]


def _encode(tokenizer: Any, texts: list[str], max_length: int) -> dict[str, Any]:
    return tokenizer(
        texts, truncation=True, max_length=max_length, padding=True, return_tensors="pt"
    )


def fine_tune(
    model: Any, tokenizer: Any, train: Split, spec: TrainHeadSpec, log: Any = print
) -> tuple[int, float]:
    """AdamW with linear warm-up and decay over every parameter; returns (steps, last loss)."""
    import torch

    from .optim import make_optimizer, take_step

    torch.manual_seed(spec.seed)
    rng = random.Random(spec.seed)
    per_epoch = math.ceil(len(train.texts) / spec.batch_size)
    total = per_epoch * spec.epochs
    opt, sched = make_optimizer(list(model.parameters()), spec, total)
    model.train()
    step, t0, loss_ema = 0, time.perf_counter(), math.nan
    every = max(1, total // 10)
    for _ in range(spec.epochs):
        order = list(range(len(train.texts)))
        rng.shuffle(order)
        for rows in _batches(train, order, spec.batch_size):
            enc = _encode(tokenizer, [train.texts[i] for i in rows], spec.max_length)
            labels = torch.tensor([train.labels[i] for i in rows])
            loss = model(**enc, labels=labels).loss
            loss_ema = take_step(loss, model.parameters(), opt, sched, loss_ema)
            step += 1
            if step % every == 0 or step == total:
                log(
                    f"  step {step}/{total}  loss {loss_ema:.3f}  ({time.perf_counter() - t0:.0f}s)"
                )
    model.eval()
    return step, loss_ema


def accuracy(
    model: Any, tokenizer: Any, held: Split, names: list[str], spec: TrainHeadSpec
) -> tuple[float, dict[str, float]]:
    """Overall and per-class accuracy of the model's argmax on the held-out examples."""
    import torch

    preds: list[int] = []
    with torch.no_grad():
        for start in range(0, len(held.texts), spec.batch_size):
            enc = _encode(tokenizer, held.texts[start : start + spec.batch_size], spec.max_length)
            preds += model(**enc).logits.argmax(-1).tolist()
    hits = [p == y for p, y in zip(preds, held.labels)]
    per = {}
    for c, name in enumerate(names):
        sel = [h for h, y in zip(hits, held.labels) if y == c]
        per[name] = sum(sel) / len(sel) if sel else math.nan
    return (sum(hits) / len(hits) if hits else math.nan), per


def train_head(spec: TrainHeadSpec, log: Any = print) -> tuple[HeadResult, Any, Any]:
    """Train, evaluate on held-out examples and save; returns (result, model, tokenizer)."""
    from ..checkpoint.write import versions
    from ..folders.atomic import check_destination

    if spec.out is None:
        raise RecipeError("train_head", ["train_head.out: required (give --out)"])
    out = Path(spec.out)
    check_destination(out, spec.overwrite, HEAD_MARKERS, "train_head.out")
    t0 = time.perf_counter()
    names, train, held = load_splits(spec)
    model, tokenizer, location = load_base(spec, names)
    t1 = time.perf_counter()
    log(
        f"training a {len(names)}-way head on {spec.base}: {len(train.texts)} examples, "
        f"{spec.epochs} epoch(s), batch {spec.batch_size}, max_length {spec.max_length}"
    )
    steps, loss = fine_tune(model, tokenizer, train, spec, log)
    t2 = time.perf_counter()
    acc, per = accuracy(model, tokenizer, held, names, spec)
    t3 = time.perf_counter()
    timings = {"load_s": t1 - t0, "train_s": t2 - t1, "eval_s": t3 - t2}
    result = HeadResult(
        str(out), names, len(train.texts), len(held.texts), steps, acc, per, loss, timings
    )
    record = {
        **asdict(result),
        "base": spec.base,
        "base_location": location,
        "settings": spec.model_dump(),
        "train_sha256": split_digest(train),
        "eval_sha256": split_digest(held),
        "versions": versions(),
    }
    save_checkpoint(out, spec.overwrite, model, tokenizer, record)
    result.timings["save_s"] = time.perf_counter() - t3
    log(
        f"held-out accuracy {acc:.3f} on {len(held.texts)} examples ("
        + ", ".join(f"{k} {v:.2f}" for k, v in per.items())
        + ")"
    )
    log(f"saved classifier to {out}")
    return result, model, tokenizer


def save_checkpoint(out: Path, overwrite: bool, model: Any, tokenizer: Any, record: dict) -> None:
    """Write model, tokenizer and ``record`` (with every file's sha256) to ``out`` atomically."""
    from ..checkpoint.integrity import walk
    from ..folders.atomic import atomic_dir
    from ..models.loading import sha256_file

    with atomic_dir(out, overwrite, HEAD_MARKERS, "train_head.out") as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        # what --overwrite may replace, and what a cached copy is checked against before reuse
        record["files"] = {name: sha256_file(tmp / name) for name in walk(tmp)[0]}
        (tmp / HEAD_RECORD).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
