"""The examples `train-head` learns from and is judged on: label names, a training split and a
held-out split that never shares a text with it, balanced over the classes and seeded."""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

from ..recipe import DataSpec, TrainHeadSpec


@dataclass
class Split:
    """Texts and their label ids, in order."""

    texts: list[str]
    labels: list[int]


def _examples(spec: TrainHeadSpec, source: str, split: str) -> tuple[list[str], Split]:
    from ..data.dataset import load_rows, resolve_label_names, to_examples

    data = DataSpec(
        source=source,
        split=split,
        text_field=spec.text_field,
        label_field=spec.label_field,
        label_names=spec.label_names,
    )
    rows = load_rows(source, None, split, data)
    names = resolve_label_names(data, source, rows)
    ex = to_examples(rows, data, names, source)
    return names, Split(ex.texts, ex.labels)


def _balanced(pool: Split, n: int, n_classes: int, rng: random.Random) -> Split:
    """Up to ``n`` examples, as evenly spread over the classes as the data allows, shuffled."""
    by_class: dict[int, list[str]] = {c: [] for c in range(n_classes)}
    for t, y in zip(pool.texts, pool.labels):
        by_class[y].append(t)
    for texts in by_class.values():
        rng.shuffle(texts)
    picked: list[tuple[str, int]] = []
    while len(picked) < n and any(by_class.values()):
        for c in range(n_classes):
            if by_class[c] and len(picked) < n:
                picked.append((by_class[c].pop(), c))
    rng.shuffle(picked)
    return Split([t for t, _ in picked], [y for _, y in picked])


def load_splits(spec: TrainHeadSpec) -> tuple[list[str], Split, Split]:
    """Label names, training and held-out examples (never sharing a text), seeded."""
    from ..data.dataset import DataError

    rng = random.Random(spec.seed)
    names, pool = _examples(spec, spec.data, spec.split)
    if spec.eval_data:
        eval_names, held_pool = _examples(spec, spec.eval_data, spec.eval_split)
        if eval_names != names:
            raise DataError(
                f"train_head.eval_data: labels {eval_names} differ from the training data's {names}"
            )
        held = _balanced(_dedupe(held_pool), spec.eval_examples, len(names), rng)
    else:
        held = _balanced(_dedupe(pool), spec.eval_examples, len(names), rng)
    seen = set(held.texts)
    rest = _dedupe(pool)
    keep = [i for i, t in enumerate(rest.texts) if t not in seen]
    rest = Split([rest.texts[i] for i in keep], [rest.labels[i] for i in keep])
    train = _balanced(rest, spec.train_examples, len(names), rng)
    missing = [names[c] for c in range(len(names)) if c not in set(train.labels)]
    if missing:
        raise DataError(f"train_head.data: no training examples of {missing} in {spec.data}")
    return names, train, held


def _dedupe(split: Split) -> Split:
    first: dict[str, int] = {}
    for t, y in zip(split.texts, split.labels):
        first.setdefault(t, y)
    return Split(list(first), list(first.values()))


def split_digest(split: Split) -> str:
    """sha256 of the examples and labels of ``split``, in order."""
    h = hashlib.sha256()
    for t, y in zip(split.texts, split.labels):
        h.update(f"{y}\t{t}\n".encode())
    return h.hexdigest()
