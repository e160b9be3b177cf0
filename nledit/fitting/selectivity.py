"""Selectivity-aware saliency: rank neurons by how well a concept's range excludes the others.

Everything here reads the per-concept Gaussian statistics of ``ConceptStats`` (mean mu_c and
population std sigma_c of every neuron): no extra pass over the data.

``mass`` (default). For target concept c, neuron j and its range [lo_j, hi_j]:

    m(c', j) = Phi((hi_j - mu_c'j) / sigma_c'j) - Phi((lo_j - mu_c'j) / sigma_c'j)
    S_mass(j) = m(c, j) - mean over the other concepts c' of m(c', j)

the share of the target's activations inside its range minus the (per-concept averaged) share
of the other concepts' activations inside it, with Phi the standard normal CDF. S_mass lies in
[-1, 1]: near 1 when the range holds the target and nothing else, 0 when every concept puts the
same mass inside (identical distributions).

``auroc``. Under the Gaussian model, the probability that a target activation exceeds an
activation of concept c' is A(c', j) = Phi((mu_cj - mu_c'j) / sqrt(sigma_cj² + sigma_c'j²)),
and

    S_auroc(j) = mean over c' of |2·A(c', j) - 1|

in [0, 1]: 0 for identical distributions, 1 for fully separated ones. It ignores the range.

Magnitude. The gate can only change what flows through a neuron that is active, so the score
can be weighted by the max-activation saliency m_j = mean |h_j| over the target:

    score(j) = S(j) · (m_j / max_k m_k) ^ w        (w = ``magnitude_weight``, 0 by default)
"""

from __future__ import annotations

import torch

from .bounds import DEFAULT_TAU, sigma_bounds
from .collect import ConceptStats

MEASURES = ("mass", "auroc")
_EPS = 1e-12


def normal_mass(
    mu: torch.Tensor, sigma: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor
) -> torch.Tensor:
    """Mass of N(mu, sigma²) inside [lo, hi] (broadcasting); a point mass when sigma is 0."""
    mu, sigma, lo, hi = torch.broadcast_tensors(*(t.to(torch.float64) for t in (mu, sigma, lo, hi)))
    safe = sigma.clamp_min(_EPS)
    mass = torch.special.ndtr((hi - mu) / safe) - torch.special.ndtr((lo - mu) / safe)
    point = ((mu >= lo) & (mu <= hi)).to(torch.float64)
    return torch.where(sigma > _EPS, mass.clamp_min(0), point)


def others_of(stats: ConceptStats, layer: int, concept: int) -> list[int]:
    """The other concepts that have fitting examples at ``layer``."""
    count = stats.count[layer]
    return [c for c in range(stats.n_concepts) if c != concept and count[c] > 0]


def mass_selectivity(
    mean: torch.Tensor,
    std: torch.Tensor,
    concept: int,
    others: list[int],
    lo: torch.Tensor,
    hi: torch.Tensor,
) -> torch.Tensor:
    """S_mass per neuron from (C, d) means and stds and the target's (d,) range bounds."""
    target = normal_mass(mean[concept], std[concept], lo, hi)
    if not others:
        return target
    rest = normal_mass(mean[others], std[others], lo.unsqueeze(0), hi.unsqueeze(0))
    return target - rest.mean(dim=0)


def auroc_separation(
    mean: torch.Tensor, std: torch.Tensor, concept: int, others: list[int]
) -> torch.Tensor:
    """S_auroc per neuron: mean over the other concepts of |2·AUROC - 1| (Gaussian AUROC)."""
    if not others:
        return torch.zeros(mean.shape[1], dtype=torch.float64)
    mean, std = mean.to(torch.float64), std.to(torch.float64)
    diff = mean[concept].unsqueeze(0) - mean[others]
    scale = (std[concept].unsqueeze(0) ** 2 + std[others] ** 2).sqrt()
    auroc = torch.special.ndtr(diff / scale.clamp_min(_EPS))  # point masses: 0, 0.5 or 1
    return (2 * auroc - 1).abs().mean(dim=0)


def selective_scores(
    stats: ConceptStats,
    layer: int,
    concept: int,
    lo: torch.Tensor | None = None,
    hi: torch.Tensor | None = None,
    measure: str = "mass",
    magnitude_weight: float = 0.0,
    tau: float = DEFAULT_TAU,
) -> torch.Tensor:
    """The ``selective`` saliency of every neuron (see the module docstring).

    ``lo``/``hi`` are the target's range bounds for every neuron (d,); without them the
    paper's range mu ± tau·sigma is used.
    """
    mean, std = stats.mean(layer), stats.std(layer)
    others = others_of(stats, layer, concept)
    if measure == "mass":
        if lo is None or hi is None:
            lo, hi = sigma_bounds(mean[concept], std[concept], tau)
        score = mass_selectivity(mean, std, concept, others, lo, hi)
    elif measure == "auroc":
        score = auroc_separation(mean, std, concept, others)
    else:
        raise ValueError(f"unknown selectivity {measure!r}; known: {', '.join(MEASURES)}")
    if magnitude_weight:
        mag = stats.mean_abs(layer)[concept]
        rel = mag / mag.max().clamp_min(_EPS)
        score = score * rel.pow(magnitude_weight)
    return score
