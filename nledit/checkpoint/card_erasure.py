"""The model card's erasure section (competence, intervals, transfer, seeds) and the small
formatting helpers the card's tables share."""

from __future__ import annotations

from typing import Any

from ..evaluation import diagnostics
from .card_index import first_number

_ERASURE_COLS = ("acc", "conf", "cacc", "cconf")


def erasure_section(metrics: dict[str, Any]) -> str:
    """The card's erasure section: competence, the table with its intervals (rows whose base
    cannot do the task flagged), selectivity, transfer and the spread across seeds."""
    rows_in = metrics.get("erasure") or []
    if not rows_in:
        return ""
    way = rows_in[0].get("collateral", "macro")
    c_acc, c_conf = f"CAcc ({way})", f"CConf ({way})"
    head = ["concept", "method", "Acc", "ΔAcc", "Conf", "ΔConf", c_acc, f"Δ{c_acc}", c_conf]
    head.append(f"Δ{c_conf}")
    rows = []
    for r in rows_in:
        method = r.get("method")
        if r.get("assessable") is False:
            method = f"{method} (base cannot do this: no erasure claim)"
        cells: list[Any] = [r.get("concept"), method]
        for key in _ERASURE_COLS:
            v, b = first_number(r, key), first_number(r, f"base_{key}")
            delta = fmt(v - b, signed=True) if v is not None and b is not None else ""
            cells += [fmt(v), delta + interval((r.get("ci") or {}).get(f"d_{key}"))]
        rows.append(cells)
    intervals = any(r.get("ci") for r in rows_in)
    return (
        "## Concept erasure\n\n"
        "Acc and Conf (probability of the gold label) on the edited concept's examples; CAcc and "
        "CConf on the other concepts' examples: macro is the mean over the other concepts of "
        "each one's mean, pooled the mean over all their examples (this table: "
        f"{way}; results.json holds both). Δ is the change against the unedited model: "
        "a good edit has a large negative ΔAcc with ΔCAcc and ΔCConf near zero."
        + (
            " In brackets: the paired bootstrap 95 % interval over the evaluation examples."
            if intervals
            else ""
        )
        + "\n\n"
        + _competence(metrics)
        + table(head, rows)
        + _selectivity(rows_in)
        + _transfer(metrics)
        + _seeds(metrics)
    )


def interval(ci: Any) -> str:
    """`` [lo, hi]`` of a stored interval ("" without one)."""
    if not isinstance(ci, list | tuple) or len(ci) != 2 or not all(map(is_number, ci)):
        return ""
    return f" [{ci[0]:+.3f}, {ci[1]:+.3f}]"


def _transfer(metrics: dict[str, Any]) -> str:
    """How far the edit reaches outside its fitting prompt (``transfer``)."""
    from ..evaluation.transfer_table import table

    got = metrics.get("transfer")
    return f"\n### How far the edit reaches\n\n{table(got)}\n" if got else ""


def _seeds(metrics: dict[str, Any]) -> str:
    """Mean ± sd across the seeds of ``eval.seeds`` (``seeds``)."""
    from ..evaluation.seeds import text

    got = (metrics.get("seeds") or {}).get("summary")
    return f"\n### Across seeds\n\n{text(got)}\n" if got else ""


def _competence(metrics: dict[str, Any]) -> str:
    """The base model's competence and the calibration choice, a line each."""
    from ..evaluation.competence import calibration_text, line

    comp, cal = metrics.get("competence"), metrics.get("calibration")
    out = f"{line(comp)}.\n\n" if comp else ""
    return out + (f"Calibration: {calibration_text(cal)}.\n\n" if cal else "")


def _selectivity(rows: list[dict[str, Any]]) -> str:
    """The diagnostics of each row (firing rates, label mass, raw accuracy, verdict)."""
    table = diagnostics.markdown_rows(rows)
    if not table:
        return ""
    return f"\n\n### Is the edit selective?\n\n{diagnostics.EXPLAIN}\n\n{table}\n"


def is_number(v: Any) -> bool:
    """Whether ``v`` is an int or float (not a bool)."""
    return isinstance(v, int | float) and not isinstance(v, bool)


def num(v: Any) -> float | None:
    """``v`` as a float when it is a number, else None."""
    return float(v) if is_number(v) else None


def table(head: list[str], rows: list[list[Any]]) -> str:
    """A Markdown table of ``rows`` under ``head``."""
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def cell(value: Any) -> str:
    """A value as a Markdown table cell (pipes escaped, one line)."""
    if value is None:
        return ""
    return str(value).replace("|", "\\|").replace("\n", " ")


def fmt(value: float | None, digits: int = 4, *, signed: bool = False) -> str:
    """A number to ``digits`` places ("" for None)."""
    if value is None:
        return ""
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"
