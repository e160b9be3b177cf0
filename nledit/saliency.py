"""Saliency: which neurons of a layer matter for a concept (the paper's §2.3, App. C)."""

from __future__ import annotations

import numpy as np
import torch

from .collect import ConceptStats
from .reservoir import Reservoir

METHODS = ("max", "probeless", "probe", "random", "selective")


def max_activation(stats: ConceptStats, layer: int, concept: int) -> torch.Tensor:
    """Mean |h_j| over the concept's examples (the paper's default ranking)."""
    return stats.mean_abs(layer)[concept]


def probeless(stats: ConceptStats, layer: int, concept: int) -> torch.Tensor:
    """Sum over the other concepts c' of |q(c) - q(c')|, q the class-mean vector.

    The paper's probeless ranking sums over all concept pairs; restricted to pairs with the
    target it ranks the neurons whose mean sets the target apart.
    """
    mu = stats.mean(layer)
    others = [c for c in range(mu.shape[0]) if c != concept]
    return (mu[concept].unsqueeze(0) - mu[others]).abs().sum(dim=0)


def random_scores(d: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(d, generator=g, dtype=torch.float64)


def probe(
    reservoir: Reservoir, layer: int, concept: int, n_concepts: int, seed: int
) -> torch.Tensor:
    """|weights| of an elastic-net logistic probe separating the concept from the others."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    samples = reservoir.samples(layer, n_concepts)
    xs = [s for s in samples.values() if len(s)]
    if samples[concept].shape[0] < 2 or len(xs) < 2:
        raise ValueError("saliency probe: needs activations of the concept and of another one")
    x = np.concatenate(xs)
    y = np.concatenate([np.full(len(s), c == concept) for c, s in samples.items() if len(s)])
    x = StandardScaler().fit_transform(x)
    clf = LogisticRegression(
        solver="saga", l1_ratio=0.5, C=0.1, max_iter=2000, random_state=seed, tol=1e-3
    )
    clf.fit(x, y)
    return torch.from_numpy(np.abs(clf.coef_[0]).astype(np.float64))


def scores(
    method: str,
    stats: ConceptStats,
    layer: int,
    concept: int,
    seed: int,
    reservoir: Reservoir | None = None,
    ranges: tuple[torch.Tensor, torch.Tensor] | None = None,
    selectivity: str = "mass",
    magnitude_weight: float = 0.0,
) -> torch.Tensor:
    """Saliency score per neuron (higher = more salient).

    ``selective`` reads the target's range bounds of every neuron from ``ranges`` (lo, hi);
    see ``nledit.selectivity`` for its formula.
    """
    if method == "selective":
        from .selectivity import selective_scores

        lo, hi = ranges if ranges is not None else (None, None)
        return selective_scores(stats, layer, concept, lo, hi, selectivity, magnitude_weight)
    if method == "max":
        return max_activation(stats, layer, concept)
    if method == "probeless":
        return probeless(stats, layer, concept)
    if method == "random":
        return random_scores(stats.d, seed * 1000 + layer * 31 + concept)
    if method == "probe":
        if reservoir is None:
            raise ValueError("saliency probe: needs a reservoir of activations")
        return probe(reservoir, layer, concept, stats.n_concepts, seed)
    raise ValueError(f"unknown saliency {method!r}; known: {', '.join(METHODS)}")


def top_fraction(score: torch.Tensor, p: float) -> torch.Tensor:
    """Indices of the top ``p`` fraction of neurons (at least one), sorted ascending."""
    k = max(1, round(p * score.numel()))
    top = torch.topk(score, k, sorted=True).indices
    return top.sort().values
