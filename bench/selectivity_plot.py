"""The figure of docs/tune.md: what each edit erases against what else it changes, per data set.

Left: target accuracy drop against the other classes' |ΔCAcc|, one point per data set and
method, with the goal's corner shaded. Right: ΔPPL on general text per data set and method
(symmetric log scale: the selective edits sit at 0).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

STYLE = {  # method: (label, colour, marker)
    "range": ("selective (untuned)", "#1b7837", "o"),
    "tuned": ("tuned", "#2166ac", "D"),
    "paper": ("paper default", "#b2182b", "s"),
    "neuron": ("neuron masking", "#7f7f7f", "x"),
}


def plot(table: dict[str, dict[str, dict[str, Any]]], path: Path) -> None:
    """Draw ``table`` (data set -> method -> row with d_acc, d_cacc, d_ppl) into ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(table)
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.6), width_ratios=[1, 1.5])
    left.axvspan(0.5, 1.05, ymax=0.1 / 0.8, color="#1b7837", alpha=0.08, lw=0)
    for method, (label, colour, marker) in STYLE.items():
        rows = [table[n][method] for n in names if method in table[n]]
        xs = [-r["d_acc"] for r in rows]
        ys = [abs(r["d_cacc"]) for r in rows]
        left.scatter(xs, ys, c=colour, marker=marker, label=label, s=36, alpha=0.85)
    left.set(xlim=(-0.3, 1.05), ylim=(0, 0.8), xlabel="target accuracy drop (−ΔAcc)")
    left.set_ylabel("other classes |ΔCAcc|")
    left.set_title("erased vs. changed elsewhere (shaded: drop ≥ 0.5, |ΔCAcc| ≤ 0.1)", fontsize=9)
    left.legend(fontsize=8, loc="upper left")
    width = 0.8 / len(STYLE)
    for i, (method, (label, colour, _)) in enumerate(STYLE.items()):
        xs = [j + (i - 1.5) * width for j, n in enumerate(names) if method in table[n]]
        ys = [max(table[n][method]["d_ppl"], 0.0) for n in names if method in table[n]]
        right.bar(xs, ys, width, color=colour, label=label)
        flat = [x for x, y in zip(xs, ys) if y < 0.05]  # a bar of height 0 would not show
        right.scatter(flat, [0.0] * len(flat), color=colour, marker="^", s=30, clip_on=False)
    right.set_yscale("symlog", linthresh=1.0)
    right.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=8)
    right.set_ylabel("ΔPPL on general text (symlog)")
    right.set_title("perplexity cost (triangles on the axis: ΔPPL ≈ 0)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
