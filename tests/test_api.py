"""The Python API on a model in memory: fit, apply, stack, save/load, evaluate, export."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch
import yaml
from conftest import recipe_dict
from transformers import AutoModelForCausalLM, AutoTokenizer

import nledit
from nledit.checkpoint.integrity import inspect_export
from nledit.cli import main
from nledit.errors import EditError
from nledit.runtime.gate import RANGES_FILE, RangeGate

EDIT = {"concepts": ["Sports"], "layer": "last", "top_p": 0.25, "tau": 2.5}


def _rows(path: Path) -> list[tuple[str, str]]:
    names = json.loads((path.parent / "labels.json").read_text())
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    pairs = [(r["text"], names[int(r["label"])]) for r in rows]
    random.Random(0).shuffle(pairs)  # the file lists one class after another
    return pairs


@pytest.fixture
def llama(tiny_models):
    path = str(tiny_models["llama"])
    return AutoModelForCausalLM.from_pretrained(path), AutoTokenizer.from_pretrained(path)


def _logits(model, tokenizer, text: str = "the match goal coach") -> torch.Tensor:
    with torch.no_grad():
        return model(**tokenizer(text, return_tensors="pt")).logits


def test_fit_apply_stack_and_remove_exactly(llama, tiny_data: Path) -> None:
    model, tok = llama
    rows = _rows(tiny_data)
    sports = nledit.fit(model, tok, rows[:60], [EDIT])
    tech = nledit.fit(model, tok, rows[:60], [{**EDIT, "concepts": ["Tech"], "name": "t"}])
    base = _logits(model, tok)
    with sports.applied(model):
        one = _logits(model, tok)
        with tech.applied(model):
            two = _logits(model, tok)
        assert torch.equal(_logits(model, tok), one)  # tech's gates gone, sports' stay
        with sports.disabled(model):
            assert torch.equal(_logits(model, tok), base)
    assert not torch.equal(one, base) and not torch.equal(two, one)
    assert torch.equal(_logits(model, tok), base)
    assert not any(isinstance(m, RangeGate) for m in model.modules())


def test_save_and_load(llama, tiny_data: Path, tmp_path: Path) -> None:
    model, tok = llama
    edit = nledit.fit(model, tok, _rows(tiny_data)[:60], [EDIT])
    edit.save(tmp_path / "e")
    assert {p.name for p in (tmp_path / "e").iterdir()} == {"edit.json", "edit.safetensors"}
    again = nledit.Edit.load(tmp_path / "e")
    assert again.names == edit.names and again.label_names == edit.label_names
    with edit.applied(model):
        want = _logits(model, tok)
    with again.applied(model):
        assert torch.equal(_logits(model, tok), want)
    (tmp_path / "e" / "edit.safetensors").write_bytes(b"not tensors")
    with pytest.raises(nledit.NleditError, match="cannot read range tensors"):
        nledit.Edit.load(tmp_path / "e")
    meta = json.loads((tmp_path / "e" / "edit.json").read_text())
    del meta["block"]
    (tmp_path / "e" / "edit.json").write_text(json.dumps(meta))
    with pytest.raises(nledit.NleditError, match="block must be an object"):
        nledit.Edit.load(tmp_path / "e")


def test_evaluate_gives_plain_data(llama, tiny_data: Path) -> None:
    model, tok = llama
    rows = _rows(tiny_data)
    edit = nledit.fit(model, tok, rows[:80], [EDIT])
    text = " ".join(t for t, _ in rows) * 3
    result = nledit.evaluate(
        model,
        tok,
        edit,
        rows[80:],
        perplexity_text=text,
        perplexity_windows=2,
        perplexity_window=16,
    )
    json.dumps(result)  # plain data
    assert {"task", "balanced_acc_ci", "competent"} <= set(result["competence"])
    assert all({"d_acc", "d_cacc"} <= set(r["ci"]) and "assessable" in r for r in result["erasure"])
    assert set(result["perplexity_ci"]) == set(result["perplexity"]) - {"base"}
    methods = {(r["concept"], r["method"]) for r in result["erasure"]}
    assert methods == {("Sports", "range"), ("Sports", "neuron")}
    assert set(result["perplexity"]) == {"base", "range:Sports", "neuron:Sports"}
    assert isinstance(result, dict) and json.loads(json.dumps(result)) == dict(result)
    text = repr(result)  # the terminal table, not a wall of nested dicts
    assert "Concept erasure" in text and "Sports" in text and "{" not in text
    md = result.to_markdown()
    assert md.startswith("| Concept |") and "| Condition | PPL |" in md
    frame = result.to_pandas()
    assert list(frame["method"]) == [r["method"] for r in result["erasure"]]
    assert frame["d_acc"].tolist() == [r["d_acc"] for r in result["erasure"]]
    with edit.applied(model), pytest.raises(nledit.NleditError, match="outside applied"):
        nledit.evaluate(model, tok, edit, rows[80:])


def test_bad_input_names_the_field(llama, tiny_data: Path) -> None:
    model, tok = llama
    rows = _rows(tiny_data)
    with pytest.raises(nledit.NleditError, match=r"edits\.0\.top_p"):
        nledit.fit(model, tok, rows, [{**EDIT, "top_p": 2}])
    with pytest.raises(nledit.NleditError, match=r"edits\.0\.concepts: 'Golf'"):
        nledit.fit(model, tok, rows, [{**EDIT, "concepts": ["Golf"]}])
    with pytest.raises(nledit.NleditError, match=r"data\[1\]: expected a \(text, label\) pair"):
        nledit.fit(model, tok, [("a b", "Sports"), "oops"], [EDIT])


def test_api_export_equals_cli_run(tiny_models, tiny_data: Path, tmp_path: Path) -> None:
    """Same settings, same range file: the API and `nledit run` share one path."""
    d = recipe_dict(tiny_models["llama"], tiny_data)
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump(d, sort_keys=False))
    assert main(["run", str(recipe), "--out", str(tmp_path / "cli")]) == 0

    path = str(tiny_models["llama"])
    model, tok = AutoModelForCausalLM.from_pretrained(path), AutoTokenizer.from_pretrained(path)
    edit = nledit.fit(model, tok, d["data"], d["edits"], d["prompt"], batch_size=d["batch_size"])
    nledit.export(model, tok, edit, tmp_path / "api")
    cli_bytes = (tmp_path / "cli" / RANGES_FILE).read_bytes()
    assert (tmp_path / "api" / RANGES_FILE).read_bytes() == cli_bytes
    assert inspect_export(tmp_path / "api").failures() == []  # verify, eval and push accept it

    edited = AutoModelForCausalLM.from_pretrained(tmp_path / "api", trust_remote_code=True)
    with edit.applied(model):
        want = _logits(model, tok)
    torch.testing.assert_close(_logits(edited, tok), want)

    # the recipe path's result is the same Edit: the library exports it to the same bytes
    from nledit.fitting.recipe_fit import fit as fit_recipe
    from nledit.recipe import load_recipe

    fitted = fit_recipe(*load_recipe(recipe))
    assert isinstance(fitted.edit, nledit.Edit)
    nledit.export(
        fitted.model, fitted.cm.tokenizer, fitted.edit, tmp_path / "recipe", model_id=path
    )
    assert (tmp_path / "recipe" / RANGES_FILE).read_bytes() == cli_bytes


def test_load_recipe_and_run(tiny_models, tiny_data: Path, tmp_path: Path) -> None:
    d = recipe_dict(tiny_models["llama"], tiny_data)
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(d, sort_keys=False))
    recipe = nledit.load_recipe(path, {"edits.0.tau": 1.5})
    assert recipe.edits[0].tau == 1.5
    output = nledit.run(recipe, out=tmp_path / "out", log=lambda *_: None)
    assert (tmp_path / "out" / RANGES_FILE).is_file()
    assert output.result is not None and output.result.rows


def test_a_datasets_dataset_fits_like_a_list(llama, tiny_data: Path) -> None:
    import datasets

    model, tok = llama
    rows = _rows(tiny_data)[:60]
    ds = datasets.Dataset.from_dict({"text": [t for t, _ in rows], "label": [y for _, y in rows]})
    from_list = nledit.fit(model, tok, rows, [EDIT], baselines=())
    from_ds = nledit.fit(model, tok, ds, [EDIT], baselines=())
    assert from_ds.label_names == from_list.label_names == sorted({y for _, y in rows})
    assert all(torch.equal(a.index, b.index) for a, b in zip(from_ds.gates, from_list.gates))
    assert from_ds.baseline == []


def test_api_builds_every_baseline_the_recipe_path_builds(tiny_models, tiny_data: Path) -> None:
    """One gate-building loop: ``nledit.fit`` gets the command line's baselines, gate for gate."""
    from nledit.fitting.recipe_fit import fit as fit_recipe
    from nledit.recipe import Recipe
    from nledit.runtime.gate import gate_tensors

    every = ["neuron", "steer", "ablate", "leace", "paper"]
    d = recipe_dict(tiny_models["llama"], tiny_data)
    d["eval"] = {**d.get("eval", {}), "baselines": every}
    fitted = fit_recipe(Recipe.model_validate(d), yaml.safe_dump(d))
    assert {g.spec.method for g in fitted.edit.baseline} == set(every)

    path = str(tiny_models["llama"])
    model, tok = AutoModelForCausalLM.from_pretrained(path), AutoTokenizer.from_pretrained(path)
    edit = nledit.fit(
        model, tok, d["data"], d["edits"], d["prompt"], batch_size=d["batch_size"], baselines=every
    )
    assert [g.spec for g in edit.baseline] == [g.spec for g in fitted.edit.baseline]
    mine, theirs = gate_tensors(edit.baseline), gate_tensors(fitted.edit.baseline)
    assert mine.keys() == theirs.keys()
    assert all(torch.equal(mine[k], theirs[k]) for k in mine)


def test_an_unknown_baseline_is_refused(llama, tiny_data: Path) -> None:
    model, tok = llama
    with pytest.raises(EditError, match=r"baselines.1: Input should be .*steer"):
        nledit.fit(model, tok, _rows(tiny_data)[:40], [EDIT], baselines=("neuron", "stear"))


def test_baseline_edits_limit_the_neuron_baseline_as_the_recipe_does(
    tiny_models, tiny_data: Path
) -> None:
    """``baseline_edits`` is the recipe's ``eval.baseline_edits``: the same neuron gates."""
    from nledit.fitting.recipe_fit import fit as fit_recipe
    from nledit.recipe import Recipe

    d = recipe_dict(tiny_models["llama"], tiny_data)
    d["edits"] = [{**EDIT, "name": "sports"}, {**EDIT, "concepts": ["Tech"], "name": "tech"}]
    d["eval"] = {**d.get("eval", {}), "baseline_edits": ["tech"]}
    fitted = fit_recipe(Recipe.model_validate(d), yaml.safe_dump(d))
    path = str(tiny_models["llama"])
    model, tok = AutoModelForCausalLM.from_pretrained(path), AutoTokenizer.from_pretrained(path)
    args = (model, tok, d["data"], d["edits"], d["prompt"])
    edit = nledit.fit(*args, batch_size=d["batch_size"], baseline_edits=["tech"])
    assert {g.spec.edit for g in edit.baseline} == {"tech"}
    assert [g.spec for g in edit.baseline] == [g.spec for g in fitted.edit.baseline]
    with pytest.raises(EditError, match=r"baseline_edits: 'sprots' is not an edit name"):
        nledit.fit(*args, baseline_edits=["sprots"])
