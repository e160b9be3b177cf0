"""The concept probe after the edit (``eval.probe``), on a tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from concept_erasure import LeaceEraser
from conftest import recipe_dict

from nledit import pipeline
from nledit.evaluation.probing import probe_rows
from nledit.fitting.leace import eraser_gate
from nledit.recipe import parse_recipe

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def probed(tiny_models: dict[str, Path], tiny_data: Path, tmp_path_factory):
    d = recipe_dict(tiny_models["llama"], tiny_data, operator="zero")
    d["eval"].update(baselines=["neuron", "leace"], probe=True)
    out = tmp_path_factory.mktemp("probe") / "export"
    text = yaml.safe_dump(d, sort_keys=False)
    return pipeline.run(parse_recipe(d), text, out, False, log=lambda *_: None)


def test_probe_rows_per_method_in_results_and_report(probed) -> None:
    rows = probed.result.probe
    assert [r["method"] for r in rows] == ["range", "neuron", "leace"]
    n_eval = len(probed.fitted.data.eval)
    for r in rows:
        assert r["concept"] == "Sports" and r["n_test"] == n_eval
        assert 0.0 <= r["acc"] <= 1.0 and 0.0 <= r["base_all"] <= 1.0
    doc = json.loads((probed.out / "results.json").read_text())
    assert doc["probe"] == rows
    report = (probed.out / "report.md").read_text()
    assert "## Linear concept probe" in report and "| Sports | leace |" in report


def test_leace_leaves_the_probe_less_than_the_base(probed) -> None:
    leace = next(r for r in probed.result.probe if r["method"] == "leace")
    assert leace["base_acc"] > 0.5  # the base activations carry the concept
    assert leace["acc"] < leace["base_acc"]


def test_an_identity_gate_keeps_the_base_probe_accuracy(probed) -> None:
    fitted = probed.fitted
    d = fitted.cm.layout.hidden_size
    zero = torch.zeros(d, 1)
    identity = eraser_gate(
        LeaceEraser(zero, zero.T, torch.zeros(d)),
        name="id",
        method="identity",
        edit="e",
        concept="Sports",
        layer=fitted.layers[0],
        positions="all",
    )
    data = fitted.data
    (row,) = probe_rows(fitted.cm, data.fit, data.eval, [identity], 4, 0)
    assert (row["acc"], row["cacc"], row["all"]) == (
        row["base_acc"],
        row["base_cacc"],
        row["base_all"],
    )
