"""Fine-tune a causal LM to answer the recipe's zero-shot prompt with the label word
(``train_head.mode: answer``, training in ``lm.py``), judge it on held-out examples and save it
as an ordinary causal-LM checkpoint."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ..models.loading import HEAD_RECORD
from ..recipe import ModelSpec, PromptSpec, RecipeError, TrainHeadSpec
from .head import HeadResult, save_checkpoint
from .splits import Split, load_splits, split_digest


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
    from .lm import Encoded

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
    from .lm import train_answer as fit

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
