"""Property-based tests of the input rules: recipes, data files and API data mutated at random.

Whatever the mutation (a field set to a random value or removed, an unknown key, a random
field of the schema set, the YAML text itself damaged; a data line replaced by random text,
bytes or JSON, a field's value changed, the file cut short), the reader ends in a valid result
or an ``NleditError`` naming a field or a file: no other exception, nothing outside the output
folder touched. The fast suite runs a small seeded budget; ``bench/fuzz_trust.py`` a larger
one (``NLEDIT_FUZZ_EXAMPLES``, ``NLEDIT_FUZZ_SEED``).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import shutil
import tempfile
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import recipe_dict
from hypothesis import HealthCheck, event, given, seed, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from nledit.cli import build_parser
from nledit.commands import runner
from nledit.data.api_inputs import examples
from nledit.data.dataset import load_concept_data
from nledit.errors import NleditError
from nledit.recipe import DataSpec, Recipe

EXAMPLES = int(os.environ.get("NLEDIT_FUZZ_EXAMPLES", "20"))
SEED = int(os.environ.get("NLEDIT_FUZZ_SEED", "0"))
FUZZ = settings(
    max_examples=EXAMPLES,
    derandomize="NLEDIT_FUZZ_SEED" not in os.environ,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
# Texts a user (or an attacker) may write: YAML 1.1 numbers, invisible characters, paths.
TRICKY = [
    "010", "1:30", "0x1A", "0o17", "1e3", ".inf", "-.nan", "~", "null", "yes", "off", "", " ",
    "\u200b", "\ufeff", "\u202e", "a\x00b", "auto", "last", "-1", "../x", "/etc/passwd", "~nouser",
    "{text}", "cuda", "sqlite:///x.db", "  Sports", "Sports",
]  # fmt: skip
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(10**6), 10**6)
    | st.sampled_from([0, 1, 2, -1, 10**12, 10**40])
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from(TRICKY)
    | st.text(max_size=6)
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=2)
    ),
    max_leaves=4,
)


def _schema_paths(model: type[BaseModel], prefix: tuple = ()) -> list[tuple]:
    """Every field path of the recipe schema (lists of models indexed at 0)."""
    out = []
    for name, info in model.model_fields.items():
        path = (*prefix, name)
        out.append(path)
        stack, seen = [info.annotation], set()
        while stack:
            t = stack.pop()
            if isinstance(t, type) and issubclass(t, BaseModel) and t not in seen:
                seen.add(t)
                is_list = typing.get_origin(info.annotation) is list
                out += _schema_paths(t, (*path, 0) if is_list else path)
            stack += list(typing.get_args(t))
    return out


SCHEMA_PATHS = _schema_paths(Recipe)


def _paths(doc: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix] if prefix else []
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += _paths(v, (*prefix, i))
    return out


def _set(doc: Any, path: tuple, value: Any, delete: bool = False) -> None:
    for part in path[:-1]:
        if isinstance(doc, dict):
            doc = doc.setdefault(part, {})
        elif isinstance(doc, list) and isinstance(part, int) and part < len(doc):
            doc = doc[part]
        else:
            return
        if not isinstance(doc, dict | list):
            return
    last = path[-1]
    if isinstance(doc, dict):
        if delete:
            doc.pop(last, None)
        else:
            doc[last] = value
    elif isinstance(doc, list) and isinstance(last, int) and last < len(doc):
        if delete:
            del doc[last]
        else:
            doc[last] = value


# Settings a user tunes, with values around the valid ones: many mutations stay valid.
TWEAKS = {
    ("edits", 0, "tau"): st.sampled_from([0.5, 2.5, 100, 0, -1, 1e9]),
    ("edits", 0, "top_p"): st.sampled_from([0.05, 0.5, 1, 0, 1.5]),
    ("edits", 0, "layer"): st.sampled_from([0, 1, -1, -3, 2, 3, 99, "last", "first"]),
    ("edits", 0, "operator"): st.sampled_from(["zero", "dampen", "adaptive", "mean", "x"]),
    ("edits", 0, "quorum"): st.sampled_from([None, "auto", 0.5, 0, 2]),
    ("data", "fit_per_class"): st.integers(0, 40),
    ("data", "eval_per_class"): st.integers(0, 30),
    ("data", "max_length"): st.sampled_from([4, 8, 16, 32, 600, 5000]),
    ("prompt", "shots"): st.integers(0, 150),
    ("prompt", "instruction"): st.sampled_from(["Topics.", "", "\u200b", "word " * 600]),
    ("prompt", "label_words"): st.sampled_from(
        [
            [" World", " Sports", " Business", " Tech"],
            ["  World", " Sports", " Business", " Tech"],
            [" World", " World", " Business", " Tech"],
            ["\u200b", " Sports", " Business", " Tech"],
        ]
    ),
    ("seed",): st.integers(-5, 5),
    ("batch_size",): st.sampled_from([1, 3, "auto", 0]),
}


@st.composite
def mutated_recipe(draw: Callable, base: dict[str, Any]) -> tuple[str, list[str]]:
    """The YAML text of ``base`` after one to three random mutations, and what they were."""
    doc = json.loads(json.dumps(base))
    done = []
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(
            st.sampled_from(["tweak", "tweak", "set", "schema", "delete", "unknown", "text"])
        )
        if kind == "tweak":
            path = draw(st.sampled_from(sorted(TWEAKS, key=str)))
            _set(doc, path, draw(TWEAKS[path]))
        elif kind in ("set", "delete"):
            path = draw(st.sampled_from(_paths(doc) or [("seed",)]))
            _set(doc, path, draw(VALUES), delete=kind == "delete")
        elif kind == "schema":
            path = draw(st.sampled_from(SCHEMA_PATHS))
            _set(doc, path, draw(VALUES))
        elif kind == "unknown":
            path = draw(st.sampled_from([p for p in _paths(doc) if p] or [("seed",)]))
            _set(doc, (*path[:-1], draw(st.text(min_size=1, max_size=6))), draw(VALUES))
        done.append(f"{kind}")
    text = yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)
    if "text" in done:  # damage the YAML itself: a random insertion at a random place
        at = draw(st.integers(0, len(text)))
        piece = draw(
            st.sampled_from(
                [
                    ":",
                    "- ",
                    "\t",
                    "&a",
                    "*a",
                    "{",
                    "'",
                    "\n  x: 1\n",
                    "!!python/object:os.system",
                    "seed: 1\n",
                ]
            )
        )
        text = text[:at] + piece + text[at:]
    event("recipe mutations: " + ",".join(sorted(set(done))))
    return text, done


SECTIONS = ("model", "data", "prompt", "edits", "eval", "output", "tune", "sweep", "train_head")
FIELD = re.compile(
    r"\b(" + "|".join((*SECTIONS, "seed", "batch_size", "threads", "recipe")) + r")\b[.:\s]"
)


def _snapshot(root: Path, skip: Path) -> dict[str, str]:
    """Path -> sha256 of every file under ``root`` outside ``skip``."""
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and skip not in p.parents:
            out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def _run(argv: list[str]) -> str | None:
    """Run a command as the CLI does: None when it succeeds, the message of the NleditError
    it raises; any other exception fails the test."""
    args = build_parser().parse_args(argv)
    shown = io.StringIO()
    try:
        with contextlib.redirect_stdout(shown):
            rc = runner(args.command)(args)
    except NleditError as err:
        return str(err)
    return None if not rc else shown.getvalue()  # `check` prints the problems it found


@pytest.fixture(scope="module")
def workspace(tiny_models: dict[str, Path], tiny_data: Path) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="fuzz-inputs-"))
    model = root / "model"
    shutil.copytree(tiny_models["llama"], model)
    data = root / "data"
    data.mkdir()
    shutil.copy(tiny_data, data / tiny_data.name)
    shutil.copy(tiny_data.parent / "labels.json", data / "labels.json")
    base = recipe_dict(model, data / tiny_data.name)
    base["eval"] = {"enabled": False}
    base["output"] = {"dir": str(root / "out")}
    yield {"root": root, "base": base, "data": data / tiny_data.name}
    shutil.rmtree(root, ignore_errors=True)


def _check_recipe(workspace: dict[str, Any], text: str, command: str) -> str:
    root: Path = workspace["root"]
    work = Path(tempfile.mkdtemp(prefix="case-", dir=root))
    recipe = work / "recipe.yaml"
    recipe.write_text(text, encoding="utf-8")
    before = _snapshot(root, work)
    argv = [command, str(recipe)] + (["--out", str(work / "fit")] if command == "fit" else [])
    message = _run(argv)
    assert _snapshot(root, work) == before, "a file outside the output folder changed"
    if message is None:
        event(f"{command}: valid")
        return "valid"
    event(f"{command}: refused")
    assert FIELD.search(message) or str(recipe) in message, message  # names a field or file
    shutil.rmtree(work)
    return message


@seed(SEED)
@FUZZ
@given(data=st.data())
def test_a_mutated_recipe_is_valid_or_refused_naming_a_field(workspace, data) -> None:
    text, _ = data.draw(mutated_recipe(workspace["base"]))
    _check_recipe(workspace, text, "check")


@seed(SEED)
@settings(FUZZ, max_examples=max(3, EXAMPLES // 5))
@given(data=st.data())
def test_a_mutated_recipe_fits_or_is_refused_touching_nothing_else(workspace, data) -> None:
    text, _ = data.draw(mutated_recipe(workspace["base"]))
    _check_recipe(workspace, text, "fit")


# ---- data files -------------------------------------------------------------------------------

JSON_ROW_VALUES = st.one_of(
    VALUES, st.sampled_from(["\u200b", "\ufeff\u200c", " \u2060", "\u0301"])
)


@st.composite
def mutated_data(draw: Callable, rows: list[dict[str, Any]], kind: str) -> bytes:
    """A data file (``jsonl`` or ``csv``) of ``rows`` after one to three random mutations."""
    rows = [dict(r) for r in rows]
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(rows) - 1))
        what = draw(st.sampled_from(["value", "drop", "key"]))
        key = draw(st.sampled_from(["text", "label"]))
        if what == "value":
            rows[i][key] = draw(JSON_ROW_VALUES)
        elif what == "drop":
            rows[i].pop(key, None)
        else:
            rows[i][draw(st.text(max_size=4))] = draw(SCALARS)
        event(f"data: {what} {key}")
    if kind == "jsonl":
        lines = [json.dumps(r, ensure_ascii=draw(st.booleans())) for r in rows]
        raw = ("\n".join(lines) + "\n").encode()
    else:
        lines = ["text,label"] + [
            ",".join(json.dumps(str(r.get(k, ""))) for k in ("text", "label")) for r in rows
        ]
        raw = ("\n".join(lines) + "\n").encode()
    if draw(st.booleans()):  # damage the bytes: insert, cut or prepend
        at = draw(st.integers(0, len(raw)))
        how = draw(st.sampled_from(["insert", "cut", "bom"]))
        if how == "insert":
            raw = (
                raw[:at]
                + draw(
                    st.binary(min_size=1, max_size=4) | st.sampled_from([b'"', b"\n", b",", b"{"])
                )
                + raw[at:]
            )
        elif how == "cut":
            raw = raw[:at]
        else:
            raw = b"\xef\xbb\xbf" + raw
        event(f"bytes: {how}")
    return raw


@seed(SEED)
@settings(FUZZ, max_examples=EXAMPLES * 5)
@given(data=st.data(), kind=st.sampled_from(["jsonl", "csv"]))
def test_a_mutated_data_file_loads_validated_or_is_refused_naming_it(workspace, data, kind) -> None:
    rows = [json.loads(line) for line in workspace["data"].read_text().splitlines()][::4]
    raw = data.draw(mutated_data(rows, kind))
    folder = Path(tempfile.mkdtemp(prefix="data-", dir=workspace["root"]))
    path = folder / f"rows.{kind}"
    path.write_bytes(raw)
    names = json.loads((workspace["data"].parent / "labels.json").read_text())
    spec = DataSpec(source=str(path), label_names=names, fit_per_class=2, eval_per_class=1)
    try:
        loaded = load_concept_data(spec, 0, 0)
    except NleditError as err:
        event("data file: refused")
        assert str(path) in str(err) or re.search(r"\bdata\.\w+", str(err)), str(err)
    else:
        event("data file: loaded")
        assert all(t.strip("\u200b\ufeff\u200c\u2060 ") for t in loaded.fit.texts)
        assert all(0 <= y < len(names) for y in loaded.fit.labels + loaded.eval.labels)
    shutil.rmtree(folder)


@seed(SEED)
@settings(FUZZ, max_examples=EXAMPLES * 5)
@given(
    pairs=st.lists(
        st.tuples(
            st.text("ab xy", min_size=1, max_size=5) | JSON_ROW_VALUES,
            st.sampled_from(["a", "b", 0, 1]),
        )
        | st.tuples(JSON_ROW_VALUES, JSON_ROW_VALUES)
        | VALUES,
        max_size=6,
    ),
    names=st.none() | VALUES,
)
def test_api_data_is_validated_or_refused_naming_the_argument(pairs, names) -> None:
    try:
        ex, got = examples(pairs, names)
    except NleditError as err:
        event("api data: refused")
        assert re.match(r"(data|label_names)\b", str(err)), str(err)
    else:
        event("api data: accepted")
        assert len(ex) == len(pairs) and all(isinstance(t, str) for t in ex.texts)
        assert all(0 <= y < len(got) for y in ex.labels) and len(set(got)) == len(got)
