"""The quorum of a range edit: how many of its k neurons must lie inside their ranges at a token
before the gate acts there.

Each neuron's range alone often holds most of the other concepts' activations too (a neuron is
rarely specific to one concept), so a per-neuron gate fires on them as well. The count of
neurons inside their ranges pools that weak evidence: it is high on the concept's tokens and
lower on the others'. ``quorum: q`` asks for ceil(q·k) neurons; ``quorum: auto`` picks the count
m that best separates the concept's fitting examples from the other concepts' (Youden's J,
P(count ≥ m | concept) − mean over the other concepts c' of P(count ≥ m | c'), on the fit's
activation sample at the read token), taking the middle of the best counts when several tie.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..errors import NleditError


def pass_rates(counts: np.ndarray, k: int) -> np.ndarray:
    """P(count ≥ m) for m = 0..k, from one concept's per-example in-range counts."""
    if counts.size == 0:
        return np.zeros(k + 1)
    hist = np.bincount(counts, minlength=k + 1)[: k + 1]
    return hist[::-1].cumsum()[::-1] / counts.size


def in_range_counts(
    samples: np.ndarray, index: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor
) -> np.ndarray:
    """Per sampled example (rows of ``samples``, (n, d)): how many selected neurons lie inside."""
    if samples.size == 0:
        return np.zeros(0, dtype=np.int64)
    x = samples[:, index.numpy()]
    inside = (x >= lo.numpy()) & (x <= hi.numpy())
    return inside.sum(1).astype(np.int64)


def best_count(target: np.ndarray, others: list[np.ndarray], k: int) -> int:
    """The count m in 1..k maximising Youden's J between ``target``'s counts and the other
    concepts' (each weighted equally); the middle of the maximising counts on a tie."""
    j = pass_rates(target, k) - np.mean([pass_rates(o, k) for o in others], axis=0)
    j = j[1:]  # m = 0 is "always act": no quorum
    best = np.flatnonzero(j >= j.max() - 1e-12)
    return int(best[(len(best) - 1) // 2]) + 1


def fit_quorum(
    quorum: float | str | None,
    k: int,
    concept: int,
    samples: dict[int, np.ndarray] | None,
    index: torch.Tensor,
    lo: torch.Tensor,
    hi: torch.Tensor,
    where: str,
) -> int:
    """The quorum count of one concept's gate (0: none). ``samples`` are the fit's activation
    samples per concept at the gate's layer (needed for ``auto``); ``where`` names the edit in
    errors."""
    if quorum is None or k == 0:
        return 0
    if quorum != "auto":
        return min(k, max(1, math.ceil(float(quorum) * k - 1e-9)))
    if samples is None:
        raise NleditError(f"{where}: quorum auto needs the fit's activation sample")
    counts = {c: in_range_counts(s, index, lo, hi) for c, s in samples.items()}
    others = [v for c, v in counts.items() if c != concept and v.size]
    if not counts.get(concept, np.zeros(0)).size or not others:
        raise NleditError(
            f"{where}: quorum auto needs fitting examples of the concept and of another concept"
        )
    return best_count(counts[concept], others, k)
