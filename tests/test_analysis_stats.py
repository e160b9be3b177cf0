"""Statistics of the distribution-analysis layer against scipy/sklearn and known answers."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats as sps
from sklearn.metrics import roc_auc_score

from nledit.analysis.stats import (
    OVERLAP_BIN_LABELS,
    auroc_overlap,
    auroc_summary,
    distribution_stats,
    nearest_to_bounds,
    pairwise_auroc,
    top_count,
    top_neurons,
    topk_overlap,
)

N = 4000


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


def test_normal_sample_is_practically_normal(rng: np.random.Generator) -> None:
    x = rng.normal(3.0, 2.0, size=(N, 16))
    st = distribution_stats(x)
    s = st.summary()
    assert abs(s["skewness_mean"]) < 0.05
    assert s["kurtosis_mean"] == pytest.approx(3.0, abs=0.1)
    assert s["ks_mean"] < 0.03
    assert s["practical_normality"] == 1.0
    assert s["n_valid"] == 16


def test_uniform_and_exponential_shapes(rng: np.random.Generator) -> None:
    normal = distribution_stats(rng.normal(size=(N, 8)))
    uniform = distribution_stats(rng.uniform(-1, 1, size=(N, 8)))
    expo = distribution_stats(rng.exponential(size=(N, 8)))
    assert uniform.summary()["kurtosis_mean"] == pytest.approx(1.8, abs=0.05)
    assert abs(uniform.summary()["skewness_mean"]) < 0.1
    assert uniform.summary()["ks_mean"] > 2 * normal.summary()["ks_mean"]
    assert expo.summary()["skewness_mean"] == pytest.approx(2.0, abs=0.3)
    assert expo.summary()["kurtosis_mean"] == pytest.approx(9.0, abs=2.5)
    # The exponential's KS distance to a normal is about 0.16: never practically normal.
    assert expo.summary()["ks_mean"] > 0.1
    assert expo.practical_normality == 0.0


def test_matches_scipy_per_neuron(rng: np.random.Generator) -> None:
    x = np.column_stack(
        [
            rng.normal(size=300),
            rng.uniform(size=300),
            rng.exponential(size=300),
            rng.gamma(2, size=300),
        ]
    ).astype(np.float32)
    st = distribution_stats(x)
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(st.skewness, sps.skew(x64, axis=0), rtol=1e-9)
    np.testing.assert_allclose(st.kurtosis, sps.kurtosis(x64, axis=0, fisher=False), rtol=1e-9)
    z = (x64 - x64.mean(axis=0)) / x64.std(axis=0)
    expected_ks = [sps.kstest(z[:, j], "norm").statistic for j in range(x.shape[1])]
    np.testing.assert_allclose(st.ks, expected_ks, rtol=1e-9, atol=1e-12)


def test_constant_neurons_are_excluded(rng: np.random.Generator) -> None:
    x = np.column_stack([rng.normal(size=500), np.full(500, 0.1), rng.exponential(size=500)])
    st = distribution_stats(x, ks_threshold=0.1)
    assert math.isnan(st.skewness[1]) and math.isnan(st.kurtosis[1]) and math.isnan(st.ks[1])
    s = st.summary()
    assert s["n_valid"] == 2
    assert s["practical_normality"] == pytest.approx(0.5)
    assert s["kurtosis_mean"] == pytest.approx(np.mean(st.kurtosis[[0, 2]]))
    data = st.to_dict()
    json.dumps(data, allow_nan=False)
    assert data["per_neuron"]["ks"][1] is None


def test_threshold_and_input_validation(rng: np.random.Generator) -> None:
    x = rng.uniform(size=(N, 4))  # KS of a uniform is about 0.057
    assert distribution_stats(x, ks_threshold=0.1).practical_normality == 1.0
    assert distribution_stats(x, ks_threshold=0.03).practical_normality == 0.0
    assert distribution_stats(rng.normal(size=50)).n_neurons == 1
    with pytest.raises(ValueError, match="NaN"):
        distribution_stats(np.array([[1.0, np.nan], [2.0, 3.0]]))
    with pytest.raises(ValueError):
        distribution_stats(np.zeros((2, 2, 2)))


def test_auroc_matches_sklearn_with_ties(rng: np.random.Generator) -> None:
    a = np.round(rng.normal(size=(120, 6)), 1)
    b = np.round(rng.normal(size=(90, 6)) + np.array([0, 0.3, 1, 3, -1, 0]), 1)
    a[:, 5] = 1.0  # constant in a and partly tied with b
    b[:45, 5] = 1.0
    got = pairwise_auroc(a, b)
    labels = np.r_[np.ones(len(a)), np.zeros(len(b))]
    for j in range(a.shape[1]):
        assert got[j] == pytest.approx(roc_auc_score(labels, np.r_[a[:, j], b[:, j]]), abs=1e-12)


def test_auroc_identical_and_separated(rng: np.random.Generator) -> None:
    x = rng.normal(size=(200, 5))
    np.testing.assert_allclose(pairwise_auroc(x, x.copy()), 0.5)
    far = x + 100.0
    np.testing.assert_allclose(pairwise_auroc(far, x), 1.0)
    np.testing.assert_allclose(pairwise_auroc(x, far), 0.0)
    np.testing.assert_allclose(auroc_overlap(pairwise_auroc(x, far)), 0.0)
    with pytest.raises(ValueError, match="neuron count"):
        pairwise_auroc(x, x[:, :3])


def test_auroc_summary_quartiles_and_bins() -> None:
    auroc = np.array([0.5, 0.5, 0.6, 0.2, 1.0, 0.0, 0.45, 0.9])
    s = auroc_summary(auroc, "a", "b")
    overlap = 1 - 2 * np.abs(auroc - 0.5)
    assert s.overlap_quartiles == pytest.approx(tuple(np.quantile(overlap, [0.25, 0.5, 0.75])))
    assert s.auroc_quartiles == pytest.approx(tuple(np.quantile(auroc, [0.25, 0.5, 0.75])))
    # overlaps: 1, 1, .8, .4, 0, 0, .9, .2 -> <25%: 3, 25-50%: 1, 50-75%: 0, >75%: 4
    assert s.overlap_bins == pytest.approx(dict(zip(OVERLAP_BIN_LABELS, [3 / 8, 1 / 8, 0, 4 / 8])))
    assert sum(s.overlap_bins.values()) == pytest.approx(1.0)
    json.dumps(s.to_dict(), allow_nan=False)


def test_topk_overlap_hand_made() -> None:
    d = 10
    sal = {
        "a": np.array([9, 8, 7, 0, 0, 0, 0, 0, 0, 0], dtype=float),  # {0, 1, 2}
        "b": np.array([0, 0, 9, 8, 7, 0, 0, 0, 0, 0], dtype=float),  # {2, 3, 4}
        "c": np.array([7, 9, 8, 1, 1, 1, 1, 1, 1, 1], dtype=float),  # {0, 1, 2}
    }
    assert top_count(0.3, d) == 3
    assert list(top_neurons(sal["c"], 0.3)) == [1, 2, 0]
    names, m = topk_overlap(sal, 0.3)
    assert names == ["a", "b", "c"]
    expected = np.array([[1, 1 / 3, 1], [1 / 3, 1, 1 / 3], [1, 1 / 3, 1]])
    np.testing.assert_allclose(m, expected)
    _, full = topk_overlap(sal, 1.0)
    np.testing.assert_allclose(full, 1.0)
    with pytest.raises(ValueError):
        topk_overlap(sal, 0.0)
    with pytest.raises(ValueError, match="length"):
        topk_overlap({"a": np.zeros(3), "b": np.zeros(4)}, 0.5)


def test_nearest_to_bounds_hand_made() -> None:
    values = np.arange(10, dtype=float)
    out = nearest_to_bounds(values, lo=1.2, mu=5.0, hi=8.6, k=2)
    assert out == {"lower": [1, 2], "mean": [5, 4], "upper": [9, 8]}
    assert nearest_to_bounds(values, 0, 0, 0, k=50)["mean"] == list(range(10))
    assert nearest_to_bounds(values, 0, 0, 0, k=0) == {"lower": [], "mean": [], "upper": []}
