"""Shared by the hostile-input corpus: a recipe written as YAML text, and the refusal check.

The recipe is built line by line so a case can put any YAML (``yes``, ``.inf``, a key twice) in
any section, exactly as a user would type it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from nledit.cli import main

BASE: dict[str, list[str]] = {
    "model": ["id: {model}"],
    "data": ["source: {data}", "fit_per_class: 12", "eval_per_class: 6", "max_length: 32"],
    "prompt": [
        "template: 'Article : {text}'",
        "answer_prefix: ' Topic :'",
        "shots: 2",
        "label_words: [' World', ' Sports', ' Business', ' Tech']",
    ],
    "edit": ["concepts: [Sports]", "layer: last", "top_p: 0.25", "tau: 2.5"],
    "operator": ["name: zero"],
    "eval": ["perplexity_windows: 0"],
    "output": [],
    "tune": [],
    "sweep": [],
    "train_head": [],
    "top": ["batch_size: 4"],
}


def _key(line: str) -> str:
    return line.split(":", 1)[0].strip()


def recipe_text(model: Path, data: Path, extra: dict[str, list[str]], replace: bool = True) -> str:
    """The tiny recipe with ``extra`` lines per section (a line replaces the same key unless
    ``replace`` is false, which gives the key twice)."""
    sections: dict[str, list[str]] = {}
    for name, lines in BASE.items():
        added = extra.get(name, [])
        keys = {_key(x) for x in added} if replace else set()
        sections[name] = [x for x in lines if _key(x) not in keys] + added
    values = {"{model}": json.dumps(str(model)), "{data}": json.dumps(str(data))}

    def block(lines: list[str], indent: str) -> list[str]:
        out = []
        for line in lines:
            for k, v in values.items():
                line = line.replace(k, v)
            out.append(indent + line)
        return out

    text = []
    for name in ("model", "data", "prompt"):
        text += [f"{name}:", *block(sections[name], "  ")]
    edit = block(sections["edit"], "    ")
    text += ["edits:", "  - " + edit[0].strip(), *edit[1:], "    operator:"]
    text += block(sections["operator"], "      ")
    for name in ("eval", "output", "tune", "sweep", "train_head"):
        if sections[name]:
            text += [f"{name}:", *block(sections[name], "  ")]
    text += block(sections["top"], "")
    return "\n".join(text) + "\n"


def write_recipe(
    folder: Path, model: Path, data: Path, extra: dict[str, list[str]], replace: bool = True
) -> Path:
    path = folder / "recipe.yaml"
    path.write_text(recipe_text(model, data, extra, replace), encoding="utf-8")
    return path


def refused(
    argv: list[str], capsys: pytest.CaptureFixture[str], out: Path | None, *fragments: str
) -> str:
    """``argv`` exits 2 naming every fragment, without a traceback, and writes nothing at
    ``out``; returns what was printed."""
    code = main(argv)
    stdout, stderr = capsys.readouterr()
    shown = stdout + stderr
    assert "Traceback" not in shown, shown
    assert code == 2, shown
    assert any(line.startswith("error: ") for line in re.split(r"[\r\n]", stderr)), shown
    if argv[0] == "check":  # never "valid" and then a problem
        assert " is valid" not in stdout, stdout
    for fragment in fragments:
        assert fragment in shown, f"{fragment!r} not in:\n{shown}"
    if out is not None:
        assert not out.exists(), f"{out} was written"
        if out.parent.is_dir():
            assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")]
    return shown
