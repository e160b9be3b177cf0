"""What `nledit tune` writes: the trials (CSV), the Pareto front (Markdown table and PNG plot)
and the held-out comparison of the picked edit with the recipe's own edit."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

from ..evaluation import diagnostics
from ..evaluation.erasure import EvalResult
from ..evaluation.results import markdown_table, ppl_table, summary
from ..runtime.operators import tuned_params

COLUMNS = [
    "trial",
    "pareto",
    "layer",
    "saliency",
    "selectivity",
    "magnitude_weight",
    "top_p",
    "k",
    "range",
    "tau",
    "q_lo",
    "q_hi",
    "trim_overlap",
    "quorum",
    "operator",
    *tuned_params(),
    "d_acc",
    "d_conf",
    "d_cacc",
    "d_cconf",
    "d_ppl",
    "seconds",
]


def trial_rows(trials: list[Any], pareto: set[int]) -> list[dict[str, Any]]:
    """One flat row per finished trial: its settings and validation metrics."""
    rows = []
    for t in trials:
        a, p = t.user_attrs, t.user_attrs.get("params", {})
        q = p.get("quantiles") or [None, None]
        row = {
            "trial": t.number,
            "pareto": t.number in pareto,
            "layer": p.get("layer"),
            "saliency": p.get("saliency"),
            "selectivity": p.get("selectivity"),
            "magnitude_weight": p.get("magnitude_weight"),
            "top_p": p.get("top_p"),
            "k": a.get("k"),
            "range": p.get("range"),
            "tau": p.get("tau"),
            "q_lo": q[0],
            "q_hi": q[1],
            "trim_overlap": p.get("trim_overlap"),
            "quorum": p.get("quorum", "none"),
            "operator": p.get("operator"),
            **{name: p.get(name) for name in tuned_params()},
        }
        row |= {k: a.get(k) for k in ("d_acc", "d_conf", "d_cacc", "d_cconf", "d_ppl", "seconds")}
        rows.append(row)
    return rows


def _n(v: Any, fmt: str = "{:.3f}") -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    return fmt.format(v)


def _shape(r: dict[str, Any]) -> str:
    quantile = r["range"] == "quantile"
    s = f"q [{r['q_lo']:.3f}, {r['q_hi']:.3f}]" if quantile else f"τ {r['tau']:.2f}"
    s += " trim" if r["trim_overlap"] else ""
    return s + (" quorum" if r.get("quorum", "none") != "none" else "")


def _saliency(r: dict[str, Any]) -> str:
    if r["saliency"] != "selective":
        return str(r["saliency"])
    return f"selective/{r['selectivity']} w={r['magnitude_weight']:.2f}"


SYMBOLS = {"alpha": "α", "beta": "β"}  # how the tables name the tuned parameters


def _operator(r: dict[str, Any]) -> str:
    op = str(r["operator"])
    for name in tuned_params():
        if r.get(name) is not None:
            op += f" {SYMBOLS.get(name, name)}={r[name]:.2f}"
    return op


LABELS = {
    "d_acc": "ΔAcc",
    "d_conf": "ΔConf",
    "d_cacc": "ΔCAcc",
    "d_cconf": "ΔCConf",
    "d_ppl": "ΔPPL",
}


def _cells(r: dict[str, Any]) -> str:
    metrics = " | ".join(_n(r.get(k), "{:+.3f}") for k in ("d_acc", "d_conf", "d_cacc", "d_cconf"))
    return f"{metrics} | {_n(r.get('d_ppl'), '{:+.2f}')} |"


def pareto_markdown(
    rows: list[dict[str, Any]],
    reference: dict[str, Any],
    chosen: int,
    target: str = "d_acc",
    collateral: str = "d_cacc",
) -> str:
    """The Pareto-optimal trials (validation), best target drop first, and the reference."""
    lines = [
        "Pareto front on the validation split. Target concept: ΔAcc, ΔConf (lower = more "
        "erased); other concepts: ΔCAcc, ΔCConf (higher = less collateral); general text: ΔPPL "
        "(lower = better). All deltas against the unedited model.",
        "",
        "| trial | layer | saliency | top p (k) | range | operator | ΔAcc | ΔConf | ΔCAcc "
        "| ΔCConf | ΔPPL |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    front = sorted((r for r in rows if r["pareto"]), key=lambda r: (r[target], -r[collateral]))
    picked = [r for r in rows if r["trial"] == chosen and not r["pareto"]]
    for r in front + picked:
        mark = " ★" if r["trial"] == chosen else ""
        mark += " (off the front)" if not r["pareto"] else ""
        lines.append(
            f"| {r['trial']}{mark} | {r['layer']} | {_saliency(r)} | {r['top_p']:.3f} ({r['k']}) "
            f"| {_shape(r)} | {_operator(r)} | {_cells(r)}"
        )
    lines.append(
        f"| reference | | the recipe's edit | ({reference['k']}) | | | {_cells(reference)}"
    )
    lines.append("")
    lines.append(
        ("★ picked. " if any(r["trial"] == chosen for r in rows) else "No trial picked. ")
        + f"{len(front)} of {len(rows)} finished trials are Pareto-optimal; sorted by "
        f"{LABELS[target]}."
    )
    return "\n".join(lines)


def write_csv(path: Path, rows: list[dict[str, Any]]) -> Path:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return path


def plot_front(
    path: Path,
    rows: list[dict[str, Any]],
    reference: dict[str, Any],
    chosen: int,
    target: str = "d_acc",
    collateral: str = "d_cacc",
) -> Path:
    """Two panels: target against collateral (colour: ΔPPL), and target against ΔPPL."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    has_ppl = any(r["d_ppl"] is not None for r in rows)
    fig, axes = plt.subplots(1, 2 if has_ppl else 1, figsize=(11 if has_ppl else 6, 4.5))
    axes = list(axes) if has_ppl else [axes]
    x = [r[target] for r in rows]
    ppl = [r["d_ppl"] if r["d_ppl"] is not None else 0.0 for r in rows]
    front = [r for r in rows if r["pareto"]]
    pick = next((r for r in rows if r["trial"] == chosen), None)  # None: nothing picked
    panels = [(collateral, f"{LABELS[collateral]} (other concepts; higher = less collateral)")]
    if has_ppl:
        panels.append(("d_ppl", "ΔPPL (general text; lower = better)"))
    for ax, (key, label) in zip(axes, panels):
        y = [r[key] if r[key] is not None else 0.0 for r in rows]
        colour: dict[str, Any] = {"c": ppl, "cmap": "viridis"} if has_ppl else {"c": "tab:blue"}
        sc = ax.scatter(x, y, s=28, alpha=0.8, **colour)
        ax.scatter(
            [r[target] for r in front],
            [r[key] for r in front],
            facecolors="none",
            edgecolors="black",
            s=80,
            label="Pareto-optimal",
        )
        if reference.get(key) is not None:
            ax.scatter(
                [reference[target]],
                [reference[key]],
                marker="*",
                s=220,
                c="tab:red",
                label="reference (recipe's edit)",
            )
        if pick is not None:
            where = (pick[target], pick[key])
            ax.scatter(*where, marker="D", s=90, facecolors="none", edgecolors="tab:red")
            ax.annotate(
                f"pick #{chosen}", where, xytext=(6, 6), textcoords="offset points", fontsize=8
            )
        ax.set_xlabel(f"{LABELS[target]} (target concept; lower = more erased)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        if key == collateral and has_ppl:
            fig.colorbar(sc, ax=ax, label="ΔPPL")
    axes[0].legend(fontsize=8, loc="best")
    fig.suptitle("nledit tune: trials on the validation split")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_study_files(
    out: Path,
    rows: list[dict[str, Any]],
    reference: dict[str, Any],
    chosen: int,
    metrics: tuple[str, str] = ("d_acc", "d_cacc"),
) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    files = [write_csv(out / "trials.csv", rows)]
    md = out / "pareto.md"
    md.write_text("# nledit tune\n\n" + pareto_markdown(rows, reference, chosen, *metrics) + "\n")
    files.append(md)
    files.append(plot_front(out / "pareto.png", rows, reference, chosen, *metrics))
    return files


def comparison_text(result: EvalResult) -> str:
    return "Held-out evaluation split: the recipe's edit (default) against the pick (tuned)\n" + (
        summary(result)
    )


def write_comparison(out: Path, result: EvalResult, pick: Any, reference: dict[str, Any]) -> Path:
    """comparison.md: the erasure table (Table 3 layout) and perplexity, both edits."""
    a = pick.trial.user_attrs
    parts = [
        "# The tuned edit against the recipe's edit, on the held-out evaluation split",
        "",
        "Methods: `default` = the recipe's edit (range masking), `neuron` = neuron masking of "
        "its neurons (the paper's baseline), `tuned` = the picked trial (range masking), "
        "`tuned-nm` = neuron masking of the tuned neurons.",
        "",
        f"Picked trial {pick.trial.number}: {pick.rule}.",
        f"Validation: tuned ΔAcc {a['d_acc']:+.3f}, ΔCAcc {a['d_cacc']:+.3f}"
        + (f", ΔPPL {a['d_ppl']:+.2f}" if a.get("d_ppl") is not None else "")
        + f"; reference ΔAcc {reference['d_acc']:+.3f}, ΔCAcc {reference['d_cacc']:+.3f}"
        + (f", ΔPPL {reference['d_ppl']:+.2f}" if reference.get("d_ppl") is not None else "")
        + ".",
        "",
        "## Concept erasure",
        "",
        markdown_table(result),
    ]
    if result.perplexity:
        parts += ["", "## Perplexity", "", ppl_table(result.perplexity)]
    table = diagnostics.markdown_rows([r.to_dict() for r in result.rows])
    if table:
        parts += ["", "## Selectivity", "", diagnostics.EXPLAIN, "", table]
    path = out / "comparison.md"
    path.write_text("\n".join(parts) + "\n", encoding="utf-8")
    return path
