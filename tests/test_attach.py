"""``Edit.from_pretrained``: an export's edit on a base model already in memory; ``nledit.push``."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from conftest import recipe_dict
from transformers import AutoModelForCausalLM

import nledit
from nledit import pipeline
from nledit.errors import NleditError
from nledit.recipe import parse_recipe
from nledit.runtime.gate import RANGES_FILE

TEXTS = ["match goal coach season league", "shares profit market bank"]


@pytest.fixture(scope="module")
def exported(
    tiny_models: dict[str, Path], tiny_data: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Any]:
    out = tmp_path_factory.mktemp("attach") / "out"
    d = recipe_dict(tiny_models["llama"], tiny_data)
    result = pipeline.run(parse_recipe(d), yaml.safe_dump(d), out, False, log=lambda *_: None)
    return out, result.fitted


def test_an_exports_edit_applies_to_a_base_in_memory(exported: Any) -> None:
    out, fitted = exported
    edit = nledit.Edit.from_pretrained(out)
    assert edit.names == [g.spec.name for g in fitted.edit.gates]
    assert edit.task == "causal-lm" and edit.label_names == fitted.data.label_names
    base = AutoModelForCausalLM.from_pretrained(fitted.recipe.model.id, dtype=torch.float32).eval()
    ids = fitted.cm.tokenizer(TEXTS, return_tensors="pt", padding=True)
    inputs = {k: ids[k] for k in ("input_ids", "attention_mask")}
    with torch.no_grad():
        plain = base(**inputs).logits
        with edit.applied(base):
            edited = base(**inputs).logits
        after = base(**inputs).logits
        with nledit.Edit.from_pretrained(out).applied(fitted.model):
            expected = fitted.model(**inputs).logits
    assert torch.equal(edited, expected)
    assert not torch.equal(edited, plain)
    assert torch.equal(after, plain)  # the gates are gone again


def test_an_altered_export_is_refused(exported: Any, tmp_path: Path) -> None:
    out, _ = exported
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    with (copy / RANGES_FILE).open("ab") as f:
        f.write(b"x")
    with pytest.raises(NleditError, match="fails verification"):
        nledit.Edit.from_pretrained(copy)


def test_push_from_python_dry_run_lists_the_files(exported: Any) -> None:
    out, _ = exported
    result = nledit.push(out, "someone/edited", dry_run=True)
    assert result.dry_run
    names = {f.path for f in result.files}
    assert {"config.json", "modeling_nledit.py", RANGES_FILE} <= names
