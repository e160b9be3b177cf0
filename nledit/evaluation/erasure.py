"""Evaluate an edit the way the paper does (§5.3): the concept-erasure table and perplexity.

For each target concept c: Acc and Conf (probability of the gold label) on c's examples, CAcc
and CConf on the other concepts' examples — macro (the mean of each other concept's mean) and
pooled (the mean over all other-concept examples), both reported, ``eval.collateral`` naming the
headline one — for the base model, range masking (the edit) and
neuron masking (same neurons, same operator on the whole neuron). All conditions share one pass
up to the edited layer (see ``fastpath``).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from tqdm.auto import tqdm

from ..data.concept import Batch, ConceptModel
from ..data.dataset import Examples
from ..fitting.collect import capture
from ..models.arch import Layout
from ..models.compat import with_cache
from ..models.fastpath import replay_from
from ..models.prefixcache import batch_cache
from ..runtime.edit import Edit
from ..runtime.gate import RangeGate, install_gates, remove_gates
from . import calibration, diagnostics
from .bootstrap import delta_intervals, stratified_indices
from .competence import assessable, competence
from .localhead import Firing, Local, applies, lap, local_reduce, read_token
from .metrics import collateral_both, condition_metrics
from .rows import ConceptRow as ConceptRow  # re-exported: their home is ``rows``
from .rows import EvalResult as EvalResult


@dataclass
class Condition:
    """One way of running the model: a method ("base", "range", "neuron") and its gates."""

    method: str
    concept: str | None
    gates: list[RangeGate]
    tag: str = ""  # the edit's name, when several edits share a run

    @property
    def key(self) -> str:
        if self.concept is None:
            return "base"
        return f"{self.method}:{self.concept}" + (f"@{self.tag}" if self.tag else "")


def conditions_for(edit: Edit) -> list[Condition]:
    """The base model, each of ``edit``'s range gates alone, and each baseline gate alone."""
    return conditions_of(edit.gates + edit.baseline)


def conditions_of(gates: list[RangeGate]) -> list[Condition]:
    """The base model, then each gate alone (tagged by edit when several edits share a run)."""
    conds = [Condition("base", None, [])]
    several = len({g.spec.edit for g in gates}) > 1
    for gate in gates:
        method = gate.spec.row
        tag = str(gate.spec.edit or "") if several else ""
        conds.append(Condition(method, gate.spec.concept, [gate], tag))
    return conds


@contextlib.contextmanager
def applied(model: Any, layers_path: str, gates: list[RangeGate]) -> Iterator[None]:
    """The model with exactly ``gates`` installed (none for the base model)."""
    install_gates(model, layers_path, gates)
    try:
        yield
    finally:
        remove_gates(model, gates)


def with_prefix(model: Any, inputs: dict[str, Any], prefix: Any) -> dict[str, Any]:
    """A batch's inputs with a fresh, batch-sized copy of a prompt-head cache."""
    inputs = dict(inputs)
    if prefix is not None:
        inputs = with_cache(model, inputs, batch_cache(prefix, inputs["input_ids"].shape[0]))
    return inputs


Reduce = Callable[[Any, Any], torch.Tensor]


@torch.no_grad()
def run_conditions(
    model: Any,
    layout: Layout,
    batches: Iterable[tuple[dict[str, Any], Any]],
    conditions: list[Condition],
    reduce: Reduce,
    prefixes: dict[str, Any] | None = None,
    fast: bool = True,
    total: int | None = None,
    desc: str = "eval",
    observe: Callable[[dict[int, torch.Tensor], Any], None] | None = None,
    local: Local | None = None,
    firing: Firing | None = None,
) -> dict[str, torch.Tensor]:
    """``reduce(model_output, context)`` per batch and condition, concatenated per condition.

    ``fast``: one base pass records the output of each condition's shallowest edited layer;
    each other condition then runs only the layers after its own. Otherwise one full forward
    pass per condition. ``observe(outputs, context)`` sees the base pass's recorded layer
    outputs of each batch (fast path only). ``local`` (fast path only): the per-token form of
    ``reduce``, for conditions gated on the last block only, which then reuse the base pass
    wherever their gates changed nothing (``localhead``); ``firing`` counts those positions and
    the seconds spent per condition.
    """
    start = {c.key: min(int(g.spec.layer) for g in c.gates) for c in conditions if c.gates}
    starts = sorted(set(start.values()))
    prefixes = prefixes or {}
    on_last = {c.key for c in conditions if applies(c.gates, layout)}
    out: dict[str, list[torch.Tensor]] = {c.key: [] for c in conditions}
    bar = tqdm(total=total, desc=desc, unit="batch", leave=False)
    for inputs, ctx in batches:
        t0 = time.perf_counter()
        states: dict[int, tuple[torch.Tensor, bool]] = {}
        if fast and starts:
            paths = {layer: layout.layer_path(layer) for layer in starts}
            with capture(model, paths, stop=False) as seen:
                res = model(**inputs)
            for layer, raw in seen.items():
                states[layer] = (raw[0], True) if isinstance(raw, tuple) else (raw, False)
            if observe is not None:
                observe({layer: h for layer, (h, _) in states.items()}, ctx)
        else:
            res = model(**inputs)
        local_ok = local is not None and bool(states) and bool(on_last)
        base_tokens = None
        if local is not None and local_ok:  # the base value is the per-token values reduced
            base_tokens = local.tokens(res, ctx)
            out["base"].append(local.combine(base_tokens, None, None, ctx).cpu())
        else:
            out["base"].append(reduce(res, ctx).cpu())
        t0 = lap(firing, "base", t0)
        for cond in conditions:
            if cond.concept is None:
                continue
            t0 = time.perf_counter()
            layer = start.get(cond.key, -1)
            if local is not None and local_ok and layer in states and cond.key in on_last:
                value, changed = local_reduce(
                    model, layout, cond.gates, states[layer], base_tokens, local, ctx
                )
                if firing is not None:
                    firing.add(cond.key, changed)
                out[cond.key].append(value.cpu())
                lap(firing, cond.key, t0)
                continue
            cond_inputs = with_prefix(model, inputs, prefixes.get(cond.key))
            with applied(model, layout.layers_path, cond.gates):
                if layer in states:
                    with replay_from(model, layout, layer, *states[layer]):
                        res = model(**cond_inputs)
                else:
                    res = model(**cond_inputs)
            out[cond.key].append(reduce(res, ctx).cpu())
            lap(firing, cond.key, t0)
        bar.update(1)
    bar.close()
    return {k: torch.cat(v) for k, v in out.items()}


def label_probs(
    cm: ConceptModel,
    texts: list[str],
    conditions: list[Condition],
    batch_size: int,
    fast: bool = True,
    observe: Callable[[dict[int, torch.Tensor], Any], None] | None = None,
    local: bool = True,
    firing: Firing | None = None,
) -> dict[str, torch.Tensor]:
    """Full-vocabulary label probabilities (N, C) per condition key (``observe``, ``firing``:
    see ``run_conditions``; ``local``: last-block edits project only the read tokens they
    changed)."""
    prefixes: dict[str, Any] = {}
    last = cm.layout.n_layers - 1
    heads = tqdm(conditions, desc="prompt head", unit="condition", leave=False)
    for cond in heads:  # the shared prompt head, as each condition's model sees it
        if not cm.use_prefix_cache:
            prefixes[cond.key] = None
        elif cond.gates and all(int(g.spec.layer) == last for g in cond.gates):
            # A gate on the last layer's output changes no key/value: the base head serves.
            prefixes[cond.key] = prefixes["base"]
        else:
            for g in cond.gates:  # the head holds no read token
                g.read_at(torch.empty(0, dtype=torch.long))
            with applied(cm.model, cm.layout.layers_path, cond.gates):
                prefixes[cond.key] = cm.prefix_cache()
            for g in cond.gates:
                g.read_at(None)
    gates = [g for c in conditions for g in c.gates]

    def batches() -> Iterator[tuple[dict[str, Any], Batch]]:
        for b in cm.batches(texts, batch_size, prefix=prefixes["base"]):
            for g in gates:  # "last"-position gates act on each row's read token
                g.read_at(b.read)
            yield b.inputs, b
        for g in gates:
            g.read_at(None)

    def reduce(res: Any, batch: Batch) -> torch.Tensor:
        return cm.label_probs(cm.read_logits(res, batch))

    n_batches = math.ceil(len(texts) / batch_size)
    return run_conditions(
        cm.model,
        cm.layout,
        batches(),
        conditions,
        reduce,
        prefixes,
        fast,
        n_batches,
        "eval",
        observe,
        read_token(reduce, cm.label_probs) if local and cm.is_lm else None,
        firing,
    )


@torch.no_grad()
def calibrate(cm: ConceptModel, batch_size: int) -> None:
    """Contextual calibration: label probabilities of a content-free query ("N/A")."""
    probs = label_probs(cm, ["N/A"], [Condition("base", None, [])], batch_size)
    cm.calibration = probs["base"][0]


def resolve_calibration(cm: ConceptModel, setting: Any, fit: Examples, batch_size: int) -> dict:
    """``calibration.resolve`` with the base model's label probabilities as the probe."""

    def base_probs(texts: list[str]) -> torch.Tensor:
        return label_probs(cm, texts, [Condition("base", None, [])], batch_size)["base"]

    return calibration.resolve(cm, setting, fit, base_probs)


def measure(
    cm: ConceptModel,
    examples: Examples,
    conds: list[Condition],
    batch_size: int,
    curate: bool = False,
    calibrated: bool = False,
    fast: bool = True,
    observe: Any | None = None,
    collateral: str = "macro",
) -> EvalResult:
    """The erasure table of ``conds`` on ``examples`` (``curate``: only the examples the base
    model gets right; ``calibrated``: contextual calibration first, for language models;
    ``observe``: a callback shown each batch's gated activations, for the firing rates;
    ``collateral``: the headline CAcc/CConf definition, macro or pooled)."""
    if calibrated and cm.is_lm:
        calibrate(cm, batch_size)
    gold = torch.tensor(examples.labels)
    probs = label_probs(cm, examples.texts, conds, batch_size, fast, observe)
    rows, comp, keep = rows_from_probs(cm, probs, gold, conds, curate, collateral)
    out = EvalResult(rows, {}, int(keep.sum()), curate, cm.calibration is not None)
    out.competence = comp
    return out


def rows_from_probs(
    cm: ConceptModel,
    probs: dict[str, torch.Tensor],
    gold: torch.Tensor,
    conds: list[Condition],
    curate: bool = False,
    collateral: str = "macro",
) -> tuple[list[ConceptRow], dict[str, Any], torch.Tensor]:
    """The erasure rows of ``conds`` from their label probabilities (``label_probs``), the
    base model's competence, and the mask of the examples kept (``curate``: those the base
    model gets right)."""
    preds = {k: cm.predict(p) for k, p in probs.items()}
    keep = torch.ones(len(gold), dtype=torch.bool)
    if curate:
        keep = preds["base"] == gold
    n = len(cm.label_names)
    targets = list(dict.fromkeys(c.concept for c in conds if c.concept is not None))
    comp = competence(preds["base"], gold, list(cm.label_names), targets)
    idx, order = stratified_indices(gold[keep])
    rows = []
    for cond in conds:
        if cond.concept is None:
            continue
        c = cm.label_names.index(cond.concept)
        k = cond.key
        base_pp = (probs["base"][keep], preds["base"][keep])
        edit_pp = (probs[k][keep], preds[k][keep])
        base = condition_metrics(*base_pp, gold[keep], c, n, collateral)
        edit = condition_metrics(*edit_pp, gold[keep], c, n, collateral)
        rows.append(
            ConceptRow(
                cond.concept,
                cond.method,
                *edit,
                *base,
                int((gold[keep] == c).sum()),
                int((gold[keep] != c).sum()),
                str(cond.gates[0].spec.edit or ""),
                str(cond.gates[0].spec.operator),
                diagnostics.label_stats(probs["base"][keep], probs[k][keep], gold[keep], c),
                collateral,
                collateral_both(base_pp, edit_pp, gold[keep], c, n),
                delta_intervals(base_pp, edit_pp, gold[keep], c, idx, order),
                assessable(comp, cond.concept),
            )
        )
    return rows, comp, keep
