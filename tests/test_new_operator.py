"""Adding an operator is one class: a toy operator with a new parameter, defined in a module
outside nledit, is validated by the recipe, fitted, evaluated, exported and read back.

Nothing in nledit is edited for it; the class registers itself when its module is imported.
"""

from __future__ import annotations

import importlib.util
import json
import random
import sys
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

import nledit
from nledit import recipe
from nledit.runtime import gate, operators
from nledit.runtime.gate import RANGES_FILE, NleditLoadError

TOY = '''
import torch
from nledit.runtime.gate import Operator, Param


class Scale(Operator):
    """Scale the selected neurons by a gain in [0, 1]."""

    name, tunable, doc = "toy_scale", True, "g·x"
    params = {"gain": Param(0.25, ge=0, le=1, search=(0.0, 1.0), doc="scale factor")}

    @staticmethod
    def phi(gate, x: torch.Tensor) -> torch.Tensor:
        return x * gate.spec.param("gain")
'''
EDIT = {"concepts": ["Sports"], "layer": "last", "top_p": 0.25, "tau": 2.5}


@pytest.fixture
def toy(tmp_path: Path):
    """The toy operator's module, imported from a temporary file; unregistered afterwards."""
    path = tmp_path / "toy_operator.py"
    path.write_text(TOY)
    spec = importlib.util.spec_from_file_location("toy_operator", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["toy_operator"] = module
    spec.loader.exec_module(module)
    try:
        yield module
    finally:
        gate.OPERATOR_CLASSES.pop("toy_scale", None)
        sys.modules.pop("toy_operator", None)


def _rows(path: Path) -> list[tuple[str, str]]:
    names = json.loads((path.parent / "labels.json").read_text())
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    pairs = [(r["text"], names[int(r["label"])]) for r in rows]
    random.Random(0).shuffle(pairs)
    return pairs


def _recipe() -> dict:
    """A recipe mapping to validate edits in (not run)."""
    data = {"source": "rows.jsonl", "label_names": ["World", "Sports"]}
    return {"model": {"id": "some/model"}, "data": data, "prompt": {"template": "{text}"}}


def _logits(model, tokenizer) -> torch.Tensor:
    with torch.no_grad():
        return model(**tokenizer("the match goal coach", return_tensors="pt")).logits


def test_the_registry_and_the_recipe_know_it(toy) -> None:
    assert "toy_scale" in operators.names(in_recipe=True, tunable=True)
    assert operators.get("toy_scale").tuned == ("gain",)
    ok = recipe.EditSpec.model_validate({**EDIT, "operator": {"name": "toy_scale", "gain": 0.5}})
    assert ok.operator.param("gain") == 0.5
    assert ok.operator.model_dump()["gain"] == 0.5  # the recipe copy in an export keeps it
    default = recipe.EditSpec.model_validate({**EDIT, "operator": "toy_scale"})
    assert default.operator.param("gain") == 0.25  # the class default
    with pytest.raises(
        ValueError, match=r"operator.gain\n  Input should be less than or equal to 1"
    ):
        recipe.EditSpec.model_validate({**EDIT, "operator": {"name": "toy_scale", "gain": 2}})
    # its section takes exactly its own fields, and another operator's section refuses them
    assert set(recipe.section_model("toy_scale").model_fields) == {"name", "gain"}
    with pytest.raises(recipe.RecipeError) as err:
        recipe.parse_recipe(
            {**_recipe(), "edits": [{**EDIT, "operator": {"name": "zero", "gain": 0.5}}]}
        )
    assert err.value.problems == [
        "edits.0.operator.gain: not used by the zero operator (its section takes no "
        "parameters); gain belongs to toy_scale"
    ]
    with pytest.raises(recipe.RecipeError, match=r"edits.0.operator.alpha: not used by the toy"):
        op = {"name": "toy_scale", "alpha": 0.5}
        recipe.parse_recipe({**_recipe(), "edits": [{**EDIT, "operator": op}]})
    space = recipe.SearchSpace.model_validate({"operators": ["toy_scale"]})
    assert space.interval("gain") == [0.0, 1.0]


def test_fit_export_and_read_back(toy, tiny_models, tiny_data: Path, tmp_path: Path) -> None:
    path = str(tiny_models["llama"])
    model, tok = AutoModelForCausalLM.from_pretrained(path), AutoTokenizer.from_pretrained(path)
    rows = _rows(tiny_data)[:60]
    op = {"name": "toy_scale", "gain": 0.5}
    edit = nledit.fit(model, tok, rows, [{**EDIT, "operator": op}])
    zero = nledit.fit(model, tok, rows, [{**EDIT, "operator": "zero"}])
    (g,) = edit.gates
    assert g.spec.operator == "toy_scale" and g.spec.params["gain"] == 0.5
    assert torch.equal(g.index, zero.gates[0].index)  # same neurons and ranges, other phi
    x = torch.randn(2, g.spec.k)
    torch.testing.assert_close(g.phi(x), 0.5 * x)
    base = _logits(model, tok)
    with edit.applied(model):
        edited = _logits(model, tok)
    assert not torch.equal(edited, base)

    out = nledit.export(model, tok, edit, tmp_path / "export", model_id=path)
    config = json.loads((out / "config.json").read_text())
    assert config["nledit"]["edits"][0]["params"]["gain"] == 0.5
    again = nledit.Edit.from_pretrained(out)  # nledit reads it back (integrity checked)
    assert again.gates[0].spec == g.spec
    with again.applied(model):
        torch.testing.assert_close(_logits(model, tok), edited)
    assert torch.equal(_logits(model, tok), base)

    # transformers alone runs the exported run-time (gate.py), which does not hold the class:
    # the checkpoint refuses to load, naming the operator, rather than running something else
    gate.OPERATOR_CLASSES.pop("toy_scale")
    with pytest.raises(NleditLoadError, match="toy_scale"):
        gate.load_gates(str(out / RANGES_FILE), config["nledit"])
