"""Figures for the inspection report, rendered headless to PNG bytes.

Figures are built on `matplotlib.figure.Figure` directly (no pyplot, no global state), which
renders through the Agg canvas and needs no display.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from scipy.stats import gaussian_kde

DPI = 110
_KDE_POINTS = 256


def concept_colors(names: Sequence[str]) -> dict[str, tuple[float, float, float, float]]:
    """A stable colour per concept (tab10, or tab20 beyond ten concepts)."""
    from matplotlib import colormaps

    cmap = colormaps["tab10" if len(names) <= 10 else "tab20"]
    return {name: cmap(i % cmap.N) for i, name in enumerate(names)}


def _to_png(fig: Figure, path: Path | None, dpi: int) -> bytes:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    data = buf.getvalue()
    if path is not None:
        Path(path).write_bytes(data)
    return data


def _density(values: np.ndarray, grid: np.ndarray) -> np.ndarray | None:
    """Gaussian KDE of `values` on `grid`, or None when the values have no spread.

    The bandwidth is scipy's (Scott's rule); the 1-D sum is evaluated directly in chunks,
    which gives the same values as `gaussian_kde.evaluate` several times faster.
    """
    if values.size < 2 or np.ptp(values) == 0:
        return None
    try:
        bw = float(np.sqrt(gaussian_kde(values).covariance[0, 0]))
    except (np.linalg.LinAlgError, ValueError):
        return None
    if not bw > 0:
        return None
    dens = np.zeros_like(grid)
    for start in range(0, values.size, 4096):
        chunk = values[start : start + 4096]
        dens += np.exp(-0.5 * ((grid[:, None] - chunk[None, :]) / bw) ** 2).sum(axis=1)
    return dens / (values.size * bw * np.sqrt(2.0 * np.pi))


def _kde_axis(
    ax: Axes,
    samples: Mapping[str, np.ndarray],
    neuron: int,
    target: str,
    colors: Mapping[str, tuple[float, float, float, float]],
    bounds: tuple[float, float, float] | None,
    title: str,
) -> None:
    columns = {c: np.asarray(x[:, neuron], dtype=np.float64) for c, x in samples.items()}
    pooled = np.concatenate(list(columns.values()))
    lo_x, hi_x = float(pooled.min()), float(pooled.max())
    if bounds is not None:
        lo_x, hi_x = min(lo_x, bounds[0]), max(hi_x, bounds[2])
    pad = 0.08 * (hi_x - lo_x) if hi_x > lo_x else 1.0
    grid = np.linspace(lo_x - pad, hi_x + pad, _KDE_POINTS)
    if bounds is not None:
        lo, mu, hi = bounds
        ax.axvspan(lo, hi, color=colors[target], alpha=0.14, lw=0)
        ax.axvline(mu, color=colors[target], ls="--", lw=1.2)
    for concept, values in columns.items():
        is_target = concept == target
        dens = _density(values, grid)
        style = {"color": colors[concept], "lw": 2.2 if is_target else 1.2, "zorder": 3}
        if dens is None:  # a constant neuron: mark its single value
            ax.axvline(float(values[0]), ls=":", **style)
        else:
            ax.plot(grid, dens, **style)
            if is_target:
                ax.fill_between(grid, dens, color=colors[concept], alpha=0.18, lw=0, zorder=2)
    ax.set_title(title, fontsize=10)
    ax.set_xlim(grid[0], grid[-1])
    ax.set_ylim(bottom=0)
    ax.tick_params(labelsize=8)
    ax.grid(alpha=0.25, lw=0.6)


def plot_kde(
    samples: Mapping[str, np.ndarray],
    neurons: Sequence[int],
    target: str,
    bounds: Mapping[int, tuple[float, float, float]] | None = None,
    titles: Sequence[str] | None = None,
    ncols: int = 3,
    suptitle: str | None = None,
    path: Path | None = None,
    dpi: int = DPI,
) -> bytes:
    """KDE of each concept's activations, one subplot per neuron (Fig. 3).

    `samples[c]` is an (n_c, d) array. The target concept's curve is drawn bold and filled;
    `bounds[j] = (lo, mu, hi)` adds its range as a shaded band with mu as a dashed line.
    Returns PNG bytes, also written to `path` when given.
    """
    if target not in samples:
        raise KeyError(f"target concept {target!r} not in samples")
    if not neurons:
        raise ValueError("no neurons to plot")
    names = list(samples)
    colors = concept_colors(names)
    ncols = max(1, min(ncols, len(neurons)))
    nrows = math.ceil(len(neurons) / ncols)
    # Fixed margins in inches: constrained layout is several times slower for large grids.
    cell_w, cell_h, row_gap = 4.1, 2.45, 0.62
    legend_cols = min(len(names), 6)
    legend_h = 0.26 * math.ceil(len(names) / legend_cols)
    title_h = 0.36 if suptitle else 0.0
    left, right, bottom, top = 0.7, 0.2, 0.55, 0.4 + title_h + legend_h
    width = left + right + cell_w * ncols
    height = top + bottom + cell_h * nrows + row_gap * (nrows - 1)
    fig = Figure(figsize=(width, height))
    fig.subplots_adjust(
        left=left / width,
        right=1 - right / width,
        bottom=bottom / height,
        top=1 - top / height,
        wspace=0.2,
        hspace=row_gap / cell_h,
    )
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for i, neuron in enumerate(neurons):
        title = titles[i] if titles is not None else f"neuron {neuron}"
        band = bounds.get(int(neuron)) if bounds else None
        _kde_axis(axes.flat[i], samples, int(neuron), target, colors, band, title)
    for ax in axes.flat[len(neurons) :]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel("density", fontsize=9)
    for ax in axes.flat[max(0, len(neurons) - ncols) : len(neurons)]:
        ax.set_xlabel("activation", fontsize=9)
    handles = [Line2D([], [], color=colors[c], lw=2.2 if c == target else 1.2) for c in names]
    labels = [f"{c} (target)" if c == target else c for c in names]
    if suptitle:
        fig.suptitle(suptitle, fontsize=12, y=1 - 0.08 / height, va="top")
    fig.legend(
        handles,
        labels,
        loc="upper center",
        bbox_to_anchor=(0.5, 1 - (0.06 + title_h) / height),
        ncols=legend_cols,
        fontsize=9,
        frameon=False,
    )
    return _to_png(fig, path, dpi)


def plot_overlap_heatmap(
    names: Sequence[str],
    matrix: np.ndarray,
    p: float | None = None,
    path: Path | None = None,
    dpi: int = DPI,
) -> bytes:
    """Heatmap of the top-p salient-set overlap matrix with each value annotated (Fig. 2)."""
    mat = np.asarray(matrix, dtype=np.float64)
    k = len(names)
    if mat.shape != (k, k):
        raise ValueError(f"matrix shape {mat.shape} does not match {k} names")
    side = min(11.0, max(4.2, 0.62 * k + 2.4))
    fig = Figure(figsize=(side + 1.0, side), layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(mat, cmap="viridis", vmin=0.0, vmax=1.0)
    font = 10 if k <= 8 else (8 if k <= 14 else 6)
    for i in range(k):
        for j in range(k):
            rgba = image.cmap(image.norm(mat[i, j]))
            luminance = 0.299 * rgba[0] + 0.587 * rgba[1] + 0.114 * rgba[2]
            ax.text(
                j,
                i,
                f"{mat[i, j]:.2f}",
                ha="center",
                va="center",
                fontsize=font,
                color="black" if luminance > 0.5 else "white",
            )
    ax.set_xticks(range(k), labels=list(names), rotation=40, ha="right", fontsize=font + 1)
    ax.set_yticks(range(k), labels=list(names), fontsize=font + 1)
    ax.set_xlabel("concept j", fontsize=10)
    ax.set_ylabel("concept i", fontsize=10)
    share = f"top {p:.0%} " if p is not None else "top-p "
    ax.set_title(f"Overlap of {share}salient neurons: |S_i ∩ S_j| / |S_i|", fontsize=11)
    fig.colorbar(image, ax=ax, shrink=0.8, label="overlap")
    return _to_png(fig, path, dpi)
