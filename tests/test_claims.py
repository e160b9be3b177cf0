"""Verdicts decided on intervals and gated on the base model's competence (``claims``,
``diagnostics.verdict``), on synthetic rows."""

from __future__ import annotations

import math

import torch

from nledit.evaluation import claims
from nledit.evaluation.competence import CANNOT, competence
from nledit.evaluation.diagnostics import MAX_CACC, verdict

NAMES = ["a", "b", "c", "d"]


def test_a_bound_holds_or_fails_only_over_the_whole_interval() -> None:
    assert claims.within(-0.05, 0.08, 0.1) == claims.HOLDS
    assert claims.within(-0.3, -0.15, 0.1) == claims.FAILS
    assert claims.within(-0.2, 0.02, 0.1) == claims.UNDECIDED  # on the line
    assert claims.at_most(1.0, 2.0, 3.0) == claims.HOLDS
    assert claims.at_most(4.0, 5.0, 3.0) == claims.FAILS
    assert claims.at_most(2.0, 4.0, 3.0) == claims.UNDECIDED
    assert claims.at_least(0.6, 0.9, 0.5) == claims.HOLDS
    assert claims.at_least(0.1, 0.4, 0.5) == claims.FAILS
    assert claims.below(-0.4, -0.1) == claims.HOLDS
    assert claims.below(-0.4, 0.0) == claims.UNDECIDED  # reaching 0 shows no drop
    assert claims.below(0.0, 0.2) == claims.FAILS
    assert claims.within(math.nan, math.nan, 0.1) == claims.UNDECIDED  # not measured: not met


def test_claims_combine_fail_first_then_undecided() -> None:
    assert claims.combine([claims.HOLDS, claims.HOLDS]) == claims.HOLDS
    assert claims.combine([claims.HOLDS, claims.UNDECIDED]) == claims.UNDECIDED
    assert claims.combine([claims.UNDECIDED, claims.FAILS]) == claims.FAILS


def _row(d_acc: tuple[float, float], d_cacc: tuple[float, float], **extra) -> dict:
    """An erasure row with point deltas at the interval's midpoints."""
    row = {
        "concept": "a",
        "method": "range",
        "d_acc": sum(d_acc) / 2,
        "d_conf": -0.01,
        "d_cacc": sum(d_cacc) / 2,
        "d_cconf": 0.0,
        "base_cconf": 0.5,
        "base_cmass": 0.8,
        "cmass": 0.8,
        "fire_target": 0.9,
        "fire_other": 0.05,
        "ci": {"d_acc": list(d_acc), "d_conf": [-0.05, 0.03], "d_cacc": list(d_cacc)},
    }
    row["ci"]["d_cconf"] = [-0.01, 0.01]
    row.update(extra)
    return row


def test_selective_needs_a_shown_drop_and_collateral_inside_its_bound() -> None:
    text, ok = verdict(_row((-0.8, -0.5), (-0.04, 0.03)))
    assert ok and text.startswith("selective")


def test_collateral_on_the_line_is_undecided_not_selective() -> None:
    text, ok = verdict(_row((-0.8, -0.5), (-MAX_CACC - 0.1, 0.0)))
    assert not ok and text.startswith("undecided")


def test_collateral_beyond_its_bound_over_the_interval_is_not_selective() -> None:
    text, ok = verdict(_row((-0.8, -0.5), (-0.5, -0.2)))
    assert not ok and text.startswith("not selective")


def test_a_drop_the_interval_does_not_show_is_no_effect() -> None:
    text, ok = verdict(_row((-0.3, 0.05), (-0.02, 0.02)))
    assert not ok and text.startswith("no effect shown")


def test_a_base_that_cannot_do_the_concept_gets_no_verdict() -> None:
    gold = torch.arange(len(NAMES)).repeat_interleave(25)
    comp = competence(torch.full_like(gold, 1), gold, NAMES, ["a"])
    text, ok = verdict(_row((-0.8, -0.5), (-0.04, 0.03)), comp)
    assert not ok and text.startswith("not assessable")
    text, ok = verdict(_row((-0.8, -0.5), (-0.04, 0.03), assessable=False))
    assert not ok and text.startswith("not assessable")


def test_a_target_class_at_chance_cannot_carry_a_claim() -> None:
    gold = torch.arange(2).repeat_interleave(20)  # binary: chance 0.5
    pred = gold.clone()
    pred[12:20] = 1  # class x: 12/20 right, above the floor, its interval reaches 0.5
    comp = competence(pred, gold, ["x", "y"], ["x"])
    lo, _ = comp["per_class"]["x"]["ci"]
    assert lo <= 0.5 and comp["targets"]["x"]["verdict"] == CANNOT
    assert claims.base_gate({"concept": "x"}, comp) is not None


def _concept_row():
    from nledit.evaluation.rows import ConceptRow

    row = ConceptRow("a", "range", 0.2, 0.1, 0.9, 0.5, 0.9, 0.6, 0.9, 0.5, 20, 60)
    row.ci = {"d_acc": [-0.9, -0.5], "d_cacc_macro": [-0.05, 0.05]}
    return row


def test_results_csv_and_model_index_carry_the_intervals_and_the_base_gate() -> None:
    from nledit.checkpoint.card_index import eval_results
    from nledit.evaluation.results import csv_text
    from nledit.evaluation.rows import EvalResult

    row = _concept_row()
    text = csv_text(EvalResult([row]))
    head, first = text.splitlines()[:2]
    cols = dict(zip(head.split(","), first.split(","), strict=True))
    assert float(cols["d_acc_lo"]) == -0.9 and float(cols["d_cacc_hi"]) == 0.05
    row.assessable = False
    names = [r.metric_name for r in eval_results({"erasure": [row.to_dict()]}, "range")]
    target = next(n for n in names if n.startswith("ΔAcc"))
    assert "-0.900" in target and "no erasure claim" in target


def test_sweep_tables_show_intervals_and_flag_a_base_that_cannot() -> None:
    from nledit.sweep.files import markdown, summary
    from nledit.sweep.result import SweepResult

    rows = []
    for method in ("range", "neuron"):
        r = {"tau": 2.5, "method": method, "concept": "a", "k": 10, "mean_width": 1.0}
        for k in ("acc", "conf", "cacc", "cconf"):
            r |= {k: 0.5, f"base_{k}": 0.9, f"d_{k}": -0.4, f"d_{k}_lo": -0.6, f"d_{k}_hi": -0.2}
        r |= {"label_mass": 0.8, "assessable": False}
        rows.append(r)
    gold = torch.arange(2).repeat_interleave(10)
    comp = competence(torch.zeros_like(gold), gold, ["a", "b"], ["a"])
    settings = {
        "concepts": ["a"],
        "layer": 3,
        "top_p": 0.3,
        "tau": None,
        "model": "m",
        "saliency": "max",
        "operator": {"name": "zero"},
        "n_eval": 20,
        "curated": False,
        "calibrated": False,
        "n_fit": 20,
        "conditions": 2,
        "competence": comp,
    }
    result = SweepResult("tau", [2.5], rows, settings, {"acc": 0.9})
    md, term = markdown(result), summary(result)
    assert "-0.400 [-0.600, -0.200]" in md and "[-0.600, -0.200]" in term
    assert "no claim" in md and "no claim" in term and "Base competence" in term


def test_the_tuners_pick_says_when_its_drop_is_not_shown() -> None:
    from types import SimpleNamespace

    from nledit.tune.pick import pick_trial

    shown = {"k": 5, "d_acc": -0.6, "d_acc_hi": -0.3, "d_cacc": 0.0, "d_ppl": 0.1}
    open_ = {**shown, "d_acc": -0.3, "d_acc_hi": 0.05}
    ref = {"d_cacc": -0.5, "d_ppl": 10.0}
    assert "not shown" not in pick_trial([SimpleNamespace(number=0, user_attrs=shown)], ref).rule
    pick = pick_trial([SimpleNamespace(number=1, user_attrs=open_)], ref)
    assert "not shown (undecided)" in pick.rule
