"""Selectivity-aware saliency and range shapes (quantile, trim_overlap) on known statistics."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import norm

from nledit.data.dataset import load_concept_data
from nledit.fitting.collect import ConceptStats
from nledit.fitting.reservoir import Reservoir
from nledit.fitting.selectivity import auroc_separation, normal_mass, selective_scores
from nledit.fitting.shapes import neuron_ranges, quantile_bounds, trim_overlap
from nledit.recipe import EditSpec, RecipeError, parse_recipe


def stats_from(mean: list[list[float]], std: list[list[float]], n: int = 100) -> ConceptStats:
    """ConceptStats (layer 0) whose per-concept means and population stds are exactly given."""
    mu = torch.tensor(mean, dtype=torch.float64)
    sd = torch.tensor(std, dtype=torch.float64)
    stats = ConceptStats(mu.shape[0], mu.shape[1])
    stats._init(0)
    stats.count[0] = torch.full((mu.shape[0],), float(n), dtype=torch.float64)
    stats.total[0] = mu * n
    stats.sumsq[0] = n * (sd**2 + mu**2)
    stats.sumabs[0] = mu.abs() * n
    return stats


# ---- selectivity -----------------------------------------------------------------------------


def test_normal_mass_matches_scipy() -> None:
    mu, sd = torch.tensor([0.0, 1.0, -2.0]), torch.tensor([1.0, 0.5, 3.0])
    lo, hi = torch.tensor([-1.0, 0.0, -3.0]), torch.tensor([2.0, 1.5, 10.0])
    got = normal_mass(mu, sd, lo, hi).numpy()
    want = norm.cdf(hi.numpy(), mu.numpy(), sd.numpy()) - norm.cdf(lo.numpy(), mu.numpy(), sd)
    np.testing.assert_allclose(got, want, atol=1e-12)
    # a point mass (sigma 0) counts fully inside or fully outside
    point = normal_mass(
        torch.tensor([1.0, 5.0]), torch.zeros(2), torch.zeros(2), torch.full((2,), 2.0)
    )
    assert point.tolist() == [1.0, 0.0]


def test_selectivity_disjoint_scores_near_one_identical_near_zero() -> None:
    # neuron 0: concepts far apart; neuron 1: the same distribution for every concept
    stats = stats_from([[0.0, 3.0], [20.0, 3.0], [-20.0, 3.0]], [[1.0, 2.0]] * 3)
    mass = selective_scores(stats, 0, 0, measure="mass", tau=2.5)
    inside = norm.cdf(2.5) - norm.cdf(-2.5)  # the target's own share inside mu ± 2.5 sigma
    assert mass[0].item() == pytest.approx(inside, abs=1e-6) and mass[0] > 0.98
    assert abs(mass[1].item()) < 1e-9
    auroc = selective_scores(stats, 0, 0, measure="auroc")
    assert auroc[0].item() == pytest.approx(1.0, abs=1e-9)
    assert abs(auroc[1].item()) < 1e-9


def test_selectivity_partial_overlap_is_the_formula() -> None:
    stats = stats_from([[0.0], [1.0]], [[1.0], [2.0]])
    lo, hi = torch.tensor([-1.0]), torch.tensor([1.5])
    got = selective_scores(stats, 0, 0, lo, hi, "mass").item()
    want = (norm.cdf(1.5) - norm.cdf(-1.0)) - (norm.cdf(1.5, 1, 2) - norm.cdf(-1.0, 1, 2))
    assert got == pytest.approx(want, abs=1e-12)
    a = auroc_separation(stats.mean(0), stats.std(0), 0, [1]).item()
    assert a == pytest.approx(abs(2 * norm.cdf(-1 / np.sqrt(5)) - 1), abs=1e-12)


def test_magnitude_weight_multiplies_by_relative_mean_abs() -> None:
    stats = stats_from([[1.0, 10.0], [30.0, 40.0]], [[1.0, 1.0]] * 2)
    plain = selective_scores(stats, 0, 0)
    weighted = selective_scores(stats, 0, 0, magnitude_weight=1.0)
    rel = torch.tensor([0.1, 1.0], dtype=torch.float64)
    torch.testing.assert_close(weighted, plain * rel)


def test_selective_prefers_a_quiet_exclusive_neuron_to_a_loud_shared_one() -> None:
    # neuron 0: loud, every concept alike; neuron 1: quieter, the target apart
    stats = stats_from([[50.0, 5.0], [50.0, -5.0]], [[2.0, 1.0]] * 2)
    from nledit.fitting import saliency

    assert saliency.scores("max", stats, 0, 0, 0).argmax().item() == 0
    assert saliency.scores("selective", stats, 0, 0, 0).argmax().item() == 1


# ---- range shapes ----------------------------------------------------------------------------


def test_quantile_ranges_follow_skewed_data() -> None:
    rng = np.random.default_rng(0)
    x = rng.exponential(scale=[1.0, 3.0, 0.2], size=(300, 3)).astype(np.float32)
    res = Reservoir(512, seed=0)
    res.add(0, torch.from_numpy(x), torch.zeros(300, dtype=torch.long), list(range(300)))
    y = -x[:50]  # a second concept, never used for the target's range
    res.add(0, torch.from_numpy(y), torch.ones(50, dtype=torch.long), list(range(50)))
    stats = ConceptStats(2, 3)
    stats.update(0, torch.from_numpy(x), torch.zeros(300, dtype=torch.long))
    stats.update(0, torch.from_numpy(y), torch.ones(50, dtype=torch.long))
    edit = EditSpec(concepts=["a"], range="quantile", quantiles=[0.05, 0.9])
    lo, hi = neuron_ranges(edit, stats, 0, 0, res)
    want = np.quantile(x.astype(np.float64), [0.05, 0.9], axis=0)
    np.testing.assert_allclose(lo.numpy(), want[0], rtol=0, atol=1e-12)
    np.testing.assert_allclose(hi.numpy(), want[1], rtol=0, atol=1e-12)
    med = np.median(x, axis=0)
    assert (hi.numpy() - med > med - lo.numpy()).all()  # asymmetric, like the data
    # the Gaussian range of the same data reaches below zero, where no activation lies
    lo_sigma, _ = neuron_ranges(EditSpec(concepts=["a"]), stats, 0, 0)
    assert (lo_sigma.numpy() < 0).all() and (lo.numpy() > 0).all()


def test_quantile_bounds_need_samples() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        quantile_bounds(np.zeros((1, 4), dtype=np.float32), 0.1, 0.9)
    with pytest.raises(ValueError, match="reservoir"):
        neuron_ranges(
            EditSpec(concepts=["a"], range="quantile"), stats_from([[0.0]], [[1.0]]), 0, 0
        )


def test_trim_overlap_cuts_where_the_other_concept_takes_over() -> None:
    mean = torch.tensor([[0.0, 0.0, 0.0], [2.0, 50.0, 0.0]], dtype=torch.float64)
    std = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]], dtype=torch.float64)
    lo, hi = torch.full((3,), -2.5), torch.full((3,), 2.5)
    new_lo, new_hi = trim_overlap(lo, hi, mean, std, 0, [1])
    # neuron 0: equal densities at x = 1, the target dominates below
    assert new_lo[0].item() == pytest.approx(-2.5)
    assert new_hi[0].item() == pytest.approx(1.0, abs=1e-3)
    # neuron 1: the other concept is far away: nothing to trim
    assert (new_lo[1].item(), new_hi[1].item()) == pytest.approx((-2.5, 2.5))
    # neuron 2: identical distributions: the target dominates nowhere, the range collapses
    assert new_lo[2].item() == new_hi[2].item()


def test_trim_overlap_keeps_the_side_with_more_target_mass() -> None:
    # a narrow other concept sits just right of the target's centre: two runs remain
    mean = torch.tensor([[0.0], [0.5]], dtype=torch.float64)
    std = torch.tensor([[2.0], [0.3]], dtype=torch.float64)
    lo, hi = torch.tensor([-5.0]), torch.tensor([5.0])
    new_lo, new_hi = trim_overlap(lo, hi, mean, std, 0, [1])
    from scipy.optimize import brentq

    left = brentq(lambda x: norm.pdf(x, 0, 2) - norm.pdf(x, 0.5, 0.3), -2.0, 0.5)
    assert new_lo.item() == pytest.approx(-5.0)  # the larger (left) part is kept
    assert new_hi.item() == pytest.approx(left, abs=1e-3)


def test_sigma_shape_is_the_paper_range() -> None:
    stats = stats_from([[1.0, -2.0], [0.0, 0.0]], [[0.5, 2.0], [1.0, 1.0]])
    lo, hi = neuron_ranges(EditSpec(concepts=["a"], tau=1.5), stats, 0, 0)
    assert lo.tolist() == pytest.approx([0.25, -5.0]) and hi.tolist() == pytest.approx([1.75, 1.0])


# ---- recipes and data ------------------------------------------------------------------------


def _recipe(**edit) -> dict:
    return {
        "model": {"id": "x"},
        "data": {"source": "d.jsonl"},
        "edits": [{"concepts": ["A"], **edit}],
    }


@pytest.mark.parametrize(
    ("edit", "fragment"),
    [
        (
            {"range": "quantile", "quantiles": [0.9, 0.1]},
            "edits.0.quantiles: must be in increasing",
        ),
        ({"range": "quantile", "quantiles": [0.0, 0.9]}, "edits.0.quantiles: each quantile must"),
        ({"range": "quantile", "quantiles": [0.1, 1.0]}, "strictly between 0 and 1"),
        ({"range": "quantile", "quantiles": [0.1]}, "edits.0.quantiles: must be two numbers"),
        ({"quantiles": [0.1, 0.9]}, "edits.0.quantiles: only used with range: quantile"),
        ({"selectivity": "auroc"}, "edits.0.selectivity: only used with saliency: selective"),
        ({"magnitude_weight": 1.0}, "edits.0.magnitude_weight: only used with saliency"),
        ({"range": "gaussian"}, "edits.0.range: Input should be 'sigma' or 'quantile'"),
    ],
)
def test_bad_range_and_selectivity_options(edit: dict, fragment: str) -> None:
    with pytest.raises(RecipeError) as info:
        parse_recipe(_recipe(**edit))
    assert fragment in str(info.value)


def test_good_options_parse() -> None:
    r = parse_recipe(
        _recipe(
            saliency="selective",
            selectivity="auroc",
            magnitude_weight=0.5,
            range="quantile",
            quantiles=[0.02, 0.97],
            trim_overlap=True,
        )
    )
    e = r.edits[0]
    assert (e.saliency, e.range, e.quantiles, e.trim_overlap) == (
        "selective",
        "quantile",
        [0.02, 0.97],
        True,
    )


def test_tune_section_problems_have_paths() -> None:
    d = _recipe()
    d["tune"] = {
        "edit": 2,
        "objectives": ["d_acc", "d_acc"],
        "space": {"top_p": [0.0, 0.5], "q_lo": [0.1, 0.9], "tau": [3, 1]},
    }
    with pytest.raises(RecipeError) as info:
        parse_recipe(d)
    msg = str(info.value)
    assert "tune.objectives: 'd_acc' is listed twice" in msg
    assert "tune.space.tau: must be [low, high]" in msg
    d["tune"] = {"edit": 2, "space": {"top_p": [0.0, 0.5], "q_lo": [0.1, 0.9]}}
    with pytest.raises(RecipeError) as info:
        parse_recipe(d)
    problems = info.value.problems
    assert "tune.space.top_p: must lie in (0, 1], got [0.0, 0.5]" in problems
    assert any(p.startswith("tune.space.q_lo: its high end 0.9") for p in problems)
    assert any(p.startswith("tune.edit: 2 is not an edit index") for p in problems)


def test_validation_split_is_disjoint_and_leaves_the_rest_alone(tiny_data) -> None:
    spec = parse_recipe(
        {
            "model": {"id": "x"},
            "data": {"source": str(tiny_data), "fit_per_class": 8, "eval_per_class": 6},
            "edits": [{"concepts": ["Sports"]}],
        }
    ).data
    plain = load_concept_data(spec, 2, 0)
    withval = load_concept_data(spec, 2, 0, None, 5)
    assert plain.fit == withval.fit and plain.eval == withval.eval
    assert plain.shots == withval.shots and len(plain.val) == 0
    assert sorted(set(withval.val.labels)) == [0, 1, 2, 3]
    assert all(withval.val.labels.count(c) == 5 for c in range(4))
    seen = set(withval.fit.texts) | set(withval.eval.texts) | set(withval.shots.texts)
    assert not seen & set(withval.val.texts)
