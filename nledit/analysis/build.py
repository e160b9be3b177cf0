"""Assemble an `InspectReport` from sampled layer activations.

Inputs are plain arrays so the caller decides how activations were collected: `samples[c]` is
an (n_c, d) array of one layer's activations for concept c (a bounded reservoir sample).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from itertools import combinations
from typing import Any, Literal

import numpy as np

from nledit.analysis.plots import plot_kde, plot_overlap_heatmap
from nledit.analysis.report import BoundExamples, ExampleText, InspectReport, KdeFigure
from nledit.analysis.stats import (
    AurocSummary,
    auroc_summary,
    distribution_stats,
    nearest_to_bounds,
    pairwise_auroc,
    topk_overlap,
)
from nledit.fitting.bounds import DEFAULT_TAU, sigma_bounds

# (neuron_index (k,), lo (k,), hi (k,), mu (k,)) for one concept.
RangeArrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
Bounds = dict[int, tuple[float, float, float]]  # neuron -> (lo, mu, hi)
GROUPS = ("top", "middle", "bottom")


def _check_samples(samples: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    if not samples:
        raise ValueError("samples is empty")
    out: dict[str, np.ndarray] = {}
    for concept, x in samples.items():
        arr = np.asarray(x, dtype=np.float64)
        if arr.ndim != 2 or arr.shape[0] == 0:
            raise ValueError(f"samples[{concept!r}] must be a non-empty (n, d) array")
        out[concept] = arr
    widths = {x.shape[1] for x in out.values()}
    if len(widths) != 1:
        raise ValueError(f"concepts differ in neuron count: {sorted(widths)}")
    return out


def mean_abs_saliency(samples: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Max-activation saliency: mean |activation| per neuron over each concept's samples."""
    return {c: np.mean(np.abs(x), axis=0) for c, x in samples.items()}


def computed_bounds(x: np.ndarray, tau: float) -> Bounds:
    """Range mu ± tau·sigma (population std) for every neuron of x (n, d)."""
    mu = x.mean(axis=0)
    lo, hi = sigma_bounds(mu, x.std(axis=0), tau)
    return {j: (float(lo[j]), float(mu[j]), float(hi[j])) for j in range(x.shape[1])}


def supplied_bounds(arrays: RangeArrays, d: int, concept: str) -> Bounds:
    """Convert a (neuron_index, lo, hi, mu) tuple into neuron -> (lo, mu, hi)."""
    idx, lo, hi, mu = (np.asarray(a).ravel() for a in arrays)
    if not (idx.size == lo.size == hi.size == mu.size):
        raise ValueError(f"ranges[{concept!r}] arrays differ in length")
    if idx.size and (idx.min() < 0 or idx.max() >= d):
        raise ValueError(f"ranges[{concept!r}] has neuron indices outside [0, {d})")
    return {
        int(j): (float(a), float(m), float(b)) for j, a, b, m in zip(idx, lo, hi, mu, strict=True)
    }


def rank_picks(saliency: np.ndarray, n: int) -> list[tuple[str, int, int]]:
    """(group, rank, neuron) for n top-, n middle- and n bottom-ranked neurons.

    Rank 0 is the most salient neuron; neurons are never picked twice when d < 3n.
    """
    order = np.argsort(-np.asarray(saliency, dtype=np.float64).ravel(), kind="stable")
    d = order.size
    n = max(1, min(n, d))
    start_mid = max(0, d // 2 - n // 2)
    spans = {
        "top": range(0, n),
        "middle": range(start_mid, min(d, start_mid + n)),
        "bottom": range(max(0, d - n), d),
    }
    seen: set[int] = set()
    picks = []
    for group in GROUPS:
        for rank in spans[group]:
            neuron = int(order[rank])
            if neuron not in seen:
                seen.add(neuron)
                picks.append((group, rank, neuron))
    return picks


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-").lower()[:40] or "concept"


def _pair_overlaps(
    samples: Mapping[str, np.ndarray],
) -> tuple[list[AurocSummary], AurocSummary | None]:
    summaries, pooled = [], []
    for a, b in combinations(samples, 2):
        auroc = pairwise_auroc(samples[a], samples[b])
        summaries.append(auroc_summary(auroc, a, b))
        pooled.append(auroc)
    if not pooled:
        return summaries, None
    return summaries, auroc_summary(np.concatenate(pooled), "all pairs (pooled)", "")


def _bound_examples(
    concept: str,
    group: str,
    neuron: int,
    bounds: tuple[float, float, float],
    fitted: bool,
    samples: Mapping[str, np.ndarray],
    texts: Mapping[str, Sequence[str]],
    pool: Literal["concept", "all"],
    k: int,
) -> BoundExamples:
    sources = [concept] if pool == "concept" else [c for c in samples if c in texts]
    values = np.concatenate([samples[c][:, neuron] for c in sources])
    owner = [(c, i) for c in sources for i in range(samples[c].shape[0])]
    lo, mu, hi = bounds
    picked = nearest_to_bounds(values, lo, mu, hi, k)

    def examples(key: str) -> list[ExampleText]:
        out = []
        for row in picked[key]:
            c, i = owner[row]
            tag = c if pool == "all" else None
            out.append(
                ExampleText(index=i, value=float(values[row]), text=texts[c][i], concept=tag)
            )
        return out

    return BoundExamples(
        concept=concept,
        neuron=neuron,
        rank_group=group,
        lo=lo,
        mu=mu,
        hi=hi,
        lower=examples("lower"),
        mean=examples("mean"),
        upper=examples("upper"),
        fitted=fitted,
    )


def build_report(
    samples: Mapping[str, np.ndarray],
    texts: Mapping[str, Sequence[str]] | None,
    saliency: Mapping[str, np.ndarray] | None,
    ranges: Mapping[str, RangeArrays] | None,
    layer: int,
    model_name: str,
    p: float = 0.3,
    n_kde: int = 3,
    erasure_rows: list[dict[str, Any]] | None = None,
    *,
    tau: float = DEFAULT_TAU,
    n_texts: int = 3,
    ks_threshold: float = 0.1,
    bound_pool: Literal["concept", "all"] = "concept",
    layer_stats: list[dict[str, Any]] | None = None,
) -> InspectReport:
    """Compute every analysis of the report for one layer.

    - `saliency[c]` (d,), higher = more salient; default mean |activation| (max-activation).
    - `ranges[c] = (neuron_index, lo, hi, mu)`; default mu ± tau·sigma for every neuron.
    - `n_kde` neurons are drawn from each of the top, middle and bottom of a concept's
      saliency ranking for its KDE figure; the first of each group also gets the `n_texts`
      samples nearest its range's lower bound, mean and upper bound (when `texts` is given).
      `bound_pool="all"` searches every concept's samples instead of the concept's own.
    """
    data = _check_samples(samples)
    names = list(data)
    d = next(iter(data.values())).shape[1]
    if texts is not None:
        for c in names:
            if c in texts and len(texts[c]) != data[c].shape[0]:
                raise ValueError(
                    f"texts[{c!r}] has {len(texts[c])} entries for {data[c].shape[0]} samples"
                )

    if saliency is None:
        sal = mean_abs_saliency(data)
    else:
        missing = [c for c in names if c not in saliency]
        if missing:
            raise ValueError(f"saliency is missing concepts: {missing}")
        sal = {c: np.asarray(saliency[c], dtype=np.float64).ravel() for c in names}
        bad = [c for c in names if sal[c].size != d]
        if bad:
            raise ValueError(f"saliency of {bad} does not have {d} entries")

    if ranges is None:
        fitted = {c: computed_bounds(data[c], tau) for c in names}
    else:
        fitted = {c: supplied_bounds(ranges[c], d, c) if c in ranges else {} for c in names}

    report = InspectReport(model_name=model_name, layer=int(layer), concepts=names)
    report.settings = {
        "p": p,
        "tau": tau if ranges is None else "supplied ranges",
        "saliency": "supplied" if saliency is not None else "mean |activation|",
        "ks_threshold": ks_threshold,
        "samples": ", ".join(f"{c}: {data[c].shape[0]}" for c in names),
        "neurons": d,
    }
    report.stats = {c: distribution_stats(data[c], ks_threshold) for c in names}
    report.pair_overlaps, report.pooled_overlap = _pair_overlaps(data)
    report.layer_stats = layer_stats
    report.erasure_rows = erasure_rows

    if len(names) >= 2:
        report.overlap_names, report.overlap_matrix = topk_overlap(sal, p)
        report.overlap_p = p
        report.overlap_png = plot_overlap_heatmap(report.overlap_names, report.overlap_matrix, p)

    for i, c in enumerate(names):
        picks = rank_picks(sal[c], n_kde)
        shown: Bounds = {j: fitted[c][j] for _, _, j in picks if j in fitted[c]}
        titles = [
            f"{g} #{r + 1} · neuron {j}" + ("" if j in fitted[c] else " · no range")
            for g, r, j in picks
        ]
        png = plot_kde(
            data,
            [j for _, _, j in picks],
            c,
            bounds=shown,
            titles=titles,
            ncols=max(1, min(n_kde, 4)),
            suptitle=f"{model_name} · layer {layer} · target: {c}",
        )
        report.kde_figures.append(
            KdeFigure(
                concept=c,
                neurons=[j for _, _, j in picks],
                groups=[g for g, _, _ in picks],
                png=png,
                filename=f"kde_{i:02d}_{_slug(c)}.png",
            )
        )
        if texts is None or c not in texts:
            continue
        firsts = {}
        for g, _, j in picks:
            firsts.setdefault(g, j)
        for g, j in firsts.items():
            has_fit = j in fitted[c]
            bounds = fitted[c][j] if has_fit else computed_bounds(data[c][:, [j]], tau)[0]
            report.bound_examples.append(
                _bound_examples(c, g, j, bounds, has_fit, data, texts, bound_pool, n_texts)
            )
    return report


def _masked(fn: Callable[[np.ndarray], Any], values: np.ndarray, ok: np.ndarray) -> float | None:
    return float(fn(values[ok])) if ok.any() else None


def all_layer_stats(
    samples_by_layer: Mapping[int, Mapping[str, np.ndarray]], ks_threshold: float = 0.1
) -> list[dict[str, Any]]:
    """Across-layer normality summary (Table 9): one row per layer, pooled over concepts.

    Means, medians and the practical-normality share run over every (concept, neuron) pair
    with a non-constant activation.
    """
    rows = []
    for layer in sorted(samples_by_layer):
        per_concept = [
            distribution_stats(x, ks_threshold) for x in samples_by_layer[layer].values()
        ]
        if not per_concept:
            continue
        skew = np.concatenate([s.skewness for s in per_concept])
        kurt = np.concatenate([s.kurtosis for s in per_concept])
        ks = np.concatenate([s.ks for s in per_concept])
        ok = np.isfinite(ks)
        agg = partial(_masked, ok=ok)
        rows.append(
            {
                "layer": int(layer),
                "kurtosis": agg(np.mean, kurt),
                "skewness": agg(np.mean, skew),
                "practical_normality": agg(np.mean, ks <= ks_threshold),
                "kurtosis_median": agg(np.median, kurt),
                "skewness_median": agg(np.median, skew),
                "ks_mean": agg(np.mean, ks),
                "n_concepts": len(per_concept),
                "n_neurons": int(per_concept[0].n_neurons),
            }
        )
    return rows
