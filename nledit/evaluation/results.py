"""Evaluation outputs: results.json, report.md (the paper's table layout), a CSV, and a summary."""

from __future__ import annotations

import csv
import io
import json
import math
from typing import Any

from scipy.stats import trim_mean

from . import diagnostics
from .competence import calibration_text
from .competence import line as competence_line
from .erasure import EvalResult
from .probing import probe_markdown, probe_summary
from .rows import ppl_key
from .seeds import text as seeds_text
from .transfer_table import table as transfer_table

COLUMNS = ("acc", "conf", "cacc", "cconf")
HEADER = ("Acc", "Conf", "CAcc", "CConf")


def method_label(row: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    """The method, prefixed with the edit's name when several edits use that method."""
    several = len({r.get("edit", "") for r in rows if r["method"] == row["method"]}) > 1
    return f"{row.get('edit', '')}:{row['method']}" if several else row["method"]


def aggregate(rows: list[dict[str, Any]], proportion: float = 0.1) -> dict[str, dict[str, float]]:
    """Per method: mean and 10%-trimmed mean (Table 3) over concepts of each value and delta."""
    out: dict[str, dict[str, float]] = {}
    for method in dict.fromkeys(method_label(r, rows) for r in rows):
        sel = [r for r in rows if method_label(r, rows) == method]
        agg: dict[str, float] = {}
        for key in [*COLUMNS, *(f"d_{c}" for c in COLUMNS)]:
            vals = [r[key] for r in sel if not math.isnan(r[key])]
            agg[f"mean_{key}"] = sum(vals) / len(vals) if vals else math.nan
            agg[f"trim_{key}"] = float(trim_mean(vals, proportion)) if vals else math.nan
        out[method] = agg
    return out


COLLATERAL = {
    "macro": "CAcc/CConf (macro): the mean over the other concepts of each one's mean",
    "pooled": "CAcc/CConf (pooled): the mean over all examples of the other concepts",
}


def headers(rows: list[dict[str, Any]]) -> tuple[str, ...]:
    """Column names with the collateral definition written into the CAcc/CConf headers."""
    way = rows[0].get("collateral", "macro") if rows else "macro"
    return tuple(f"{h} ({way})" if h in ("CAcc", "CConf") else h for h in HEADER)


def collateral_table(result: EvalResult) -> str:
    """ΔCAcc and ΔCConf per concept and method under both definitions, macro and pooled."""
    rows = [r.to_dict() for r in result.rows]
    if not rows or "d_cacc_pooled" not in rows[0]:
        return ""
    head = ["Concept", "method", "Base CAcc macro", "Base CAcc pooled"]
    head += ["ΔCAcc macro", "ΔCAcc pooled", "ΔCConf macro", "ΔCConf pooled", "broken", "fixed"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["concept"], method_label(r, rows)]
        cells += [_f(r["base_cacc_macro"]), _f(r["base_cacc_pooled"])]
        keys = ("d_cacc_macro", "d_cacc_pooled", "d_cconf_macro", "d_cconf_pooled")
        cells += [_ci(r, k) for k in keys]
        cells += [_ci(r, "cacc_broken"), _ci(r, "cacc_fixed")]
        lines.append("| " + " | ".join(cells) + " |")
    notes = [f"- {text}." for text in COLLATERAL.values()]
    notes.append(
        "- broken: share of the other concepts' examples the base model got right that the "
        "edit gets wrong; fixed: share of those it got wrong that the edit gets right."
    )
    return "\n".join([*notes, "", *lines])


def ci_text(row: dict[str, Any]) -> str:
    """The row's deltas with their 95 % paired bootstrap intervals, in one line."""
    ci = row.get("ci") or {}
    parts = []
    for key in ("d_acc", "d_conf", "d_cacc", "d_cconf", "cacc_broken", "cacc_fixed"):
        if key in ci and key in row:
            lo, hi = ci[key]
            parts.append(f"{key} {row[key]:+.3f} [{lo:+.3f}, {hi:+.3f}]")
    return "95% intervals: " + ", ".join(parts) if parts else ""


def _ci(r: dict[str, Any], key: str) -> str:
    """A delta and its interval, for a table cell."""
    lo, hi = (r.get("ci") or {}).get(key, (math.nan, math.nan))
    if math.isnan(lo):
        return _f(r[key], True)
    return f"{_f(r[key], True)} [{lo:+.3f}, {hi:+.3f}]"


def _f(v: float, signed: bool = False) -> str:
    return "n/a" if v is None or math.isnan(v) else (f"{v:+.3f}" if signed else f"{v:.3f}")


def markdown_table(result: EvalResult) -> str:
    """Base values, then each method's deltas, per concept (Table 3 layout)."""
    rows = [r.to_dict() for r in result.rows]
    methods = list(dict.fromkeys(method_label(r, rows) for r in rows))
    names = headers(rows)
    head = ["Concept", *(f"Base {h}" for h in names)]
    for m in methods:
        head += [f"{m} Δ{h}" for h in names]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for concept in dict.fromkeys(r["concept"] for r in rows):
        sel = {method_label(r, rows): r for r in rows if r["concept"] == concept}
        first = next(iter(sel.values()))
        cells = [concept, *(_f(first[f"base_{c}"]) for c in COLUMNS)]
        for m in methods:
            r = sel.get(m)
            cells += [_ci(r, f"d_{c}") if r else "" for c in COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    agg = aggregate(rows)
    if len(lines) > 3:
        cells = ["trimmed mean", *("" for _ in COLUMNS)]
        for m in methods:
            cells += [_f(agg[m][f"trim_d_{c}"], True) for c in COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def method_table(result: EvalResult) -> str:
    """One line per method: 10%-trimmed means over concepts of each delta, and of ΔPPL."""
    rows = [r.to_dict() for r in result.rows]
    agg = aggregate(rows)
    ppl = result.perplexity or {}
    base = ppl.get("base", math.nan)
    head = ["method", *(f"Δ{h}" for h in headers(rows))] + (["ΔPPL", "PPL"] if ppl else [])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for method, values in agg.items():
        cells = [method, *(_f(values[f"trim_d_{c}"], True) for c in COLUMNS)]
        if ppl:
            sel = [ppl.get(ppl_key(r, rows)) for r in rows if method_label(r, rows) == method]
            got = [v for v in sel if v is not None]
            d = float(trim_mean([v - base for v in got], 0.1)) if got else math.nan
            lo, hi = (f"{min(got):,.1f}", f"{max(got):,.1f}") if got else ("n/a", "n/a")
            span = lo if lo == hi else f"{lo}–{hi}"
            cells += [f"{d:+,.1f}" if got else "n/a", span]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def ppl_table(ppl: dict[str, float], ci: dict[str, list[float]] | None = None) -> str:
    if not ppl:
        return ""
    base = ppl.get("base", math.nan)
    ci = ci or {}
    lines = ["| Condition | PPL | ΔPPL | 95% interval |", "|---|---|---|---|"]
    for key, v in ppl.items():
        lo, hi = ci.get(key, ("", ""))
        span = f"[{lo:+.2f}, {hi:+.2f}]" if key in ci else ""
        lines.append(
            f"| {key} | {v:.2f} | {'' if key == 'base' else f'{v - base:+.2f}'} | {span} |"
        )
    return "\n".join(lines)


def summary(result: EvalResult) -> str:
    """Plain-text summary for the terminal."""
    out = [competence_line(result.competence)] if result.competence else []
    if result.calibration:
        out.append(f"Calibration: {calibration_text(result.calibration)}")
    out += [
        f"Concept erasure ({result.n_eval} eval examples"
        + (", curated" if result.curated else "")
        + (", calibrated" if result.calibrated else "")
        + ")"
    ]
    width = max(
        [
            8,
            *(
                len(method_label(r.to_dict(), [x.to_dict() for x in result.rows])) + 1
                for r in result.rows
            ),
        ]
    )
    out.append(f"{'concept':<12}{'method':<{width}}" + "".join(f"{h:>8}{'Δ':>8}" for h in HEADER))
    dicts = [r.to_dict() for r in result.rows]
    for d in dicts:
        vals = "".join(f"{d[c]:>8.3f}{d['d_' + c]:>+8.3f}" for c in COLUMNS)
        flag = "" if d.get("assessable", True) else "  (base cannot do this: no claim)"
        out.append(f"{d['concept'][:11]:<12}{method_label(d, dicts):<{width}}{vals}{flag}")
    if result.perplexity:
        base = result.perplexity.get("base", math.nan)
        out.append(
            "Perplexity: "
            + ", ".join(
                f"{k} {v:.2f}" + ("" if k == "base" else f" ({v - base:+.2f}{_ppl_ci(result, k)})")
                for k, v in result.perplexity.items()
            )
        )
    out += [f"  {d['concept'][:11]} {method_label(d, dicts)}: {ci_text(d)}" for d in dicts]
    out += diagnostics.summary_lines(dicts)
    if result.transfer:
        out += ["", "Transfer (how far the edit reaches):", transfer_table(result.transfer)]
    if result.seeds:
        out += ["", seeds_text(result.seeds["summary"])]
    if result.probe:
        out.append(probe_summary(result.probe))
    return "\n".join(out)


def _ppl_ci(result: EvalResult, key: str) -> str:
    """`` [lo, hi]``: the ΔPPL interval of one condition, when measured."""
    ci = result.ppl_ci.get(key)
    return f" [{ci[0]:+.2f}, {ci[1]:+.2f}]" if ci else ""


def _flat_ci(row: dict[str, Any]) -> dict[str, Any]:
    """A row with each 95 % interval as two columns (``<delta>_lo``, ``<delta>_hi``)."""
    out = dict(row)
    for key, (lo, hi) in (row.get("ci") or {}).items():
        out[f"{key}_lo"], out[f"{key}_hi"] = lo, hi
    return out


def csv_text(result: EvalResult) -> str:
    """The erasure rows as CSV, intervals as ``_lo``/``_hi`` columns."""
    rows = [_flat_ci(r.to_dict()) for r in result.rows]
    buf = io.StringIO()
    if rows:  # rows may carry different diagnostics: every column any row has
        fields = list(dict.fromkeys(k for r in rows for k in r))
        writer = csv.DictWriter(
            buf, fieldnames=[f for f in fields if f != "ci"], extrasaction="ignore"
        )
        writer.writeheader()
        writer.writerows(rows)
    return buf.getvalue()


def report_md(result: EvalResult, title: str) -> str:
    parts = [f"# {title}", ""]
    if result.competence:
        parts += ["## Base competence", "", competence_line(result.competence), ""]
    if result.calibration:
        parts += [f"Calibration: {calibration_text(result.calibration)}", ""]
    parts += ["## Concept erasure", "", method_table(result), ""]
    parts += ["Per concept:", "", markdown_table(result)]
    both = collateral_table(result)
    if both:
        parts += ["", "## Collateral, both definitions", "", both]
    if result.perplexity:
        parts += ["", "## Perplexity", "", ppl_table(result.perplexity, result.ppl_ci)]
    table = diagnostics.markdown_rows([r.to_dict() for r in result.rows])
    if table:
        parts += ["", "## Selectivity", "", diagnostics.EXPLAIN, "", table]
    if result.transfer:
        parts += ["", "## Transfer: how far the edit reaches", "", transfer_table(result.transfer)]
    if result.seeds:
        parts += ["", "## Across seeds", "", seeds_text(result.seeds["summary"])]
    if result.probe:
        parts += ["", "## Linear concept probe", "", probe_markdown(result.probe)]
    return "\n".join(parts) + "\n"


def results_doc(result: EvalResult, settings: dict[str, Any]) -> dict[str, Any]:
    doc = result.to_dict()
    doc["aggregate"] = aggregate(doc["erasure"])
    doc["settings"] = settings
    return doc


def result_files(result: EvalResult, settings: dict[str, Any], title: str) -> dict[str, str]:
    """The three result files, as name -> text (written by the caller, e.g. into an export)."""
    return {
        "results.json": json.dumps(results_doc(result, settings), indent=2, default=str) + "\n",
        "report.md": report_md(result, title),
        "results.csv": csv_text(result),
    }
