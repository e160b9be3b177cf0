"""Concept data: a Hub data set or a local jsonl/json/csv file, split into shots, fit and eval.

The same ``datasets.load_dataset`` call serves both; local files look for ``labels.json`` beside
them for label names.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass, field
from pathlib import Path

from .errors import DataError
from .recipe import DataSpec

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


def _is_local(source: str) -> bool:
    return Path(source).suffix in LOCAL_FORMATS or Path(source).exists()


def _load_rows(source: str, config: str | None, split: str, spec: DataSpec) -> list[dict]:
    import datasets

    datasets.disable_progress_bars()
    if _is_local(source):
        path = Path(source).expanduser()
        if not path.is_file():
            raise DataError(f"data.source: no such file: {path}")
        fmt = LOCAL_FORMATS.get(path.suffix)
        if fmt is None:
            raise DataError(f"data.source: {path}: unsupported format (use .jsonl, .json, .csv)")
        _check_json_lines(path) if path.suffix == ".jsonl" else None
        ds = datasets.load_dataset(fmt, data_files=str(path), split="train")
    else:
        try:
            ds = datasets.load_dataset(source, config, split=split)
        except Exception as err:
            raise DataError(f"data.source: cannot load data set {source!r}: {err}") from err
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


def _check_json_lines(path: Path) -> None:
    """Name the first malformed line (datasets' own error does not)."""
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                try:
                    json.loads(line)
                except json.JSONDecodeError as err:
                    raise DataError(
                        f"data.source: {path}, line {n}: invalid JSON ({err.msg})"
                    ) from None


def _label_names(spec: DataSpec, source: str, rows: list[dict]) -> list[str]:
    if spec.label_names is not None:
        return list(spec.label_names)
    if rows and "__names__" in rows[0]:
        return list(rows[0]["__names__"])
    side = Path(source).expanduser().parent / "labels.json"
    if _is_local(source) and side.is_file():
        names = json.loads(side.read_text(encoding="utf-8"))
        if isinstance(names, dict):
            names = [names[k] for k in sorted(names, key=int)]
        return [str(n) for n in names]
    values = sorted({r[spec.label_field] for r in rows}, key=str)
    if all(isinstance(v, str) for v in values):
        return values
    raise DataError(
        f"data.label_names: not given and {source} has no label names "
        "(add label_names to the recipe or a labels.json beside the file)"
    )


def _to_examples(rows: list[dict], spec: DataSpec, names: list[str], source: str) -> Examples:
    texts, labels = [], []
    for n, r in enumerate(rows, 1):
        y, text = r[spec.label_field], r[spec.text_field]
        if isinstance(y, str) and not y.lstrip("-").isdigit():
            if y not in names:
                raise DataError(f"data: {source}, row {n}: label {y!r} not in {names}")
            y = names.index(y)
        y = int(y)
        if not 0 <= y < len(names):
            raise DataError(f"data: {source}, row {n}: label {y} outside 0..{len(names) - 1}")
        if not isinstance(text, str) or not text.strip():
            raise DataError(f"data: {source}, row {n}: empty or non-text {spec.text_field!r}")
        texts.append(text)
        labels.append(y)
    return Examples(texts, labels)


def _digest(ex: Examples) -> str:
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
) -> ConceptData:
    """Load the data and split it per class into shots, fit and eval (never overlapping).

    With ``spec.token_classes`` the data is running text scanned for the classes' words
    (``tokens``); ``label_words`` then say which whitespace form of a target counts.
    """
    if spec.token_classes is not None:
        from .tokens import token_examples

        names = list(spec.token_classes)
        pool = Examples(*token_examples(spec, spec.source, spec.split, label_words, "data.source"))
    else:
        rows = _load_rows(spec.source, spec.config, spec.split, spec)
        names = _label_names(spec, spec.source, rows)
        pool = _to_examples(rows, spec, names, spec.source)
    rng = random.Random(seed)
    by_class: dict[int, list[str]] = {c: list(dict.fromkeys(pool.of(c))) for c in range(len(names))}
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
            eval_rows = _load_rows(spec.eval_source, spec.config, split, spec)
            ev = _to_examples(eval_rows, spec, names, spec.eval_source)
        eval_pool = {c: list(dict.fromkeys(ev.of(c))) for c in range(len(names))}
        for c, texts in eval_pool.items():
            rng.shuffle(texts)
            seen = set(texts)
            by_class[c] = [t for t in by_class[c] if t not in seen]

    shot_ex, fit_ex, eval_ex = Examples([], []), Examples([], []), Examples([], [])
    val_ex = Examples([], [])  # validation for tuning: after the fitting examples, disjoint
    n_shots = [
        shots // len(names) + (1 if c < shots % len(names) else 0) for c in range(len(names))
    ]
    for c, texts in by_class.items():
        k = n_shots[c]
        shot_ex.texts += texts[:k]
        shot_ex.labels += [c] * len(texts[:k])
        rest = texts[k:]
        if eval_pool is None:
            evals, rest = rest[: spec.eval_per_class], rest[spec.eval_per_class :]
        else:
            evals = eval_pool[c][: spec.eval_per_class]
        fits = rest[: spec.fit_per_class]
        if len(fits) < 2:
            raise DataError(
                f"data: concept {names[c]!r} has {len(fits)} fitting example(s) after taking "
                f"shots and evaluation examples; at least 2 are needed"
            )
        fit_ex.texts += fits
        fit_ex.labels += [c] * len(fits)
        vals = rest[spec.fit_per_class : spec.fit_per_class + val_per_class]
        val_ex.texts += vals
        val_ex.labels += [c] * len(vals)
        eval_ex.texts += evals
        eval_ex.labels += [c] * len(evals)
    # Interleave the shots so the prompt does not list one class after another.
    order = list(range(len(shot_ex)))
    rng.shuffle(order)
    shot_ex = Examples([shot_ex.texts[i] for i in order], [shot_ex.labels[i] for i in order])
    meta = {"rows": len(pool)}
    return ConceptData(names, shot_ex, fit_ex, eval_ex, _digest(pool), meta, val=val_ex)
