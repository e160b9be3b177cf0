"""Statistics of concept-conditioned activations (numpy/scipy only).

Covers the paper's quantitative evidence: per-neuron skewness, kurtosis and KS normality
(Tables 1, 7, 9), pairwise AUROC overlap between concepts (Table 5), overlap of top-p salient
sets (Fig. 2) and the samples closest to a range's bounds (Table 2, App. E).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import special
from scipy.stats import rankdata

from ..fitting import saliency_registry as saliencies

# Edges of the overlap bins of Table 5 (shares of neurons with overlap <25%, 25-50%, ...).
OVERLAP_BINS: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)
OVERLAP_BIN_LABELS: tuple[str, ...] = ("<25%", "25-50%", "50-75%", ">75%")


def _as_samples(x: np.ndarray, name: str = "x") -> np.ndarray:
    """Return `x` as a finite float64 (n, d) array; a 1-D input is one neuron."""
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f"{name} must have shape (n, d), got {arr.shape}")
    if arr.shape[0] == 0:
        raise ValueError(f"{name} has no samples")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def _nan_summary(values: np.ndarray) -> tuple[float, float]:
    """Mean and median over the finite entries (NaN when there are none)."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return math.nan, math.nan
    return float(finite.mean()), float(np.median(finite))


def _json_float(value: float) -> float | None:
    return None if not math.isfinite(value) else float(value)


def _json_list(values: np.ndarray) -> list[float | None]:
    return [_json_float(float(v)) for v in values]


@dataclass
class DistributionStats:
    """Per-neuron normality statistics of one concept's samples.

    Arrays have one entry per neuron; constant neurons hold NaN and are left out of every
    summary and share.
    """

    n_samples: int
    skewness: np.ndarray
    kurtosis: np.ndarray  # Pearson kurtosis: 3 for a normal distribution
    ks: np.ndarray  # KS statistic of the standardised values against N(0, 1)
    ks_threshold: float = 0.1

    @property
    def n_neurons(self) -> int:
        return int(self.skewness.shape[0])

    @property
    def valid(self) -> np.ndarray:
        """Mask of neurons with a non-zero spread."""
        return np.isfinite(self.ks)

    @property
    def practical_normality(self) -> float:
        """Share of (non-constant) neurons whose KS statistic is at most `ks_threshold`."""
        ks = self.ks[self.valid]
        return float(np.mean(ks <= self.ks_threshold)) if ks.size else math.nan

    def summary(self) -> dict[str, float | int]:
        skew_mean, skew_median = _nan_summary(self.skewness)
        kurt_mean, kurt_median = _nan_summary(self.kurtosis)
        ks_mean, ks_median = _nan_summary(self.ks)
        return {
            "n_samples": self.n_samples,
            "n_neurons": self.n_neurons,
            "n_valid": int(self.valid.sum()),
            "skewness_mean": skew_mean,
            "skewness_median": skew_median,
            "kurtosis_mean": kurt_mean,
            "kurtosis_median": kurt_median,
            "ks_mean": ks_mean,
            "ks_median": ks_median,
            "ks_threshold": float(self.ks_threshold),
            "practical_normality": self.practical_normality,
        }

    def to_dict(self, per_neuron: bool = True) -> dict[str, Any]:
        """JSON-serialisable form (NaN becomes null)."""
        out: dict[str, Any] = {
            k: (_json_float(v) if isinstance(v, float) else v) for k, v in self.summary().items()
        }
        if per_neuron:
            out["per_neuron"] = {
                "skewness": _json_list(self.skewness),
                "kurtosis": _json_list(self.kurtosis),
                "ks": _json_list(self.ks),
            }
        return out


def ks_against_normal(z: np.ndarray) -> np.ndarray:
    """Two-sided KS statistic of each column of `z` against a standard normal (vectorised)."""
    n = z.shape[0]
    cdf = special.ndtr(np.sort(z, axis=0))
    steps = np.arange(1, n + 1, dtype=np.float64)[:, None] / n
    d_plus = np.max(steps - cdf, axis=0)
    d_minus = np.max(cdf - (steps - 1.0 / n), axis=0)
    return np.maximum(d_plus, d_minus)


def distribution_stats(x: np.ndarray, ks_threshold: float = 0.1) -> DistributionStats:
    """Skewness, Pearson kurtosis and KS normality of every neuron of `x` (n, d).

    Moments are the biased (population) ones, as `scipy.stats.skew(bias=True)` and
    `scipy.stats.kurtosis(fisher=False)`. For the KS statistic each neuron is standardised
    with its own mean and population std, z = (x - mean) / std.
    """
    arr = _as_samples(x)
    n = arr.shape[0]
    centred = arr - arr.mean(axis=0)
    m2 = np.mean(centred**2, axis=0)
    constant = (np.ptp(arr, axis=0) == 0) | (m2 == 0)
    safe_m2 = np.where(constant, 1.0, m2)
    skew = np.mean(centred**3, axis=0) / safe_m2**1.5
    kurt = np.mean(centred**4, axis=0) / safe_m2**2
    ks = ks_against_normal(centred / np.sqrt(safe_m2))
    for values in (skew, kurt, ks):
        values[constant] = np.nan
    return DistributionStats(
        n_samples=n, skewness=skew, kurtosis=kurt, ks=ks, ks_threshold=float(ks_threshold)
    )


def pairwise_auroc(x_a: np.ndarray, x_b: np.ndarray) -> np.ndarray:
    """Per-neuron AUROC of separating concept a (positive) from concept b by activation value.

    Mann-Whitney form: AUROC_j = P(a_j > b_j) + 0.5 * P(a_j = b_j), computed from average
    ranks of the pooled samples, so ties count one half. Returns shape (d,).
    """
    a = _as_samples(x_a, "x_a")
    b = _as_samples(x_b, "x_b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"x_a and x_b differ in neuron count: {a.shape[1]} vs {b.shape[1]}")
    n_a, n_b = a.shape[0], b.shape[0]
    ranks = rankdata(np.concatenate([a, b], axis=0), axis=0)
    u_a = ranks[:n_a].sum(axis=0) - n_a * (n_a + 1) / 2.0
    return u_a / (n_a * n_b)


def auroc_overlap(auroc: np.ndarray) -> np.ndarray:
    """Symmetric overlap 1 - 2*|AUROC - 0.5|: 1 = indistinguishable, 0 = fully separated."""
    return 1.0 - 2.0 * np.abs(np.asarray(auroc, dtype=np.float64) - 0.5)


@dataclass
class AurocSummary:
    """Quartiles of the per-neuron AUROC and overlap for one concept pair (Table 5)."""

    concept_a: str
    concept_b: str
    n_neurons: int
    auroc_quartiles: tuple[float, float, float]  # Q1, median, Q3
    overlap_quartiles: tuple[float, float, float]
    overlap_bins: dict[str, float]  # share of neurons per overlap bin of Table 5

    def to_dict(self) -> dict[str, Any]:
        return {
            "concept_a": self.concept_a,
            "concept_b": self.concept_b,
            "n_neurons": self.n_neurons,
            "auroc_q1": self.auroc_quartiles[0],
            "auroc_median": self.auroc_quartiles[1],
            "auroc_q3": self.auroc_quartiles[2],
            "overlap_q1": self.overlap_quartiles[0],
            "overlap_median": self.overlap_quartiles[1],
            "overlap_q3": self.overlap_quartiles[2],
            "overlap_bins": dict(self.overlap_bins),
        }


def auroc_summary(auroc: np.ndarray, concept_a: str, concept_b: str) -> AurocSummary:
    """Summarise per-neuron AUROC values (one pair, or several pairs pooled)."""
    values = np.asarray(auroc, dtype=np.float64).ravel()
    if values.size == 0:
        raise ValueError("no AUROC values to summarise")
    overlap = auroc_overlap(values)
    aq = np.quantile(values, [0.25, 0.5, 0.75])
    oq = np.quantile(overlap, [0.25, 0.5, 0.75])
    # Bins [0, .25), [.25, .5), [.5, .75), [.75, 1]; identical distributions land in the last.
    idx = np.digitize(overlap, OVERLAP_BINS[1:-1])
    shares = np.bincount(idx, minlength=4) / values.size
    return AurocSummary(
        concept_a=concept_a,
        concept_b=concept_b,
        n_neurons=int(values.size),
        auroc_quartiles=(float(aq[0]), float(aq[1]), float(aq[2])),
        overlap_quartiles=(float(oq[0]), float(oq[1]), float(oq[2])),
        overlap_bins={label: float(s) for label, s in zip(OVERLAP_BIN_LABELS, shares, strict=True)},
    )


def top_count(p: float, d: int) -> int:
    """Number of neurons in a top-p set of `d` neurons (at least one)."""
    return saliencies.top_count(p, d)  # the fit's rule: the report shows the edited neurons


def top_neurons(saliency: np.ndarray, p: float) -> np.ndarray:
    """Indices of the top-p most salient neurons, most salient first (ties: lower index)."""
    scores = np.asarray(saliency, dtype=np.float64).ravel()
    k = top_count(p, scores.size)
    return np.argsort(-scores, kind="stable")[:k]


def topk_overlap(saliency: Mapping[str, np.ndarray], p: float) -> tuple[list[str], np.ndarray]:
    """Overlap of top-p salient neuron sets between concepts (Fig. 2).

    matrix[i, j] = |S_i ∩ S_j| / |S_i|, with S_i the top-p set of concept i. All sets have the
    same size here, so the matrix is symmetric with ones on the diagonal.
    """
    names = list(saliency)
    if not names:
        raise ValueError("saliency is empty")
    sizes = {np.asarray(saliency[c]).size for c in names}
    if len(sizes) != 1:
        raise ValueError(f"saliency vectors differ in length: {sorted(sizes)}")
    d = sizes.pop()
    member = np.zeros((len(names), d), dtype=bool)
    for i, c in enumerate(names):
        member[i, top_neurons(saliency[c], p)] = True
    inter = member.astype(np.int64) @ member.T.astype(np.int64)
    return names, inter / member.sum(axis=1, keepdims=True)


def nearest_to_bounds(
    values: np.ndarray, lo: float, mu: float, hi: float, k: int
) -> dict[str, list[int]]:
    """Indices of the k samples whose value is nearest to the lower bound, mean and upper bound.

    Returns {"lower": [...], "mean": [...], "upper": [...]}, nearest first (ties: lower index).
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    if k < 0:
        raise ValueError(f"k must be non-negative, got {k}")
    k = min(k, v.size)
    out: dict[str, list[int]] = {}
    for key, target in (("lower", lo), ("mean", mu), ("upper", hi)):
        order = np.argsort(np.abs(v - float(target)), kind="stable")
        out[key] = [int(i) for i in order[:k]]
    return out
