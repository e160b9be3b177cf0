"""The four files of a sweep: ``sweep_<over>.csv``, ``.json``, ``.md`` (a table per concept)
and ``.png`` (the figure of ``sweep_plot``)."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

from ..checkpoint.write import ExportError
from .result import METHODS, SweepResult

SUFFIXES = (".csv", ".json", ".md", ".png")


def csv_text(result: SweepResult) -> str:
    buf = io.StringIO()
    if result.rows:
        writer = csv.DictWriter(buf, fieldnames=list(result.rows[0]))
        writer.writeheader()
        writer.writerows(result.rows)
    return buf.getvalue()


def _f(v: Any, signed: bool = False, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    return f"{v:+.{digits}f}" if signed else f"{v:.{digits}f}"


def _ci(r: dict[str, Any], key: str, digits: int = 3) -> str:
    """A value, and for a delta its 95 % interval when the row holds one."""
    point = _f(r.get(key), key.startswith("d_"), digits)
    lo, hi = r.get(f"{key}_lo"), r.get(f"{key}_hi")
    if lo is None or hi is None or point == "n/a":
        return point
    return f"{point} [{lo:+.{digits}f}, {hi:+.{digits}f}]"


def competence_text(result: SweepResult) -> str:
    """The base model's competence line (empty for a sweep written before it was stored)."""
    from ..evaluation.competence import line

    comp = result.settings.get("competence")
    return line(comp) if comp else ""


def _flag(rows: list[dict[str, Any]]) -> str:
    """The mark of a line whose base model cannot do the task or the concept."""
    return " ⚠ base cannot: no claim" if any(r.get("assessable") is False for r in rows) else ""


def _value(over: str, v: int | float) -> str:
    return str(int(v)) if over == "layer" else f"{v:g}"


def markdown(result: SweepResult) -> str:
    """The command, the setting, the base model's values, then one line per value (and concept)."""
    s, over = result.settings, result.over
    has_ppl = "ppl" in result.base
    concepts = s["concepts"]
    fixed = [f"layer {s['layer']}" if s["layer"] is not None else None]
    fixed += [f"top_p {s['top_p']}" if s["top_p"] is not None else None]
    fixed += [f"tau {s['tau']}" if s["tau"] is not None else None]
    fixed = [f for f in fixed if f]
    lines = [f"# nledit sweep over {over}: range masking vs neuron masking", ""]
    if s.get("command"):
        lines += ["```", s["command"], "```", ""]
    lines += [
        f"Model `{s['model']}`, concept(s) {', '.join(concepts)}, {s['saliency']} saliency, "
        f"operator {s['operator']['name']}, {', '.join(fixed)}; {s['n_eval']} eval examples"
        + (" (curated)" if s["curated"] else "")
        + (", calibrated" if s["calibrated"] else "")
        + f"; statistics from {s['n_fit']} fitting examples. "
        f"{s['conditions']} distinct edited conditions, wall time "
        f"{result.timings.get('total_s', math.nan):.0f} s.",
        "",
        "Base model: "
        + ", ".join(
            f"{h} {_f(result.base.get(k))}"
            for h, k in (("Acc", "acc"), ("Conf", "conf"), ("CAcc", "cacc"), ("CConf", "cconf"))
        )
        + (f", PPL {result.base['ppl']:.2f}" if has_ppl else "")
        + f", label mass {_f(result.base.get('label_mass'))}"
        + ". Acc/Conf: target concept; CAcc/CConf: the other concepts (collateral). "
        "Values are deltas against the base model, except label mass; in brackets the paired "
        "bootstrap 95 % interval (ΔPPL: over the perplexity windows).",
        "",
    ]
    comp = competence_text(result)
    if comp:
        lines += [comp + ".", ""]
    metrics = [("ΔAcc", "d_acc"), ("ΔConf", "d_conf"), ("ΔCAcc", "d_cacc"), ("ΔCConf", "d_cconf")]
    if has_ppl:
        metrics.append(("ΔPPL", "d_ppl"))
    metrics.append(("mass", "label_mass"))
    head = [over] + (["concept"] if len(concepts) > 1 else []) + ["k", "range width"]
    for method in METHODS:
        head += [f"{method} {h}" for h, _ in metrics]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for value in result.values:
        for concept in concepts:
            sel = {
                r["method"]: r for r in result.rows if r[over] == value and r["concept"] == concept
            }
            if not sel:
                continue
            rng = sel["range"]
            cells = [_value(over, value) + _flag(list(sel.values()))]
            cells += [concept] if len(concepts) > 1 else []
            cells += [str(rng["k"]), _f(rng["mean_width"], digits=2)]
            for method in METHODS:
                r = sel[method]
                cells += [_ci(r, k, 2 if k == "d_ppl" else 3) for _, k in metrics]
            lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "k: neurons edited; range width: mean of hi - lo = 2·tau·sigma over those neurons. "
        "Neuron masking applies the same operator to the same k neurons whatever their value"
        + (", so it does not change with tau." if over == "tau" else ".")
        + " mass: mean probability on any of the label words (all examples); when an edit drives "
        "it towards 0 the model no longer answers with a label at all, and accuracy after "
        "contextual calibration says little about erasure: read Conf and CConf then.",
    ]
    return "\n".join(lines) + "\n"


def summary(result: SweepResult) -> str:
    """A short terminal table: target and collateral accuracy deltas (and ΔPPL) per value,
    with their 95 % intervals for a one-concept sweep (the mean over concepts otherwise)."""
    over = result.over
    has_ppl = "ppl" in result.base
    keys = ("d_acc", "d_cacc") + (("d_ppl",) if has_ppl else ())
    one = len(result.settings.get("concepts", [])) == 1
    w = 26 if one else 14
    head = f"{over:>8}  {'k':>5}  " + "  ".join(
        f"{m + ' ' + h:>{w}}" for m in METHODS for h in ("ΔAcc", "ΔCAcc", "ΔPPL")[: len(keys)]
    )
    comp = competence_text(result)
    out = ([comp] if comp else []) + [head]
    for value in result.values:
        sel = [r for r in result.rows if r[over] == value]
        line = f"{_value(over, value):>8}  {sel[0]['k']:>5}  "
        cells = []
        for m in METHODS:
            rs = [r for r in sel if r["method"] == m]
            for k in keys:
                digits = 2 if k == "d_ppl" else 3
                text = _ci(rs[0], k, digits) if one else f"{sum(r[k] for r in rs) / len(rs):+.3f}"
                cells.append(f"{text:>{w}}")
        out.append(line + "  ".join(cells) + _flag(sel))
    if not one:
        out.append("(means over the concepts; each concept's 95 % intervals are in the .md table)")
    return "\n".join(out)


def _finite(x: Any) -> Any:
    """NaN (a metric with no examples) as JSON null."""
    if isinstance(x, float) and math.isnan(x):
        return None
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_finite(v) for v in x]
    return x


def paths_for(out: Path, over: str) -> dict[str, Path]:
    return {suffix: out / f"sweep_{over}{suffix}" for suffix in SUFFIXES}


def check_outputs(out: Path, over: str, overwrite: bool) -> None:
    """Refuse to replace an earlier sweep's files unless ``overwrite`` (before any work)."""
    if out.exists() and not out.is_dir():
        raise ExportError(f"sweep.out: {out} exists and is not a directory")
    existing = [p.name for p in paths_for(out, over).values() if p.exists()]
    if existing and not overwrite:
        raise ExportError(
            f"sweep.out: {out} already holds {', '.join(existing)} (pass --overwrite to replace)"
        )


def write_outputs(result: SweepResult, out: Path) -> dict[str, Path]:
    from .plot import plot_sweep

    out.mkdir(parents=True, exist_ok=True)
    paths = paths_for(out, result.over)
    paths[".csv"].write_text(csv_text(result), encoding="utf-8")
    doc = json.dumps(_finite(result.to_dict()), indent=2, default=str)
    paths[".json"].write_text(doc + "\n", encoding="utf-8")
    md = markdown(result) + f"\n![sweep over {result.over}]({paths['.png'].name})\n"
    paths[".md"].write_text(md, encoding="utf-8")
    plot_sweep(result, paths[".png"])
    return paths
