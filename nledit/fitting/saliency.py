"""Saliency: which neurons of a layer matter for a concept (the paper's §2.3, App. C)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from .collect import ConceptStats
from .reservoir import Reservoir
from .saliency_registry import names, top_count

METHODS = names()


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


@dataclass
class ScoreInputs:
    """What a scoring function may read besides the statistics (see ``saliencies``)."""

    seed: int
    reservoir: Reservoir | None
    ranges: tuple[torch.Tensor, torch.Tensor] | None  # every neuron's (lo, hi)
    selectivity: str
    magnitude_weight: float


def _selective(stats: ConceptStats, layer: int, concept: int, x: ScoreInputs) -> torch.Tensor:
    from .selectivity import selective_scores

    lo, hi = x.ranges if x.ranges is not None else (None, None)
    return selective_scores(stats, layer, concept, lo, hi, x.selectivity, x.magnitude_weight)


def _probe(stats: ConceptStats, layer: int, concept: int, x: ScoreInputs) -> torch.Tensor:
    if x.reservoir is None:
        raise ValueError("saliency probe: needs a reservoir of activations")
    return probe(x.reservoir, layer, concept, stats.n_concepts, x.seed)


def _random(stats: ConceptStats, layer: int, concept: int, x: ScoreInputs) -> torch.Tensor:
    return random_scores(stats.d, x.seed * 1000 + layer * 31 + concept)


Scorer = Callable[[ConceptStats, int, int, ScoreInputs], torch.Tensor]
# One scoring function per entry of ``saliencies.SALIENCIES`` (same names, same order).
SCORERS: dict[str, Scorer] = {
    "max": lambda stats, layer, concept, x: max_activation(stats, layer, concept),
    "probeless": lambda stats, layer, concept, x: probeless(stats, layer, concept),
    "probe": _probe,
    "random": _random,
    "selective": _selective,
}


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
    see ``nledit.fitting.selectivity`` for its formula.
    """
    if method not in SCORERS:
        raise ValueError(f"unknown saliency {method!r}; known: {', '.join(METHODS)}")
    inputs = ScoreInputs(seed, reservoir, ranges, selectivity, magnitude_weight)
    return SCORERS[method](stats, layer, concept, inputs)


def top_fraction(
    score: torch.Tensor, p: float, rounding: str = "round", k: int | None = None
) -> torch.Tensor:
    """Indices of the top ``p`` fraction of neurons (at least one; ``k`` neurons when given),
    sorted ascending; ``rounding`` turns p·d into a count (see ``saliencies.top_count``)."""
    n = top_count(p, score.numel(), rounding, k)
    top = torch.topk(score, n, sorted=True).indices
    return top.sort().values
