"""`nledit sweep`: range masking against neuron masking over tau, top_p or the edited layer.

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

import argparse
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from pydantic import ValidationError

from ..errors import EditError
from ..evaluation.bootstrap import delta_intervals, stratified_indices
from ..evaluation.competence import assessable, competence
from ..evaluation.erasure import Condition, condition_metrics, label_probs, resolve_calibration
from ..evaluation.perplexity import general_perplexity
from ..fitting.build import prepare
from ..fitting.prepare import Prepared
from ..fitting.prepare import gates as edit_gates
from ..fitting.recipe_fit import load_for_recipe
from ..folders.preflight import recipe_inputs
from ..models.arch import resolve_layer
from ..recipe import EditSpec, Recipe, load_recipe_text, recipe_hash
from ..runtime import operators
from ..runtime.gate import RangeGate, tensor_names
from ..sweep.files import check_outputs, summary, write_outputs
from ..sweep.result import METHODS, SweepResult
from ..version import __version__
from .args import check_outputs as check_folders
from .args import recipe_from_args

DEFAULT_TAUS = [round(0.3 * i, 1) for i in range(1, 16)]  # Table 17: 0.3, 0.6, ..., 4.5
DEFAULT_TOP_PS = [0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]  # Fig. 4, 5%..100%
LAYER_SPREAD = 6
LABELS = ("name", "method", "edit", "concept", "k", "saliency", "top_p")  # names, not behaviour


def layer_spread(n_layers: int, count: int = LAYER_SPREAD) -> list[int]:
    """About ``count`` evenly spaced layers from the first to the last (App. F)."""
    if n_layers <= count:
        return list(range(n_layers))
    return sorted({round(i * (n_layers - 1) / (count - 1)) for i in range(count)})


def default_values(over: str, n_layers: int) -> list[int | float]:
    if over == "tau":
        return list(DEFAULT_TAUS)
    if over == "top_p":
        return list(DEFAULT_TOP_PS)
    return list(layer_spread(n_layers))


def fingerprint(gate: RangeGate) -> str:
    """What a gate computes: equal fingerprints give equal outputs, whatever the names say.

    Everything counts except labels and the settings a gate is known not to read: a neuron
    gate ignores its range, so it is the same for every tau (unless the operator is
    ``adaptive``, whose phi reads tau, mu and sigma). Unknown settings always count.
    """
    s = gate.spec.to_dict()
    mode = gate.spec.mode
    entry = operators.OPERATORS.get(gate.spec.operator)  # an unknown one: every setting counts
    known = operators.known_params()
    used = entry.params if entry else known
    params = {k: v for k, v in gate.spec.params.items() if k in used or k not in known}
    head = {k: v for k, v in s.items() if k not in LABELS and k != "params"}
    h = hashlib.sha256(json.dumps([head, params], sort_keys=True, default=str).encode())
    for name in tensor_names(gate.spec):
        if (name in ("lo", "hi") and mode != "range") or (
            name in ("mu", "sigma") and entry is not None and not entry.mu_sigma
        ):
            continue
        t = getattr(gate, name).detach().to("cpu").contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


@dataclass
class SweepPoint:
    """One (value, method, concept): its gate and the condition that evaluates it."""

    value: int | float
    method: str
    concept: str
    layer: int
    gate: RangeGate
    key: str = ""  # the condition key that holds its numbers (shared by identical gates)


def _conditions(points: list[SweepPoint]) -> list[Condition]:
    """One condition per distinct gate; each point learns the key holding its numbers."""
    by_print: dict[str, str] = {}
    conds = [Condition("base", None, [])]
    for p in points:
        fp = fingerprint(p.gate)
        if fp not in by_print:
            cond = Condition(f"{p.method}#{len(conds)}", p.concept, [p.gate])
            by_print[fp] = cond.key
            conds.append(cond)
        p.key = by_print[fp]
    return conds


def swept_edit(edit: EditSpec, over: str, value: int | float) -> EditSpec:
    """``edit`` with ``over`` set to ``value``, validated as a recipe edit (its bounds)."""
    try:
        return EditSpec.model_validate({**edit.model_dump(), over: value})
    except ValidationError as err:
        why = "; ".join(e["msg"] for e in err.errors())
        raise EditError(f"sweep.values: {over} = {value!r} is not a valid edit ({why})") from None


def build_points(
    recipe: Recipe, over: str, values: list[int | float], layers: list[int], prep: Prepared
) -> list[SweepPoint]:
    """Ranges and both gates of the first edit at every value (no model work)."""
    edit = recipe.edits[0]
    points = []
    for value, layer in zip(values, layers):
        changed = edit if over == "layer" else swept_edit(edit, over, value)
        for table, built in edit_gates(prep, changed, 0, layer, METHODS):
            for method in METHODS:
                points.append(SweepPoint(value, method, table.concept, layer, built[method]))
    return points


def _swept(
    recipe: Recipe, over: str, values: list[int | float], n_layers: int, base_layer: int
) -> tuple[list[int | float], list[int]]:
    """The values (layer values resolved, repeats dropped) and the layer of each."""
    if over != "layer":
        return list(values), [base_layer] * len(values)
    resolved = list(dict.fromkeys(resolve_layer(int(v), n_layers) for v in values))
    return list(resolved), resolved


def sweep(recipe: Recipe, text: str, command: str | None = None, log: Any = print) -> SweepResult:
    """Run the recipe's sweep (``recipe.sweep``) and return its table."""
    spec, edit = recipe.sweep, recipe.edits[0]
    over = spec.over
    t0 = time.perf_counter()
    recipe, data, source, cm, layout, layers = load_for_recipe(recipe)
    values = spec.values or default_values(over, layout.n_layers)
    values, at = _swept(recipe, over, values, layout.n_layers, layers[0])
    t1 = time.perf_counter()
    wanted = sorted(set(at))
    log(f"statistics: {len(data.fit)} examples, one pass for layer(s) {wanted}")
    prep = prepare(cm, data.fit, [edit], wanted, recipe.batch_size, recipe.seed, desc="statistics")
    t2 = time.perf_counter()
    points = build_points(recipe, over, values, at, prep)
    conds = _conditions(points)
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


def cmd_sweep(args: argparse.Namespace) -> int:
    """`nledit sweep`: the flags become ``sweep.*`` overrides, shown as the command in the table."""
    extra, shown = [], [f"nledit sweep {args.recipe}"]
    if args.over:
        extra.append(f"sweep.over={args.over}")
        shown.append(f"--over {args.over}")
    values = ",".join(v.strip(",") for v in args.values or [])
    if values:
        extra.append(f"sweep.values=[{values}]")
        shown.append(f"--values {values}")
    elif args.over:  # the recipe's values belong to the recipe's own `over`
        _, raw = load_recipe_text(args.recipe)
        section = raw.get("sweep") if isinstance(raw, dict) else None
        if isinstance(section, dict) and section.get("over", "tau") != args.over:
            extra.append("sweep.values=null")
    if args.sweep_out:
        extra.append(f"sweep.out={args.sweep_out}")
        shown.append(f"--out {args.sweep_out}")
    shown += [f"--set {item}" for item in args.set or []]
    args.set = (args.set or []) + extra
    recipe, text = recipe_from_args(args)
    check_folders(("sweep.out", recipe.sweep.out), inputs=recipe_inputs(recipe), itself=True)
    run_sweep(recipe, text, command=" ".join(shown))
    return 0
