"""The sweep figure: x = the swept value; accuracy, confidence and ΔPPL, range vs neuron masking.

Built on `matplotlib.figure.Figure` with the Agg canvas (no pyplot, no display). Colours follow
the paper's Fig. 4: range masking green, neuron masking orange; target solid, collateral dashed.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

if TYPE_CHECKING:
    from .result import SweepResult

COLOR = {"range": "#2ca02c", "neuron": "#ff7f0e"}
LABEL = {"range": "range masking", "neuron": "neuron masking"}
XLABEL = {
    "tau": "tau (range = mu ± tau·sigma)",
    "top_p": "neurons edited (% of the layer, top_p)",
    "layer": "edited layer",
}


def _mean(rows: list[dict[str, Any]], key: str) -> float:
    vals = [r[key] for r in rows if r.get(key) is not None]
    return sum(vals) / len(vals) if vals else float("nan")


def series(result: SweepResult, method: str, key: str) -> list[float]:
    """``key`` per swept value for ``method``, averaged over the edit's concepts."""
    over = result.over
    return [
        _mean([r for r in result.rows if r["method"] == method and r[over] == v], key)
        for v in result.values
    ]


def _x(result: SweepResult) -> list[float]:
    scale = 100.0 if result.over == "top_p" else 1.0
    return [float(v) * scale for v in result.values]


def _panel(ax: Any, result: SweepResult, keys: tuple[str, str], title: str, ylabel: str) -> None:
    x = _x(result)
    target, other = keys
    for method in ("neuron", "range"):
        style = {"color": COLOR[method], "marker": "o", "markersize": 4, "linewidth": 1.8}
        ax.plot(x, series(result, method, target), linestyle="-", **style)
        ax.plot(x, series(result, method, other), linestyle="--", **style)
        for key in keys:
            _band(ax, result, method, key, result.base.get(key))
    for key, ls in ((target, "-"), (other, "--")):
        base = result.base.get(key)
        if base is not None:
            ax.axhline(base, color="0.45", linestyle=ls, linewidth=0.9, alpha=0.7)
    ax.set_ylim(-0.03, 1.03)
    ax.set_title(title, fontsize=11)
    ax.set_ylabel(ylabel)


def _band(ax: Any, result: SweepResult, method: str, key: str, base: float | None) -> None:
    """The 95 % interval of ``key``'s delta as a shaded band (``base`` + [lo, hi]); drawn for
    a one-concept sweep only (a mean of interval ends is not an interval)."""
    if base is None or len(result.settings.get("concepts", [])) != 1:
        return
    lo = series(result, method, f"d_{key}_lo")
    hi = series(result, method, f"d_{key}_hi")
    if all(v != v for v in lo):  # NaN: a sweep written without intervals
        return
    x = _x(result)
    ax.fill_between(
        x,
        [base + v for v in lo],
        [base + v for v in hi],
        color=COLOR[method],
        alpha=0.15,
        linewidth=0,
    )


def _compact(v: float, _pos: Any = None) -> str:
    """Tick labels for a log-like axis: 1, 10, 100, 1k, 10k, 1M."""
    a, sign = abs(v), "-" if v < 0 else ""
    for scale, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if a >= scale:
            return f"{sign}{a / scale:g}{unit}"
    return f"{v:g}"


def _ppl_panel(ax: Any, result: SweepResult) -> None:
    x = _x(result)
    values: list[float] = []
    for method in ("neuron", "range"):
        y = series(result, method, "d_ppl")
        values += [v for v in y if v == v]
        ax.plot(x, y, color=COLOR[method], marker="o", markersize=4, linewidth=1.8)
        _band(ax, result, method, "ppl", 0.0)
    low, top = min([0.0, *values]), max([0.0, *values])
    ax.axhline(0.0, color="0.45", linewidth=0.9, alpha=0.7)
    ax.set_title(f"Perplexity increase (base {result.base['ppl']:.1f})", fontsize=11)
    ax.set_ylabel("ΔPPL on general text")
    if top > 20:  # neuron masking can blow perplexity up by orders of magnitude
        from matplotlib.ticker import FuncFormatter

        ax.set_yscale("symlog", linthresh=1.0)
        ax.yaxis.set_major_formatter(FuncFormatter(_compact))
        ax.set_ylim(low * 3 if low < 0 else 0.0, top * 3)
        ax.set_ylabel("ΔPPL on general text (symlog scale)")


def plot_sweep(result: SweepResult, path: Path | None = None, dpi: int = 110) -> Figure:
    """Two panels (accuracy, confidence), three with a perplexity source; saved as PNG."""
    from matplotlib.lines import Line2D

    has_ppl = "ppl" in result.base
    n = 3 if has_ppl else 2
    fig = Figure(figsize=(5.0 * n, 4.6), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, n, squeeze=False)[0]
    _panel(axes[0], result, ("acc", "cacc"), "Accuracy", "accuracy")
    _panel(axes[1], result, ("conf", "cconf"), "Confidence (p of the gold label)", "probability")
    has_mass = any(r.get("label_mass") is not None for r in result.rows)
    for method in ("neuron", "range") if has_mass else ():
        y = series(result, method, "label_mass")
        axes[1].plot(_x(result), y, color=COLOR[method], linestyle=":", linewidth=1.5)
    if has_mass and result.base.get("label_mass") is not None:
        axes[1].axhline(result.base["label_mass"], color="0.45", linestyle=":", linewidth=0.9)
    if has_ppl:
        _ppl_panel(axes[2], result)
    for ax in axes:
        ax.set_xlabel(XLABEL[result.over])
        ax.grid(True, alpha=0.3)
        if result.over == "layer":
            ax.set_xticks(_x(result))
        if result.over == "top_p":  # the neuron count on a second axis above
            k, x = series(result, "range", "k"), _x(result)
            step = max(1, len(k) // 6)
            top = ax.secondary_xaxis("top")
            top.set_xticks(x[::step], [f"{int(v)}" for v in k[::step]], fontsize=8)
            top.set_xlabel("k neurons", fontsize=8)
            ax.set_title(ax.get_title(), fontsize=11, pad=34)
    handles = [
        Line2D([], [], color=COLOR["range"], linewidth=2.5, label=LABEL["range"]),
        Line2D([], [], color=COLOR["neuron"], linewidth=2.5, label=LABEL["neuron"]),
        Line2D([], [], color="0.2", linestyle="-", label="target concept"),
        Line2D([], [], color="0.2", linestyle="--", label="other concepts (collateral)"),
        Line2D([], [], color="0.45", linewidth=0.9, label="base model"),
    ]
    if has_mass:
        mass = "p of any label word (all examples)"
        handles.insert(4, Line2D([], [], color="0.2", linestyle=":", label=mass))
    # one legend row where three panels leave room for it, two rows otherwise
    ncols = len(handles) if n == 3 else (len(handles) + 1) // 2
    fig.legend(handles=handles, loc="outside lower center", ncols=ncols, fontsize=9, frameon=False)
    s = result.settings
    fixed = [f"layer {s['layer']}" if s.get("layer") is not None else ""]
    fixed += [f"top_p {s['top_p']}" if s.get("top_p") is not None else ""]
    fixed += [f"tau {s['tau']}" if s.get("tau") is not None else ""]
    note = " (neuron masking does not depend on tau)" if result.over == "tau" else ""
    title = (
        f"{Path(str(s['model'])).name}: erasing {', '.join(s['concepts'])}, "
        f"{s['operator']['name']} operator, {', '.join(f for f in fixed if f)}, "
        f"{s['n_eval']} eval examples{note}"
    )
    fig.suptitle(textwrap.fill(title, width=70 * n // 2 + 20), fontsize=11)
    if path is not None:
        fig.savefig(path, dpi=dpi)
    return fig
