"""Seeded, stratified bootstrap over cached per-example results (no extra forward passes).

Each resample draws, within every class, as many examples as the class has (with replacement),
so every class keeps its size and per-class means stay defined. Intervals are percentile
intervals at ``LEVEL``. Paired: base and edited values of one example are resampled together.
"""

from __future__ import annotations

import math

import torch

LEVEL = 0.95  # coverage of every interval
RESAMPLES = 1000  # bootstrap resamples
SEED = 0  # the default seed: the same inputs always give the same interval


def stratified_indices(gold: torch.Tensor, resamples: int = RESAMPLES, seed: int = SEED):
    """(resamples, N) example indices; column j always holds an example of ``gold[order[j]]``
    where ``order`` is returned too (the columns' classes)."""
    gen = torch.Generator().manual_seed(seed)
    blocks, order = [], []
    for c in gold.unique().tolist():
        members = (gold == c).nonzero().flatten()
        pick = torch.randint(len(members), (resamples, len(members)), generator=gen)
        blocks.append(members[pick])
        order.append(torch.full((len(members),), c, dtype=gold.dtype))
    return torch.cat(blocks, 1), torch.cat(order)


def percentile(values: torch.Tensor) -> tuple[float, float]:
    """The ``LEVEL`` percentile interval of resampled values (NaNs left out)."""
    v = values[~torch.isnan(values)].double()
    if not len(v):
        return math.nan, math.nan
    a = (1 - LEVEL) / 2
    return float(torch.quantile(v, a)), float(torch.quantile(v, 1 - a))


def class_means(
    values: torch.Tensor, idx: torch.Tensor, order: torch.Tensor
) -> dict[int, torch.Tensor]:
    """Per class: the (resamples,) means of ``values`` over that class's resampled examples."""
    got = values[idx].double()
    return {c: got[:, order == c].mean(1) for c in order.unique().tolist()}


def delta_intervals(
    base: tuple[torch.Tensor, torch.Tensor],
    edit: tuple[torch.Tensor, torch.Tensor],
    gold: torch.Tensor,
    concept: int,
    idx: torch.Tensor,
    order: torch.Tensor,
) -> dict[str, list[float]]:
    """Paired intervals of d_acc, d_conf, d_cacc/d_cconf (macro and pooled), cacc_broken and
    cacc_fixed of one erasure row, from (probs, pred) of the base and the edited model."""
    rows = torch.arange(len(gold))
    b_hit, e_hit = (base[1] == gold).double(), (edit[1] == gold).double()
    b_conf, e_conf = base[0][rows, gold].double(), edit[0][rows, gold].double()
    out: dict[str, list[float]] = {}
    other = order != concept
    for name, d in (("acc", e_hit - b_hit), ("conf", e_conf - b_conf)):
        means = class_means(d, idx, order)
        if concept in means:
            out[f"d_{name}"] = list(percentile(means[concept]))
        rest = [m for c, m in means.items() if c != concept]
        if rest:
            macro = torch.stack(rest).mean(0)
            out[f"d_c{name}_macro"] = list(percentile(macro))
            out[f"d_c{name}_pooled"] = list(percentile(d[idx][:, other].mean(1)))
    if other.any():
        right, now = b_hit[idx][:, other] > 0, e_hit[idx][:, other] > 0
        broken = (right & ~now).sum(1).double() / right.sum(1).double()
        fixed = (~right & now).sum(1).double() / (~right).sum(1).double()
        for key, values in (("cacc_broken", broken), ("cacc_fixed", fixed)):
            ci = percentile(values)
            if not math.isnan(ci[0]):  # undefined when the base got none right (none wrong)
                out[key] = list(ci)
    return out


def ppl_interval(base: torch.Tensor, edit: torch.Tensor, tokens: int, seed: int = SEED):
    """Interval of ΔPPL from summed NLL per window (paired resampling of windows; ``tokens``
    scored per window)."""
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randint(len(base), (RESAMPLES, len(base)), generator=gen)
    b = torch.exp(base.double()[idx].sum(1) / (tokens * len(base)))
    e = torch.exp(edit.double()[idx].sum(1) / (tokens * len(base)))
    return percentile(e - b)
