"""Base competence, calibrate: auto and the bootstrap intervals, on synthetic predictions."""

from __future__ import annotations

import torch

from nledit.evaluation import bootstrap
from nledit.evaluation.calibration import choose
from nledit.evaluation.competence import CAN, CANNOT, competence
from nledit.evaluation.diagnostics import verdict
from nledit.evaluation.erasure import ConceptRow

NAMES = ["a", "b", "c", "d"]


def _gold(per: int = 25) -> torch.Tensor:
    return torch.arange(len(NAMES)).repeat_interleave(per)


def test_a_base_that_always_answers_one_label_cannot() -> None:
    gold = _gold()
    comp = competence(torch.full_like(gold, 1), gold, NAMES, ["b"])
    assert comp["task"] == CANNOT and not comp["competent"]
    assert comp["targets"]["b"]["verdict"] == CANNOT  # accuracy 1.00 on b says nothing


def test_a_base_at_chance_cannot() -> None:
    gold = _gold()
    pred = torch.randint(len(NAMES), gold.shape, generator=torch.Generator().manual_seed(1))
    comp = competence(pred, gold, NAMES, ["a"])
    lo, _ = comp["balanced_acc_ci"]
    assert lo <= comp["chance"] and comp["task"] == CANNOT and not comp["competent"]


def test_a_base_that_gets_most_right_can_and_a_weak_target_is_named() -> None:
    gold = _gold()
    pred = gold.clone()
    pred[:3] = 1  # a: 22/25 right
    assert competence(pred, gold, NAMES, ["a"])["targets"]["a"]["verdict"] == CAN
    pred[:20] = 1  # a: 5/25 right
    comp = competence(pred, gold, NAMES, ["a"])
    assert comp["task"] != CANNOT and comp["targets"]["a"]["verdict"] == CANNOT


def test_an_incompetent_base_blocks_the_selective_verdict() -> None:
    gold = _gold()
    comp = competence(torch.full_like(gold, 0), gold, NAMES, ["a"])
    row = ConceptRow("a", "range", 0, 0, 1, 1, 1, 1, 1, 1, 25, 75)
    row.diag = {"fire_target": 0.9, "fire_other": 0.01}
    text, ok = verdict(row.to_dict(), comp)
    assert not ok and text.startswith("not assessable")


def test_calibrate_auto_drops_calibration_where_it_hurts() -> None:
    gold = _gold()
    probs = torch.full((len(gold), 4), 0.05)
    probs[torch.arange(len(gold)), gold] = 0.3  # raw argmax always right
    content_free = torch.tensor([0.01, 0.3, 0.3, 0.3])  # divides "a" into every argmax
    out = choose(probs, content_free, gold)
    assert out["raw_balanced_acc"] == 1.0 and out["calibrated_balanced_acc"] < 1.0
    assert not out["used"]
    probs_b = probs.clone()
    probs_b[:, 0] += 0.5  # the raw model says "a" for everything; calibration removes the bias
    assert choose(probs_b, torch.tensor([0.6, 0.05, 0.05, 0.05]), gold)["used"]


def _row_case(seed: int, p_base: float, p_edit: float, per: int = 40):
    gen = torch.Generator().manual_seed(seed)
    gold = torch.arange(3).repeat_interleave(per)
    b_hit = torch.rand(len(gold), generator=gen) < p_base
    e_hit = torch.where(gold == 0, torch.rand(len(gold), generator=gen) < p_edit, b_hit)
    b_pred = torch.where(b_hit, gold, (gold + 1) % 3)
    e_pred = torch.where(e_hit, gold, (gold + 1) % 3)
    probs = torch.full((len(gold), 3), 1 / 3)
    return gold, (probs, b_pred), (probs, e_pred)


def test_bootstrap_is_seeded_and_reproducible() -> None:
    gold, base, edit = _row_case(0, 0.9, 0.2)
    one = bootstrap.delta_intervals(base, edit, gold, 0, *bootstrap.stratified_indices(gold))
    two = bootstrap.delta_intervals(base, edit, gold, 0, *bootstrap.stratified_indices(gold))
    other = bootstrap.stratified_indices(gold, seed=5)
    assert one == two
    assert bootstrap.delta_intervals(base, edit, gold, 0, *other) != one


def test_the_interval_of_a_known_effect_covers_the_truth_about_95_percent() -> None:
    truth, hits, draws = 0.2 - 0.9, 0, 200
    for seed in range(draws):
        gold, base, edit = _row_case(seed, 0.9, 0.2)
        idx, order = bootstrap.stratified_indices(gold, 400, seed)
        lo, hi = bootstrap.delta_intervals(base, edit, gold, 0, idx, order)["d_acc"]
        hits += lo <= truth <= hi
    assert 0.88 <= hits / draws <= 0.99
    lo, hi = bootstrap.delta_intervals(base, edit, gold, 0, idx, order)["d_cacc_macro"]  # untouched
    assert lo == hi == 0.0
