"""The sweep job behind `nledit sweep`: range masking against neuron masking over tau, top_p
or the edited layer.

The paper's ablations (App. I: tau, Fig. 4: share of masked neurons, App. F: layer) as one
cheap job for the first edit of a recipe:

- one statistics pass covers every swept layer (a tau or top_p sweep needs one layer);
- per value only ranges and gates are built (no model work);
- every (value, method, concept) becomes one evaluation condition, and all conditions share
  one base pass per batch (``run_conditions``: layers up to the edited one run once);
- conditions that are the same computation (neuron masking does not depend on tau) run once.

Outputs per sweep, in ``sweep.out``: ``sweep_<over>.csv``, ``.json``, ``.md`` and ``.png``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from ..evaluation.bootstrap import delta_intervals, stratified_indices
from ..evaluation.competence import assessable, competence
from ..evaluation.erasure import condition_metrics, label_probs, resolve_calibration
from ..evaluation.perplexity import general_perplexity
from ..fitting.build import prepare
from ..fitting.recipe_fit import load_for_recipe
from ..recipe import Recipe, recipe_hash
from ..version import __version__
from .files import check_outputs, summary, write_outputs
from .points import SweepPoint, build_points, conditions, default_values, swept_values
from .result import METHODS, SweepResult


def sweep(recipe: Recipe, text: str, command: str | None = None, log: Any = print) -> SweepResult:
    """Run the recipe's sweep (``recipe.sweep``) and return its table."""
    spec, edit = recipe.sweep, recipe.edits[0]
    over = spec.over
    t0 = time.perf_counter()
    recipe, data, source, cm, layout, layers = load_for_recipe(recipe)
    values = spec.values or default_values(over, layout.n_layers)
    values, at = swept_values(recipe, over, values, layout.n_layers, layers[0])
    t1 = time.perf_counter()
    wanted = sorted(set(at))
    log(f"statistics: {len(data.fit)} examples, one pass for layer(s) {wanted}")
    prep = prepare(cm, data.fit, [edit], wanted, recipe.batch_size, recipe.seed, desc="statistics")
    t2 = time.perf_counter()
    points = build_points(recipe, over, values, at, prep)
    conds = conditions(points)
    t3 = time.perf_counter()
    log(
        f"{over} sweep: {len(values)} values x {len(METHODS)} methods x "
        f"{len(edit.concepts)} concept(s) = {len(points)} edits, {len(conds) - 1} distinct; "
        f"{len(data.eval)} eval examples"
    )
    resolve_calibration(cm, recipe.prompt.calibrate, data.fit, recipe.batch_size)
    ev = data.eval
    probs = label_probs(cm, ev.texts, conds, recipe.batch_size)
    t4 = time.perf_counter()
    e = recipe.eval
    ppl_ci: dict[str, list[float]] = {}
    ppl = general_perplexity(
        cm,
        conds,
        e.perplexity_window,
        e.perplexity_windows,
        recipe.batch_size,
        source=e.perplexity_source,
        steps=e.perplexity_preprocess,
        intervals=ppl_ci,
    )
    t5 = time.perf_counter()
    gold = torch.tensor(ev.labels)
    preds = {k: cm.predict(p) for k, p in probs.items()}
    keep = preds["base"] == gold if e.curate else torch.ones(len(gold), dtype=torch.bool)
    comp = competence(preds["base"], gold, list(data.label_names), list(edit.concepts))
    rows = _rows(points, probs, preds, gold, keep, (ppl, ppl_ci), data.label_names, over)
    for r in rows:
        r["assessable"] = assessable(comp, r["concept"])
    base = {"ppl": ppl["base"]} if ppl else {}
    if rows:
        base |= {k: rows[0][f"base_{k}"] for k in ("acc", "conf", "cacc", "cconf", "label_mass")}
    settings = {
        "model": source.origin,
        "layer": at[0] if over != "layer" else None,
        "n_layers": layout.n_layers,
        "hidden_size": layout.hidden_size,
        "concepts": list(edit.concepts),
        "saliency": edit.saliency,
        "top_p": edit.top_p if over != "top_p" else None,
        "tau": edit.tau if over != "tau" else None,
        "operator": edit.operator.model_dump(),
        "n_eval": int(keep.sum()),
        "n_fit": len(data.fit),
        "curated": e.curate,
        "calibrated": cm.calibration is not None,
        "conditions": len(conds) - 1,
        "recipe_sha256": recipe_hash(text),
        "nledit": __version__,
        "command": command,
        "competence": comp,
    }
    timings = {
        "load_s": t1 - t0,
        "statistics_s": t2 - t1,
        "gates_s": t3 - t2,
        "eval_s": t4 - t3,
        "perplexity_s": t5 - t4,
        "total_s": time.perf_counter() - t0,
    }
    return SweepResult(over, values, rows, settings, base, timings)


def _rows(
    points: list[SweepPoint],
    probs: dict[str, torch.Tensor],
    preds: dict[str, torch.Tensor],
    gold: torch.Tensor,
    keep: torch.Tensor,
    perplexity: tuple[dict[str, float], dict[str, list[float]]],
    label_names: list[str],
    over: str,
) -> list[dict[str, Any]]:
    """One row per swept edit: values, deltas with their 95 % intervals (``<delta>_lo``,
    ``<delta>_hi``; ΔPPL over the perplexity windows), k and range width."""
    n = len(label_names)
    ppl, ppl_ci = perplexity
    idx, order = stratified_indices(gold[keep])
    rows = []
    for p in points:
        c = label_names.index(p.concept)
        base_pp = (probs["base"][keep], preds["base"][keep])
        edit_pp = (probs[p.key][keep], preds[p.key][keep])
        base = condition_metrics(*base_pp, gold[keep], c, n)
        edit = condition_metrics(*edit_pp, gold[keep], c, n)
        ci = delta_intervals(base_pp, edit_pp, gold[keep], c, idx, order)
        ci["d_cacc"], ci["d_cconf"] = ci.get("d_cacc_macro"), ci.get("d_cconf_macro")
        g = p.gate
        width = (g.hi - g.lo).mean().item() if p.method == "range" else None
        row: dict[str, Any] = {
            over: p.value,
            "method": p.method,
            "concept": p.concept,
            "layer": p.layer,
            "k": int(g.spec.k),
            "tau": g.spec.params["tau"],
            "top_p": g.spec.top_p,
            "mean_width": width,
        }
        for i, name in enumerate(("acc", "conf", "cacc", "cconf")):
            row[name], row[f"base_{name}"] = edit[i], base[i]
            row[f"d_{name}"] = edit[i] - base[i]
            row[f"d_{name}_lo"], row[f"d_{name}_hi"] = ci.get(f"d_{name}") or (None, None)
        # Probability on any label word: near 0, the edit broke the answer format rather
        # than the concept, and (calibrated) accuracy no longer measures erasure.
        row["label_mass"] = probs[p.key][keep].sum(-1).mean().item()
        row["base_label_mass"] = probs["base"][keep].sum(-1).mean().item()
        if ppl:
            row["ppl"], row["d_ppl"] = ppl[p.key], ppl[p.key] - ppl["base"]
            row["d_ppl_lo"], row["d_ppl_hi"] = ppl_ci.get(p.key) or (None, None)
        row["n_target"] = int((gold[keep] == c).sum())
        row["n_other"] = int((gold[keep] != c).sum())
        rows.append(row)
    return rows


def run_sweep(
    recipe: Recipe, text: str, command: str | None = None, log: Any = print
) -> tuple[SweepResult, dict[str, Path]]:
    """Check the destination, sweep, write the four files, print a summary."""
    out = Path(recipe.sweep.out)
    check_outputs(out, recipe.sweep.over, recipe.output.overwrite)
    result = sweep(recipe, text, command, log)
    paths = write_outputs(result, out)
    log(summary(result))
    log(f"sweep written to {paths['.md']} ({result.timings['total_s']:.0f} s)")
    return result, paths
