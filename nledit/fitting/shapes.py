"""Range shapes: the interval [lo, hi] of a neuron's values inside which the gate acts.

``sigma`` (the paper, §5.1)
    [mu - tau·sigma, mu + tau·sigma] from the concept's mean and population std.
``quantile``
    [Q(q_lo), Q(q_hi)]: empirical quantiles of the concept's own activations (numpy's default,
    linear interpolation), so the range can be asymmetric and follows skewed distributions.
    The activations come from the fit's bounded, seeded reservoir sample (``Reservoir``): exact
    when a concept has no more fitting examples than the reservoir holds (512 per concept).
``trim_overlap`` (with either shape)
    Shrinks the range to the part where the concept dominates: with the Gaussian statistics,
    f(x) = N(x; mu_c, sigma_c²) - mean over other concepts c' of N(x; mu_c', sigma_c'²), the
    target density minus the pooled (equally weighted) density of the others. On a grid of
    ``GRID`` + 1 points over [lo, hi], the maximal runs where f > 0 are candidate
    sub-intervals (end points refined by linear interpolation of f); the range becomes the
    run holding the most target mass. Where f > 0 nowhere in the range, the range collapses to
    the single point of largest f, so the gate practically never fires on that neuron.

All shapes give plain lo/hi tensors: the same gate and the same export format serve them all.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..recipe import EditSpec
from .bounds import sigma_bounds
from .collect import ConceptStats
from .reservoir import Reservoir
from .selectivity import normal_mass, others_of

DEFAULT_QUANTILES = (0.01, 0.99)
GRID = 256
_EPS = 1e-12


def quantile_bounds(samples: np.ndarray, q_lo: float, q_hi: float) -> tuple[torch.Tensor, ...]:
    """Per-column empirical quantiles of ``samples`` (n, d): (lo, hi), float64 tensors."""
    if samples.ndim != 2 or samples.shape[0] < 2:
        raise ValueError("range quantile: needs at least 2 sampled activations of the concept")
    q = np.quantile(samples.astype(np.float64), [q_lo, q_hi], axis=0)
    return torch.from_numpy(q[0]), torch.from_numpy(q[1])


def _pdf(x: torch.Tensor, mu: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    s = sigma.clamp_min(_EPS)
    return torch.exp(-0.5 * ((x - mu) / s) ** 2) / (s * math.sqrt(2 * math.pi))


def trim_overlap(
    lo: torch.Tensor,
    hi: torch.Tensor,
    mean: torch.Tensor,
    std: torch.Tensor,
    concept: int,
    others: list[int],
    grid: int = GRID,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Shrink each (d,) range to its sub-interval where the concept's density dominates."""
    lo, hi = lo.to(torch.float64), hi.to(torch.float64)
    if not others:
        return lo.clone(), hi.clone()
    mean, std = mean.to(torch.float64), std.to(torch.float64)
    t = torch.linspace(0, 1, grid + 1, dtype=torch.float64)
    x = lo.unsqueeze(1) + (hi - lo).unsqueeze(1) * t.unsqueeze(0)  # (d, G+1)
    target = _pdf(x, mean[concept].unsqueeze(1), std[concept].unsqueeze(1))
    rest = _pdf(x.unsqueeze(0), mean[others].unsqueeze(2), std[others].unsqueeze(2)).mean(0)
    f = (target - rest).numpy()
    xs = x.numpy()
    new_lo, new_hi = lo.clone(), hi.clone()
    mu_c, sd_c = mean[concept], std[concept]
    for j in range(xs.shape[0]):
        fj, xj = f[j], xs[j]
        pos = fj > 0
        if pos.all():
            continue
        if not pos.any():
            point = float(xj[int(np.argmax(fj))])
            new_lo[j] = new_hi[j] = point
            continue
        edges = np.diff(np.concatenate([[0], pos.astype(np.int8), [0]]))
        starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1
        best, best_mass = (float(xj[0]), float(xj[0])), -1.0
        for s, e in zip(starts, ends):
            a = float(xj[s]) if s == 0 else _crossing(xj[s - 1], xj[s], fj[s - 1], fj[s])
            b = float(xj[e]) if e == len(xj) - 1 else _crossing(xj[e], xj[e + 1], fj[e], fj[e + 1])
            mass = float(normal_mass(mu_c[j], sd_c[j], torch.tensor(a), torch.tensor(b)))
            if mass > best_mass:
                best, best_mass = (a, b), mass
        new_lo[j], new_hi[j] = best
    return new_lo, new_hi


def _crossing(x0: float, x1: float, f0: float, f1: float) -> float:
    """Where the line through (x0, f0) and (x1, f1) crosses zero (f0, f1 of opposite signs)."""
    denom = f0 - f1
    return float(x0 if denom == 0 else x0 + (x1 - x0) * f0 / denom)


def neuron_ranges(
    edit: EditSpec,
    stats: ConceptStats,
    layer: int,
    concept: int,
    reservoir: Reservoir | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The concept's range for every neuron of ``layer`` (d,) as the edit's shape says."""
    mean, std = stats.mean(layer), stats.std(layer)
    if edit.range == "quantile":
        if reservoir is None:
            raise ValueError("range quantile: needs the fit's reservoir of activations")
        q_lo, q_hi = edit.quantiles or DEFAULT_QUANTILES
        samples = reservoir.samples(layer, stats.n_concepts)[concept]
        lo, hi = quantile_bounds(samples, q_lo, q_hi)
    elif edit.range == "sigma":
        lo, hi = sigma_bounds(mean[concept], std[concept], edit.tau)
    else:
        raise ValueError(f"unknown range shape {edit.range!r}; known: sigma, quantile")
    if edit.trim_overlap:
        lo, hi = trim_overlap(lo, hi, mean, std, concept, others_of(stats, layer, concept))
    return lo, hi
