"""Selectivity diagnostics: firing rates by hand, label mass, verdicts, warnings, outputs."""

from __future__ import annotations

import math

import pytest
import torch
import yaml
from conftest import recipe_dict

from nledit.evaluation import diagnostics
from nledit.evaluation.diagnostics import _inside, label_stats, verdict, warnings_for
from nledit.evaluation.erasure import ConceptRow, EvalResult
from nledit.evaluation.results import report_md, summary
from nledit.evaluation.suite import erasure_table
from nledit.fitting.recipe_fit import fit
from nledit.pipeline import eval_inputs
from nledit.recipe import parse_recipe
from nledit.runtime.gate import RangeGate


def _gate(index: list[int], lo: list[float], hi: list[float]) -> RangeGate:
    k = len(index)
    spec = {"name": "g", "layer": 0, "operator": "zero", "mode": "range", "k": k}
    t = {
        "index": torch.tensor(index),
        "lo": torch.tensor(lo),
        "hi": torch.tensor(hi),
        "mu": torch.zeros(k),
        "sigma": torch.ones(k),
        "value": torch.zeros(k),
    }
    return RangeGate(spec, t)


def test_inside_counts_neurons_in_range() -> None:
    gate = _gate([0, 2], [0.0, 0.0], [1.0, 1.0])
    h = torch.tensor([[0.5, 9.0, 0.5], [0.5, 0.0, 3.0], [2.0, 0.5, -1.0]])
    assert _inside(h, gate).tolist() == [1.0, 0.5, 0.0]


def test_label_stats_mass_and_raw_accuracy() -> None:
    gold = torch.tensor([0, 0, 1, 1])
    base = torch.tensor([[0.6, 0.2], [0.5, 0.3], [0.1, 0.7], [0.2, 0.6]])
    edited = base / 10  # every label collapses, the argmax is unchanged
    s = label_stats(base, edited, gold, concept=0)
    assert s["base_cmass"] == pytest.approx(0.8)
    assert s["cmass"] == pytest.approx(0.08)
    assert s["base_mass"] == pytest.approx(0.8)
    assert s["raw_acc"] == s["base_raw_acc"] == 1.0
    assert s["raw_cacc"] == 1.0


KEPT = {
    "d_acc": -0.6,
    "d_conf": -0.3,
    "base_cmass": 0.4,
    "cmass": 0.38,
    "d_cacc": 0.02,
    "d_cconf": -0.01,
    "base_cconf": 0.3,
}


@pytest.mark.parametrize(
    ("diag", "selective", "words"),
    [
        ({**KEPT, "cmass": 0.01, "fire_target": 0.9, "fire_other": 0.1}, False, "collapses"),
        ({**KEPT, "fire_target": 0.98, "fire_other": 0.87}, False, "fires on 87%"),
        ({**KEPT, "fire_target": 0.9, "fire_other": 0.1}, True, "10% of other"),
        ({**KEPT, "d_cacc": -0.2, "fire_target": 0.9, "fire_other": 0.1}, False, "-0.200"),
        ({**KEPT, "d_cconf": -0.15, "fire_target": 0.9, "fire_other": 0.1}, False, "-50%"),
        (KEPT, True, "not measured"),
    ],
)
def test_verdict(diag: dict, selective: bool, words: str) -> None:
    text, ok = verdict(diag)
    assert ok is selective
    assert words in text


def test_warnings_only_for_the_edit() -> None:
    bad = {"base_cmass": 0.4, "cmass": 0.01}
    rows = [
        ConceptRow("Sports", "range", *([0.5] * 8), 4, 12, "e", "zero", dict(bad)),
        ConceptRow("Sports", "neuron", *([0.5] * 8), 4, 12, "e", "zero", dict(bad)),
    ]
    out = warnings_for(rows)
    assert len(out) == 1 and "e:Sports" in out[0] and "collapses" in out[0]


def test_erasure_table_carries_diagnostics(tiny_models, tiny_data) -> None:
    d = recipe_dict(tiny_models["llama"], tiny_data)
    text = yaml.safe_dump(d)
    fitted = fit(parse_recipe(d, "recipe"), text)
    result = erasure_table(fitted.edit, fitted.cm, eval_inputs(fitted), fitted.recipe.eval)
    rng = next(r for r in result.rows if r.method == "range")
    # the gate's own fitting statistics: it fires on most of the target's read tokens
    for key in ("fire_target", "fire_other", "fire_target_all", "fire_other_all"):
        assert 0.0 <= rng.diag[key] <= 1.0
    assert rng.diag["fire_target"] > 0.5
    assert "verdict" in rng.to_dict() and "cmass" in rng.to_dict()
    neuron = next(r for r in result.rows if r.method == "neuron")
    assert neuron.diag["fire_other"] == 1.0 and not neuron.diag["selective"]
    assert "raw Acc" in summary(result)
    assert "## Selectivity" in report_md(result, "t")


def test_report_without_diagnostics_has_no_selectivity_section() -> None:
    row = ConceptRow("Sports", "range", *([0.5] * 8), 4, 12)
    md = report_md(EvalResult([row]), "t")
    assert "Selectivity" not in md
    assert diagnostics.markdown_rows([row.to_dict()]) == ""
    assert math.isnan(label_stats(torch.ones(1, 2), torch.ones(1, 2), torch.tensor([1]), 0)["mass"])


def test_paper_default_is_a_comparison_row_never_exported(tiny_models, tiny_data) -> None:
    from nledit.pipeline import checkpoint_gates

    d = recipe_dict(tiny_models["llama"], tiny_data, layer=1, saliency="selective", top_p=0.1)
    d["eval"]["baselines"] = ["neuron", "paper"]
    fitted = fit(parse_recipe(d, "recipe"), yaml.safe_dump(d))
    paper = [g for g in fitted.edit.baseline if g.spec.method == "paper"]
    last = fitted.layout.n_layers - 1
    assert len(paper) == 1 and paper[0].spec.layer == last
    assert paper[0].spec.saliency == "max" and paper[0].spec.top_p == 0.3
    assert paper[0].spec.mode == "range"
    assert checkpoint_gates(fitted) == fitted.edit.gates and fitted.edit.gates[0].spec.layer == 1
    result = erasure_table(fitted.edit, fitted.cm, eval_inputs(fitted), fitted.recipe.eval)
    row = next(r for r in result.rows if r.method == "paper")
    assert "fire_other" in row.diag and "verdict" in row.diag
    assert {r.method for r in result.rows} == {"range", "neuron", "paper"}


def test_perplexity_scores_a_read_token_gate_as_generated(tiny_models, tiny_data) -> None:
    import copy

    from nledit.evaluation.erasure import Condition
    from nledit.evaluation.perplexity import perplexity

    d = recipe_dict(tiny_models["llama"], tiny_data, layer=1, positions="last", top_p=0.5)
    fitted = fit(parse_recipe(d, "recipe"), yaml.safe_dump(d))
    last = fitted.edit.gates[0]
    every = copy.deepcopy(last)
    every.spec.positions = "all"
    text = " ".join(["the match of the market in software news says the coach"] * 40)
    conds = [Condition("base", None, []), Condition("range", "Sports", [last])]
    args = (fitted.model, fitted.layout, fitted.cm.tokenizer, text)
    got = perplexity(*args, conds, 16, 4, 2)
    want = perplexity(*args, [conds[0], Condition("range", "Sports", [every])], 16, 4, 2)
    assert got["range:Sports"] == pytest.approx(want["range:Sports"])
    assert got["range:Sports"] != pytest.approx(got["base"])  # the gate does act
    assert last.spec.positions == "last"  # restored


def test_base_pass_firing_equals_a_separate_pass(tiny_models, tiny_data, monkeypatch) -> None:
    from nledit.evaluation.diagnostics import firing_rates

    d = recipe_dict(tiny_models["llama"], tiny_data, layer=1, saliency="selective")
    d["eval"]["baselines"] = ["neuron", "paper"]
    fitted = fit(parse_recipe(d, "recipe"), yaml.safe_dump(d))
    with monkeypatch.context() as m:  # no pass of its own: the base pass feeds the counter
        m.setattr(diagnostics, "capture", None)
        table = erasure_table(fitted.edit, fitted.cm, eval_inputs(fitted), fitted.recipe.eval)
        rows = {r.method: r.diag for r in table.rows}
    ev = fitted.data.eval
    gates = fitted.edit.gates + fitted.edit.baseline
    alone = firing_rates(fitted.cm, gates, ev.texts, ev.labels, 4)
    for method, gate in (("range", fitted.edit.gates[0]), ("paper", fitted.edit.baseline[-1])):
        for key, value in alone[gate.spec.name].items():
            assert rows[method][key] == pytest.approx(value, abs=1e-6), (method, key)
