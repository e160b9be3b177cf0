"""Concept data: a Hub data set or a local jsonl/json/csv file, split into shots, fit and eval.

The same ``datasets.load_dataset`` call serves both; local files look for ``labels.json`` beside
them for label names.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import DataError
from ..recipe import DataSpec, PromptSpec, Recipe
from .blank import blank, not_text
from .files import WHERE, loads, not_a_file, read_rows, read_text, where
from .selection import class_indices, demonstrations, pick, shot_counts

LOCAL_FORMATS = {".jsonl": "json", ".json": "json", ".csv": "csv"}


@dataclass
class Examples:
    texts: list[str]
    labels: list[int]

    def __len__(self) -> int:
        return len(self.texts)

    def of(self, label: int) -> list[str]:
        return [t for t, y in zip(self.texts, self.labels) if y == label]


@dataclass
class ConceptData:
    """The split data: label names, few-shot examples, fitting and evaluation examples."""

    label_names: list[str]
    shots: Examples
    fit: Examples
    eval: Examples
    digest: str  # sha256 of the loaded rows (for the manifest)
    meta: dict[str, int] = field(default_factory=dict)
    val: Examples = field(default_factory=lambda: Examples([], []))  # `nledit tune` only
    curation: dict[str, Any] = field(default_factory=dict)  # split -> per-class counts


def is_local_source(source: str) -> bool:
    return Path(source).suffix in LOCAL_FORMATS or Path(source).exists()


def load_rows(
    source: str, config: str | None, split: str, spec: DataSpec, field: str = "data.source"
) -> list[dict]:
    if is_local_source(source):
        path = Path(source).expanduser()
        if not path.is_file():
            raise DataError(f"{field}: {not_a_file(path)}")
        if path.suffix not in LOCAL_FORMATS:
            raise DataError(f"{field}: {path}: unsupported format (use .jsonl, .json, .csv)")
        rows = read_rows(path, field, DataError)
        _check_fields(rows, spec, str(path))
        return rows
    import datasets

    datasets.disable_progress_bars()
    try:
        ds = datasets.load_dataset(source, config, split=split)
    except Exception as err:
        raise DataError(f"{field}: cannot load data set {source!r}: {err}") from err
    for name in (spec.text_field, spec.label_field):
        if name not in ds.column_names:
            field_name = "text_field" if name == spec.text_field else "label_field"
            raise DataError(
                f"data.{field_name}: column {name!r} not in {source} "
                f"(columns: {', '.join(ds.column_names)})"
            )
    features = ds.features.get(spec.label_field)
    rows = ds.to_list()
    if getattr(features, "names", None) and spec.label_names is None:
        for r in rows:
            r["__names__"] = features.names
    return rows


def _check_fields(rows: list[dict], spec: DataSpec, source: str) -> None:
    """Every local row has the text and label fields; the first row's keys are the columns."""
    for n, row in enumerate(rows, 1):
        for key, name in (("text_field", spec.text_field), ("label_field", spec.label_field)):
            if name in row:
                continue
            columns = ", ".join(k for k in row if k != WHERE) or "none"
            if n == 1:
                raise DataError(f"data.{key}: column {name!r} not in {source} (columns: {columns})")
            raise DataError(f"data.{key}: {source}, {where(row, n)}: no {name!r} field ({columns})")


def resolve_label_names(spec: DataSpec, source: str, rows: list[dict]) -> list[str]:
    if spec.label_names is not None:
        return list(spec.label_names)
    if rows and "__names__" in rows[0]:
        return list(rows[0]["__names__"])
    side = Path(source).expanduser().parent / "labels.json"
    if is_local_source(source) and side.is_file():
        return _labels_file(side)
    values = [r.get(spec.label_field) for r in rows]
    if values and all(isinstance(v, str) for v in values):
        return sorted(set(values))
    raise DataError(
        f"data.label_names: not given and {source} has no label names "
        "(add label_names to the recipe or a labels.json beside the file)"
    )


def _labels_file(path: Path) -> list[str]:
    """Label names from ``labels.json``: a list of names, or a mapping ``{"0": name, ...}``."""
    text = read_text(path, "data.label_names", DataError)
    try:
        names = loads(text)
    except json.JSONDecodeError as err:
        raise DataError(
            f"data.label_names: {path}, line {err.lineno}: invalid JSON ({err.msg}, "
            f"column {err.colno})"
        ) from None
    except ValueError as err:
        raise DataError(f"data.label_names: {path}: {err}") from None
    if isinstance(names, dict):
        ids = [str(i) for i in range(len(names))]
        if sorted(names, key=str) != sorted(ids):
            raise DataError(
                f"data.label_names: {path}: the keys must be the label ids 0..{len(names) - 1}, "
                f"got {sorted(names)}"
            )
        names = [names[i] for i in ids]
    if not isinstance(names, list) or not names:
        raise DataError(
            f"data.label_names: {path}: expected a non-empty list of label names, "
            f"got {json.dumps(names)[:60]}"
        )
    bad = [n for n in names if not isinstance(n, str) or blank(n)]
    if bad:
        raise DataError(f"data.label_names: {path}: label names must be text, got {bad[0]!r}")
    dups = sorted({n for n in names if names.count(n) > 1})
    if dups:
        raise DataError(f"data.label_names: {path}: {dups[0]!r} is listed twice")
    return names


def _label_id(y: Any, names: list[str]) -> int | str:
    """The label id of a row's label value, or a message saying why it is not one."""
    if isinstance(y, str) and re.fullmatch(r"\s*-?[0-9]+\s*", y):
        if y != y.strip():
            return f"label {y!r} has spaces around its digits; write it as {y.strip()}"
        if not re.fullmatch(r"0|-?[1-9][0-9]*", y):
            return f"label {y!r} has a leading zero; write the label id as {int(y)}"
        y = int(y)
    elif isinstance(y, str):
        return names.index(y) if y in names else f"label {y!r} not in {names}"
    if isinstance(y, float):
        return f"label {json.dumps(y)} is not a label id (a whole number, with no decimal point)"
    if isinstance(y, bool) or not isinstance(y, int):
        shown = json.dumps(y) if isinstance(y, (bool, float, type(None))) else repr(y)[:40]
        return f"label {shown} is not a label id (a whole number) or a label name"
    if not 0 <= y < len(names):
        return f"label {y} outside 0..{len(names) - 1}"
    return y


def _label_kind(y: Any) -> str:
    """'id' for a label written as a number (or digits), 'name' for one written as a name."""
    return "name" if isinstance(y, str) and not re.fullmatch(r"\s*-?[0-9]+\s*", y) else "id"


def to_examples(rows: list[dict], spec: DataSpec, names: list[str], source: str) -> Examples:
    """The rows as examples; every row's label is of one kind (all ids or all names) and
    every text is text (``blank``, ``not_text``), else a ``DataError`` naming file and line."""
    texts, labels = [], []
    first: dict[str, str] = {}
    for n, r in enumerate(rows, 1):
        raw = r.get(spec.label_field)
        y, text = _label_id(raw, names), r.get(spec.text_field)
        if isinstance(y, str):
            raise DataError(f"data: {source}, {where(r, n)}: {y}")
        kind = _label_kind(raw)
        first.setdefault(kind, where(r, n))
        if len(first) > 1:
            raise DataError(
                f"data: {source}, {where(r, n)}: label {raw!r} is a label {kind}, but the "
                f"labels before it are label {'names' if kind == 'id' else 'ids'} (first at "
                f"{first['name' if kind == 'id' else 'id']}); write every label one way"
            )
        why = not_text(text) if isinstance(text, str) else None
        if why:
            raise DataError(f"data: {source}, {where(r, n)}: {spec.text_field!r}: {why}")
        if not isinstance(text, str) or blank(text):
            raise DataError(
                f"data: {source}, {where(r, n)}: empty or non-text {spec.text_field!r} (or only "
                "invisible characters: whitespace, zero-width or control characters)"
            )
        texts.append(text)
        labels.append(y)
    return Examples(texts, labels)


def examples_digest(ex: Examples) -> str:
    h = hashlib.sha256()
    for t, y in zip(ex.texts, ex.labels):
        h.update(f"{y}\t{t}\n".encode())
    return h.hexdigest()


def load_concept_data(
    spec: DataSpec,
    shots: int,
    seed: int,
    label_words: list[str] | None = None,
    val_per_class: int = 0,
    prompt: PromptSpec | None = None,
) -> ConceptData:
    """Load the data and split it per class into shots, fit and eval (never overlapping).

    With ``spec.token_classes`` the data is running text scanned for the classes' words
    (``tokens``); ``label_words`` then say which whitespace form of a target counts.
    ``prompt`` may pin the demonstrations or how shots are spread over classes; the data spec
    may pin the fitting and evaluation candidates by row (``selection``). With curation
    (``fit_curate``/``eval_curate``) every candidate up to the budget is kept here; the model
    then keeps the correctly classified ones (``curation``).
    """
    if spec.token_classes is not None:
        from .tokens import token_examples

        names = list(spec.token_classes)
        pool = Examples(*token_examples(spec, spec.source, spec.split, label_words, "data.source"))
    else:
        rows = load_rows(spec.source, spec.config, spec.split, spec)
        names = resolve_label_names(spec, spec.source, rows)
        pool = to_examples(rows, spec, names, spec.source)
    rng = random.Random(seed)
    demos = Examples([], [])
    if prompt is not None and prompt.demonstrations is not None:
        demos = Examples(*demonstrations(prompt.demonstrations, pool.texts, pool.labels, names))
    taken = set(demos.texts)
    by_class: dict[int, list[str]] = {
        c: [t for t in dict.fromkeys(pool.of(c)) if t not in taken] for c in range(len(names))
    }
    for texts in by_class.values():
        rng.shuffle(texts)
    eval_pool: dict[int, list[str]] | None = None
    if spec.eval_source:
        split = spec.eval_split or "test"
        if spec.token_classes is not None:
            from .tokens import token_examples

            field = "data.eval_source"
            ev = Examples(*token_examples(spec, spec.eval_source, split, label_words, field))
        else:
            eval_rows = load_rows(spec.eval_source, spec.config, split, spec, "data.eval_source")
            ev = to_examples(eval_rows, spec, names, spec.eval_source)
        eval_pool = {c: list(dict.fromkeys(ev.of(c))) for c in range(len(names))}
        for c, texts in eval_pool.items():
            rng.shuffle(texts)
            seen = set(texts)
            by_class[c] = [t for t in by_class[c] if t not in seen]
        if spec.eval_indices is not None:
            rows = class_indices(spec.eval_indices, names, "data.eval_indices")
            for c in eval_pool:
                eval_pool[c] = pick(ev.texts, ev.labels, rows[c], c, "data.eval_indices", names)

    shot_ex, fit_ex, eval_ex = Examples([], []), Examples([], []), Examples([], [])
    val_ex = Examples([], [])  # validation for tuning: after the fitting examples, disjoint
    sampling = prompt.shot_sampling if prompt is not None else "first_classes"
    shot_seed = seed if prompt is None or prompt.shot_seed is None else prompt.shot_seed
    n_shots = shot_counts(0 if len(demos) else shots, len(names), sampling, shot_seed)
    n_eval = _take(spec.eval_curate, spec.eval_per_class, eval_pool is None)
    n_fit = _take(spec.fit_curate, spec.fit_per_class, False)
    fit_rows = None
    if spec.fit_indices is not None:
        fit_rows = class_indices(spec.fit_indices, names, "data.fit_indices")
    for c, texts in by_class.items():
        k = n_shots[c]
        _enough("prompt.shots", k, texts, names[c], "shot", "its distinct texts")
        shot_ex.texts += texts[:k]
        shot_ex.labels += [c] * len(texts[:k])
        rest = texts[k:]
        if eval_pool is None:
            evals, rest = rest[:n_eval], rest[n_eval:]
        else:
            evals = eval_pool[c][:n_eval]
        if spec.eval_curate is None:
            left = "those left after the shots" if eval_pool is None else "data.eval_source's"
            _enough("data.eval_per_class", n_eval, evals, names[c], "evaluation", left)
        if fit_rows is not None:
            rest = pick(pool.texts, pool.labels, fit_rows[c], c, "data.fit_indices", names)
        fits = rest[:n_fit]
        if spec.fit_curate is None and len(fits) >= 2:
            left = (
                "data.fit_indices"
                if fit_rows is not None
                else "those left after the shots and evaluation examples"
            )
            _enough("data.fit_per_class", n_fit, fits, names[c], "fitting", left)
        if len(fits) < 2 and spec.fit_curate is None:
            raise DataError(
                f"data.fit_per_class: concept {names[c]!r} has {len(fits)} fitting example(s) in "
                f"{spec.source} after taking shots and evaluation examples; at least 2 are needed"
            )
        fit_ex.texts += fits
        fit_ex.labels += [c] * len(fits)
        vals = rest[len(fits) : len(fits) + val_per_class]
        _enough(
            "tune.val_per_class",
            val_per_class,
            vals,
            names[c],
            "validation",
            "those after the fitting examples",
        )
        val_ex.texts += vals
        val_ex.labels += [c] * len(vals)
        eval_ex.texts += evals
        eval_ex.labels += [c] * len(evals)
    # Interleave the shots so the prompt does not list one class after another.
    order = list(range(len(shot_ex)))
    rng.shuffle(order)
    shot_ex = Examples([shot_ex.texts[i] for i in order], [shot_ex.labels[i] for i in order])
    if len(demos):
        shot_ex = demos
    meta = {"rows": len(pool)}
    return ConceptData(names, shot_ex, fit_ex, eval_ex, examples_digest(pool), meta, val=val_ex)


def _enough(field: str, asked: int | None, got: list[str], name: str, kind: str, left: str) -> None:
    """A count the recipe asks for is met exactly: fewer examples than asked is an error
    naming the setting and the count available, never a silent smaller sample."""
    if asked is not None and len(got) < asked:
        raise DataError(
            f"{field}: {asked} {kind} example(s) of concept {name!r} asked, but {left} "
            f"hold {len(got)}; ask for at most {len(got)} (or add data)"
        )


def _take(curate: Any, per_class: int, shared: bool) -> int | None:
    """How many candidates a class offers: ``per_class``, or with curation its budget (all
    candidates when none is set, except from a source shared with the other split)."""
    if curate is None:
        return per_class
    return curate.budget or (max(per_class, curate.n) if shared else None)


def check_concepts(recipe: Recipe, label_names: list[str]) -> None:
    """Every concept an edit names must be one of the data's labels."""
    problems = []
    for i, edit in enumerate(recipe.edits):
        for c in edit.concepts:
            if c not in label_names:
                problems.append(
                    f"edits.{i}.concepts: {c!r} is not a label; labels are {label_names}"
                )
    if problems:
        raise DataError("\n".join(problems))
