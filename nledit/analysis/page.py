"""The inspection report's page: a self-contained HTML page, rendered from an ``InspectReport``,
and the report folder (the page, its PNG figures and `analysis.json`) written atomically.

The page needs nothing beyond the file itself: CSS is inline, figures are embedded as
`data:image/png;base64,...` URIs and no script or external URL is used.
"""

from __future__ import annotations

import base64
import json
import math
from datetime import datetime, timezone
from html import escape
from pathlib import Path
from typing import Any

import numpy as np

from nledit.analysis.report import (
    ANALYSIS_JSON,
    OVERLAP_PNG,
    REPORT_HTML,
    REPORT_MARKERS,
    ExampleText,
    InspectReport,
)
from nledit.analysis.stats import OVERLAP_BIN_LABELS, AurocSummary
from nledit.folders.atomic import atomic_dir

_SNIPPET_CHARS = 160


# --------------------------------------------------------------------------- HTML rendering

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;
 margin:0;background:#f5f6f8;color:#1d2330;line-height:1.45}
main{max-width:1180px;margin:0 auto;padding:24px 28px 48px}
h1{font-size:1.6rem;margin:0 0 4px}h2{font-size:1.2rem;margin:0 0 10px;
 border-bottom:2px solid #dde1e8;padding-bottom:4px}h3{font-size:1rem;margin:16px 0 6px}
section{background:#fff;border:1px solid #e1e4ea;border-radius:8px;padding:16px 20px;
 margin:18px 0;box-shadow:0 1px 2px rgba(0,0,0,.04)}
.meta{color:#556;font-size:.92rem}.muted{color:#778;font-size:.9rem}
table{border-collapse:collapse;font-size:.88rem;margin:6px 0;width:100%}
th,td{border-bottom:1px solid #e6e8ee;padding:5px 8px;text-align:left;vertical-align:top}
th{background:#f0f2f6;font-weight:600}td.num,th.num{text-align:right;
 font-variant-numeric:tabular-nums;white-space:nowrap}
tr:hover td{background:#fafbfd}
img{max-width:100%;height:auto;display:block;margin:8px auto;border:1px solid #eceef2}
.fig-overlap img{max-width:720px}
.bounds{display:grid;grid-template-columns:repeat(3,1fr);gap:10px}
.bounds>div{background:#fafbfc;border:1px solid #e6e8ee;border-radius:6px;padding:8px}
.bounds h4{margin:0 0 4px;font-size:.9rem}.ex{font-size:.84rem;margin:6px 0;
 overflow-wrap:anywhere}.val{font-family:ui-monospace,Menlo,Consolas,monospace;
 font-size:.8rem;color:#345;background:#eef1f6;border-radius:3px;padding:0 4px;margin-right:4px}
.tag{font-size:.76rem;color:#556;background:#eef0f4;border-radius:3px;padding:0 4px}
details summary{cursor:pointer}
"""


def _fmt(value: Any, signed: bool = False, percent: bool = False) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        v = float(value)
        if not math.isfinite(v):
            return "–"
        if percent:
            return f"{100 * v:.1f}%"
        return f"{v:+.4f}" if signed else f"{v:.4f}"
    return escape(str(value))


def _share(p: float | None) -> str:
    return "top-p" if p is None else f"{p:.0%}"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)


def _table(
    header: list[str],
    rows: list[list[Any]],
    signed: set[str] | None = None,
    percent: set[str] | None = None,
) -> str:
    """An HTML table; numeric cells are right-aligned and formatted to four decimals.

    Columns named in `signed` get an explicit sign, those in `percent` are shown as percentages.
    """
    signed, percent = signed or set(), percent or set()
    numeric = [any(_is_number(r[i]) for r in rows) for i in range(len(header))]
    head = "".join(
        f'<th class="num">{escape(h)}</th>' if numeric[i] else f"<th>{escape(h)}</th>"
        for i, h in enumerate(header)
    )
    body = []
    for row in rows:
        cells = []
        for i, value in enumerate(row):
            cls = ' class="num"' if numeric[i] else ""
            text = _fmt(value, header[i] in signed, header[i] in percent)
            cells.append(f"<td{cls}>{text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _img(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{escape(alt)}">'


def _section(title: str, body: str, anchor: str) -> str:
    return f'<section id="{anchor}"><h2>{escape(title)}</h2>{body}</section>'


def _absent(what: str) -> str:
    return f'<p class="muted">{escape(what)}</p>'


def _stats_section(report: InspectReport) -> str:
    if not report.stats:
        return _absent("No distribution statistics were computed.")
    header = ["concept", "samples", "neurons*", "skew mean", "skew median", "kurt mean"]
    header += ["kurt median", "KS mean", "KS median", "practical normality"]
    keys = ["n_samples", "n_valid", "skewness_mean", "skewness_median", "kurtosis_mean"]
    keys += ["kurtosis_median", "ks_mean", "ks_median", "practical_normality"]
    rows = []
    for concept, st in report.stats.items():
        s = st.summary()
        rows.append([concept, *(s[k] for k in keys)])
    threshold = next(iter(report.stats.values())).ks_threshold
    note = (
        "Per neuron, over each concept's samples. Kurtosis is Pearson's (3 for a normal "
        "distribution). KS is the Kolmogorov–Smirnov statistic of the standardised activations "
        f"against N(0, 1); practical normality is the share of neurons with KS ≤ {threshold:g}. "
        "*Constant neurons are excluded."
    )
    return _table(header, rows) + f'<p class="muted">{escape(note)}</p>'


def _layer_section(report: InspectReport) -> str:
    rows = report.layer_stats or []
    if not rows:
        return _absent("No across-layer statistics were supplied.")
    keys = list(dict.fromkeys(k for r in rows for k in r))
    header = [k.replace("_", " ") for k in keys]
    note = (
        "Pooled over all concepts and non-constant neurons of each layer (as the paper's "
        "Table 9): mean Pearson kurtosis, mean skewness and the practical-normality share."
    )
    table = _table(header, [[r.get(k) for k in keys] for r in rows])
    return table + f'<p class="muted">{escape(note)}</p>'


def _overlap_section(report: InspectReport) -> str:
    parts = []
    if report.overlap_png:
        parts.append(f'<div class="fig-overlap">{_img(report.overlap_png, "overlap")}</div>')
        parts.append(
            '<p class="muted">Row i, column j: share of concept i\'s most salient '
            f"{_share(report.overlap_p)} neurons that are also among concept j's.</p>"
        )
    elif report.overlap_matrix is not None:
        names = report.overlap_names
        matrix = np.asarray(report.overlap_matrix)
        parts.append(
            _table(["", *names], [[n, *map(float, matrix[i])] for i, n in enumerate(names)])
        )
    else:
        parts.append(_absent("No saliency overlap was computed."))
    return "".join(parts)


def _pair_label(s: AurocSummary) -> str:
    return f"{s.concept_a} vs {s.concept_b}" if s.concept_b else s.concept_a


def _auroc_section(report: InspectReport) -> str:
    summaries = list(report.pair_overlaps)
    if report.pooled_overlap is not None:
        summaries.append(report.pooled_overlap)
    if not summaries:
        return _absent("Pairwise AUROC needs at least two concepts.")
    header = ["pair", "overlap Q1", "overlap median", "overlap Q3"]
    header += ["AUROC Q1", "AUROC median", "AUROC Q3", *OVERLAP_BIN_LABELS]
    rows = [
        [_pair_label(s), *s.overlap_quartiles, *s.auroc_quartiles]
        + [s.overlap_bins[b] for b in OVERLAP_BIN_LABELS]
        for s in summaries
    ]
    note = (
        "Per neuron, AUROC of telling the two concepts apart by activation value; overlap = "
        "1 − 2·|AUROC − 0.5| (1: identical distributions, 0: fully separated). The last four "
        "columns give the share of neurons per overlap band, as in the paper's Table 5."
    )
    table = _table(header, rows, percent=set(OVERLAP_BIN_LABELS))
    return table + f'<p class="muted">{escape(note)}</p>'


def _kde_section(report: InspectReport) -> str:
    if not report.kde_figures:
        return _absent("No KDE figures were drawn.")
    parts = [
        '<p class="muted">Class-conditional activation densities of each concept\'s top-, '
        "middle- and bottom-ranked neurons (by saliency). The shaded band is the target "
        "concept's range [lo, hi], the dashed line its mean.</p>"
    ]
    for fig in report.kde_figures:
        parts.append(f"<h3>Target: {escape(fig.concept)}</h3>")
        parts.append(_img(fig.png, f"KDE plots for {fig.concept}"))
    return "".join(parts)


def _example_html(ex: ExampleText) -> str:
    tag = f' <span class="tag">{escape(ex.concept)}</span>' if ex.concept else ""
    value = f'<span class="val">{ex.value:+.3f}</span>'
    text = ex.text
    if len(text) <= _SNIPPET_CHARS:
        return f'<div class="ex">{value}{escape(text)}{tag}</div>'
    short = escape(text[:_SNIPPET_CHARS].rstrip()) + "…"
    return (
        f'<div class="ex"><details><summary>{value}{short}{tag}</summary>'
        f"{escape(text)}</details></div>"
    )


def _bounds_section(report: InspectReport) -> str:
    if not report.bound_examples:
        return _absent("No sample texts were supplied.")
    parts = []
    for b in report.bound_examples:
        origin = "" if b.fitted else " (range computed here, no fitted range)"
        parts.append(
            f"<h3>{escape(b.concept)} · neuron {b.neuron} "
            f'<span class="tag">{escape(b.rank_group)}</span></h3>'
            f'<p class="meta">range [{b.lo:.3f}, {b.hi:.3f}], mean {b.mu:.3f}{escape(origin)}</p>'
        )
        cols = []
        for title, items in (("Lower bound", b.lower), ("Mean", b.mean), ("Upper bound", b.upper)):
            inner = "".join(_example_html(e) for e in items) or _absent("none")
            cols.append(f"<div><h4>{title}</h4>{inner}</div>")
        parts.append(f'<div class="bounds">{"".join(cols)}</div>')
    return "".join(parts)


def _erasure_section(report: InspectReport) -> str:
    rows = report.erasure_rows or []
    if not rows:
        return _absent("No erasure results were supplied.")
    keys = list(dict.fromkeys(k for r in rows for k in r))
    signed = {k for k in keys if k.lower().startswith(("d", "δ", "delta"))}
    return _table(keys, [[r.get(k) for k in keys] for r in rows], signed=signed)


def render_html(report: InspectReport) -> str:
    """The report as one HTML document with inline CSS and embedded images."""
    created = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    settings = ", ".join(f"{k} = {v}" for k, v in report.settings.items())
    header = (
        f"<h1>Neuron activation report: {escape(report.model_name)}</h1>"
        f'<p class="meta">layer {report.layer} · {len(report.concepts)} concepts: '
        f"{escape(', '.join(report.concepts))}</p>"
        + (f'<p class="meta">{escape(settings)}</p>' if settings else "")
        + f'<p class="muted">generated {created}</p>'
    )
    sections = [
        ("Distribution statistics", _stats_section(report), "stats"),
        ("Salient-set overlap", _overlap_section(report), "overlap"),
        ("Pairwise AUROC overlap", _auroc_section(report), "auroc"),
        ("Activation densities", _kde_section(report), "kde"),
        ("Texts at the range bounds", _bounds_section(report), "bounds"),
        ("Erasure results", _erasure_section(report), "erasure"),
    ]
    if report.layer_stats:
        sections.insert(1, ("Across layers", _layer_section(report), "layers"))
    if report.erasure_rows:  # the headline result goes first when there is one
        sections.insert(0, sections.pop())
    body = header + "".join(_section(t, b, a) for t, b, a in sections)
    title = escape(f"{report.model_name} · layer {report.layer}")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{title}</title><style>{_CSS}</style></head>"
        f"<body><main>{body}</main></body></html>\n"
    )


# --------------------------------------------------------------------------- writing


def write_report(out_dir: Path, report: InspectReport, overwrite: bool = False) -> Path:
    """Write report.html, analysis.json and the PNG figures into `out_dir`; return the HTML path.

    Written atomically (``outdir.atomic_dir``): a failure leaves no half-written report, and an
    existing `out_dir` is replaced only with `overwrite=True` and only if it is an earlier report.
    """
    out_dir = Path(out_dir)
    with atomic_dir(out_dir, overwrite, REPORT_MARKERS, "inspect report") as tmp:
        if report.overlap_png:
            (tmp / OVERLAP_PNG).write_bytes(report.overlap_png)
        for fig in report.kde_figures:
            (tmp / _plain_name(fig.filename)).write_bytes(fig.png)
        text = json.dumps(report.to_dict(), indent=2, allow_nan=False, ensure_ascii=False)
        (tmp / ANALYSIS_JSON).write_text(text + "\n", encoding="utf-8")
        (tmp / REPORT_HTML).write_text(render_html(report), encoding="utf-8")
    return out_dir / REPORT_HTML


def _plain_name(name: str) -> str:
    """Refuse figure names that would land outside the report directory or clash with it."""
    if not name or Path(name).name != name or name in {".", "..", REPORT_HTML, ANALYSIS_JSON}:
        raise ValueError(f"invalid figure file name {name!r}")
    return name
