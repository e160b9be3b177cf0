"""Erasure metrics against hand-computed values; fast path equals the plain path."""

from __future__ import annotations

import math

import pytest
import torch
import yaml
from conftest import DECODERS, FAMILIES, recipe_dict
from scipy.stats import trim_mean

from nledit.evaluation.erasure import (
    ConceptRow,
    EvalResult,
    condition_metrics,
    conditions_for,
    label_probs,
)
from nledit.evaluation.results import aggregate, method_label, method_table
from nledit.fitting.recipe_fit import fit
from nledit.recipe import parse_recipe


def test_metrics_by_hand() -> None:
    # 3 concepts; gold 0,0,1,1,2,2; probabilities of each label per example.
    probs = torch.tensor(
        [
            [0.6, 0.3, 0.1],
            [0.2, 0.5, 0.3],
            [0.1, 0.8, 0.1],
            [0.4, 0.4, 0.2],
            [0.1, 0.1, 0.8],
            [0.5, 0.2, 0.3],
        ]
    )
    gold = torch.tensor([0, 0, 1, 1, 2, 2])
    pred = torch.tensor([0, 1, 1, 0, 2, 0])
    acc, conf, cacc, cconf = condition_metrics(probs, pred, gold, concept=0, n=3)
    assert acc == pytest.approx(0.5)  # example 0 right, example 1 wrong
    assert conf == pytest.approx((0.6 + 0.2) / 2)
    # other concepts: concept 1 acc 0.5, conf (0.8+0.4)/2; concept 2 acc 0.5, conf (0.8+0.3)/2
    assert cacc == pytest.approx(0.5)
    assert cconf == pytest.approx(((0.8 + 0.4) / 2 + (0.8 + 0.3) / 2) / 2)


def test_metrics_absent_concept_is_nan() -> None:
    probs = torch.full((2, 3), 1 / 3)
    acc, conf, _, _ = condition_metrics(
        probs, torch.tensor([1, 2]), torch.tensor([1, 2]), concept=0, n=3
    )
    assert math.isnan(acc) and math.isnan(conf)


def test_trimmed_mean_matches_scipy() -> None:
    values = [0.1, -0.4, 0.3, 0.05, -0.2, 0.9, -0.7, 0.0, 0.25, -0.1, 0.6]
    rows = [
        {
            "method": "range",
            "acc": v,
            "conf": v,
            "cacc": v,
            "cconf": v,
            "d_acc": v,
            "d_conf": v,
            "d_cacc": v,
            "d_cconf": v,
        }
        for v in values
    ]
    agg = aggregate(rows)["range"]
    assert agg["trim_d_acc"] == pytest.approx(trim_mean(values, 0.1))
    assert agg["mean_d_acc"] == pytest.approx(sum(values) / len(values))


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("layer", [0, "last"])
def test_fast_path_equals_plain_path(tiny_models, tiny_data, family: str, layer) -> None:
    d = recipe_dict(tiny_models[family], tiny_data, layer=layer, positions="all")
    d["eval"]["baselines"] = ["neuron", "steer", "ablate"]
    fitted = fit(parse_recipe(d), yaml.safe_dump(d))
    conds = conditions_for(fitted.edit)
    texts = fitted.data.eval.texts
    fast = label_probs(fitted.cm, texts, conds, 4, fast=True)
    plain = label_probs(fitted.cm, texts, conds, 4, fast=False)
    assert fast.keys() == plain.keys()
    for key in fast:
        assert (fast[key] - plain[key]).abs().max().item() <= 1e-5, key
    # the interventions do change the outputs, so the equality above is not vacuous
    assert any((fast[k] - fast["base"]).abs().max().item() > 1e-6 for k in fast if k != "base")


@pytest.mark.parametrize("family", DECODERS)
def test_perplexity_fast_equals_plain(tiny_models, tiny_data, tmp_path, family: str) -> None:
    from nledit.evaluation.perplexity import perplexity

    text = " ".join(["the match of the season in the league after the coach says"] * 40)
    d = recipe_dict(tiny_models[family], tiny_data, layer=1)
    fitted = fit(parse_recipe(d), yaml.safe_dump(d))
    conds = conditions_for(fitted.edit)
    args = (fitted.model, fitted.layout, fitted.cm.tokenizer, text, conds, 32, 3, 2)
    fast = perplexity(*args, fast=True)
    plain = perplexity(*args, fast=False)
    for key in fast:
        assert fast[key] == pytest.approx(plain[key], rel=1e-5)
    assert fast["base"] > 1.0


def _row(edit: str, method: str, concept: str, d_cconf: float) -> ConceptRow:
    """A row whose only change against the base is ``d_cconf``."""
    return ConceptRow(concept, method, *[0.5] * 3, 0.5 + d_cconf, *[0.5] * 4, 1, 1, edit)


def test_method_labels_and_table_by_hand() -> None:
    rows = [
        _row("zero", "range", "A", -0.1),
        _row("zero", "range", "B", -0.3),
        _row("mean", "range", "A", -0.2),
        _row("mean", "range", "B", -0.4),
        _row("zero", "steer", "A", 0.1),  # a whole-vector baseline, made once
        _row("zero", "steer", "B", 0.3),
    ]
    dicts = [r.to_dict() for r in rows]
    assert [method_label(d, dicts) for d in dicts] == [
        "zero:range",
        "zero:range",
        "mean:range",
        "mean:range",
        "steer",
        "steer",
    ]
    ppl = {"base": 10.0, "range:A@zero": 12.0, "range:B@zero": 16.0, "steer:A@zero": 10.5}
    result = EvalResult(rows, ppl, 8, False, False)
    lines = method_table(result).splitlines()
    assert lines[0].split(" | ")[-2:] == ["ΔPPL", "PPL |"]
    cells = {line.split(" | ")[0].lstrip("| "): line.split(" | ") for line in lines[2:]}
    # trimmed mean of two values is their mean; ΔPPL over the conditions measured
    assert cells["zero:range"][4] == "-0.200" and cells["zero:range"][5] == "+4.0"
    assert cells["zero:range"][6] == "12.0–16.0 |"
    assert cells["mean:range"][4] == "-0.300" and cells["mean:range"][5] == "n/a"
    assert cells["steer"][4] == "+0.200" and cells["steer"][5] == "+0.5"
    assert cells["steer"][6] == "10.5 |"  # one measured condition: its value, not a span


def test_whole_vector_baselines_once_per_concept_and_layer(tiny_models, tiny_data) -> None:
    d = recipe_dict(tiny_models["llama"], tiny_data, layer=1)
    edit = d["edits"][0]
    d["edits"] = [edit, {**edit, "name": "damp", "operator": "dampen"}]
    d["eval"]["baselines"] = ["neuron", "steer", "ablate"]
    fitted = fit(parse_recipe(d), yaml.safe_dump(d))
    methods = [g.spec.method for g in fitted.edit.baseline]
    n_concepts = len(edit["concepts"])
    assert methods.count("neuron") == 2 * n_concepts  # per edit: the operator differs
    assert methods.count("steer") == methods.count("ablate") == n_concepts
