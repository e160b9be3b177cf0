"""Is an edit selective? Gate firing rates, label-word mass and a plain verdict per edit.

Firing rate of a range gate: the share of (token, selected neuron) activations that fall inside
their ranges, i.e. the share the operator actually changes. Measured on the base model's
activations at the gate's layer (what the gate sees), for

- ``fire_target`` / ``fire_other``: the read token of the target concept's evaluation
  examples / of the other concepts' examples (averaged per concept, then over concepts);
- ``fire_target_all`` / ``fire_other_all``: every token of the examples' queries;
- ``fire_general``: every token of the perplexity text (general text).

Label mass: the full-vocabulary probability left on all label words together, averaged over
the other concepts' examples (``cmass``) and over the target's examples (``mass``), base and
edited. An edit that erases one concept moves the target's probability to other labels; one
that collapses every label sends the mass elsewhere, and calibrated accuracies computed from
what is left are noise. Raw accuracies (argmax without contextual calibration) are reported
next to the calibrated ones.

Verdict (``verdict``), first match; every bound is judged over the delta's 95 % interval
(``claims``: a bound holds or fails only over the whole interval):

- ``not assessable`` when the base model cannot do the task or the target (``claims.base_gate``):
  no claim either way;
- ``collapses every label`` when the other concepts' label mass falls below ``COLLAPSE`` × its
  base value;
- ``not selective`` when the other concepts' calibrated accuracy moves by more than
  ``MAX_CACC`` or their gold-label confidence by more than ``MAX_CCONF`` of its base value,
  over the whole interval;
- ``not selective`` when the gate fires on the other concepts' read tokens at ``SHARE`` or more
  of its rate on the target's (it cannot tell the concept from the others; neuron masking fires
  on every activation);
- ``no effect shown`` when neither the target's accuracy nor its confidence drops over the whole
  interval (an edit that does not lower its concept erases nothing, however selective);
- ``undecided`` when a collateral interval straddles its bound;
- else ``selective``.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable
from typing import Any

import torch

from ..data.concept import ConceptModel
from ..fitting.collect import StopForward, capture
from ..runtime.gate import RangeGate
from . import claims

EXPLAIN = (
    "How often each gate changes an activation (share of the selected neurons' activations "
    "inside their ranges, on the base model) at the read token of the edited concept's "
    "examples and of the other concepts' examples, over all their tokens, and on general "
    "text; the probability left on the label words over the other concepts' examples "
    "(base → edited); accuracies without calibration (base → edited); and the verdict."
)
COLLAPSE = 0.5  # other-concept label mass below half of the base model's: a collapse
FIRING = ("fire_target", "fire_other", "fire_target_all", "fire_other_all", "fire_general")
MAX_CACC = 0.10  # other concepts' accuracy change beyond this: collateral damage
MAX_CCONF = 0.25  # other concepts' confidence change beyond this share of its base value
SHARE = 0.8  # firing on other concepts at 80 % of the target's rate or more: not selective


def _inside(h: torch.Tensor, gate: RangeGate) -> torch.Tensor:
    """Share of the gate's neurons it acts on (inside their ranges, and the quorum met), per
    token (...,)."""
    x = h.index_select(-1, gate.index.to(h.device)).float()
    return gate.acts(x).float().mean(-1)


def _per_class(values: torch.Tensor, gold: torch.Tensor, concept: int) -> tuple[float, float]:
    """Mean over the target's examples; mean over the other concepts of their means."""
    target = values[gold == concept].mean().item() if (gold == concept).any() else math.nan
    others = [values[gold == c].mean().item() for c in gold.unique().tolist() if c != concept]
    return target, (sum(others) / len(others) if others else math.nan)


class FiringCounter:
    """Accumulates the firing of range gates over classification batches (base activations
    at each gate's layer); ``observe`` plugs into the erasure table's base pass."""

    def __init__(self, gates: list[RangeGate]) -> None:
        self.gates = [g for g in gates if g.spec.mode == "range"]
        self.layers = {int(g.spec.layer) for g in self.gates}
        self.read: dict[str, list[torch.Tensor]] = {g.spec.name: [] for g in self.gates}
        self.every: dict[str, list[torch.Tensor]] = {g.spec.name: [] for g in self.gates}

    def observe(self, states: dict[int, torch.Tensor], batch: Any) -> None:
        """One batch: ``states`` maps each gate layer to its output (B, T, d)."""
        width = batch.inputs["input_ids"].shape[1]
        mask = batch.inputs["attention_mask"][:, -width:].to("cpu").float()
        rows = torch.arange(mask.shape[0])
        for g in self.gates:
            if int(g.spec.layer) not in states:  # not recorded: firing_rates runs its own pass
                continue
            share = _inside(states[int(g.spec.layer)], g).to("cpu")  # (B, T)
            self.read[g.spec.name].append(share[rows, batch.read])
            self.every[g.spec.name].append((share * mask).sum(1) / mask.sum(1).clamp_min(1))

    def rates(self, label_names: list[str], labels: list[int]) -> dict[str, dict[str, float]]:
        """Per gate name: target / other-concept firing at the read token and on all tokens."""
        gold = torch.tensor(labels)
        out = {}
        for g in self.gates:
            name, c = g.spec.name, label_names.index(g.spec.concept)
            if not self.read[name]:
                continue
            t, o = _per_class(torch.cat(self.read[name]), gold, c)
            ta, oa = _per_class(torch.cat(self.every[name]), gold, c)
            out[name] = {
                "fire_target": t,
                "fire_other": o,
                "fire_target_all": ta,
                "fire_other_all": oa,
            }
        return out


@torch.no_grad()
def firing_rates(
    cm: ConceptModel,
    gates: list[RangeGate],
    texts: list[str],
    labels: list[int],
    batch_size: int,
    general: torch.Tensor | None = None,
    counter: FiringCounter | None = None,
) -> dict[str, dict[str, float]]:
    """Firing rates (module docstring) of each range gate, keyed by gate name. A ``counter``
    that already saw every batch (the erasure table's base pass) saves the pass over texts."""
    if counter is None or not all(counter.read.values()):
        counter = FiringCounter(gates)
        if not counter.gates:
            return {}
        paths = {layer: cm.layout.layer_path(layer) for layer in counter.layers}
        for b in cm.batches(texts, batch_size):
            with capture(cm.model, paths, stop=True) as seen, contextlib.suppress(StopForward):
                cm.model(**b.inputs)
            counter.observe(seen, b)
    out = counter.rates(cm.label_names, labels)
    if general is not None and len(general) and counter.gates:
        paths = {layer: cm.layout.layer_path(layer) for layer in counter.layers}
        for name, rate in _general_rates(cm, counter.gates, paths, general, batch_size).items():
            out.setdefault(name, {})["fire_general"] = rate
    return out


def _general_rates(
    cm: ConceptModel,
    gates: list[RangeGate],
    paths: dict[int, str],
    ids: torch.Tensor,
    batch_size: int,
) -> dict[str, float]:
    sums = dict.fromkeys((g.spec.name for g in gates), 0.0)
    for start in range(0, len(ids), batch_size):
        chunk = ids[start : start + batch_size].to(cm.device)
        with capture(cm.model, paths, stop=True) as seen, contextlib.suppress(StopForward):
            cm.model(input_ids=chunk, use_cache=False)
        for g in gates:
            sums[g.spec.name] += float(_inside(seen[int(g.spec.layer)], g).sum())
    return {name: s / ids.numel() for name, s in sums.items()}


def label_stats(
    base: torch.Tensor, edited: torch.Tensor, gold: torch.Tensor, concept: int
) -> dict[str, float]:
    """Label mass (target and others), base and edited, and raw (uncalibrated) accuracies."""
    out: dict[str, float] = {}
    for prefix, probs in (("base_", base), ("", edited)):
        mass = probs.sum(-1)
        hit = (probs.argmax(-1) == gold).float()
        out[f"{prefix}mass"], out[f"{prefix}cmass"] = _per_class(mass, gold, concept)
        out[f"{prefix}raw_acc"], out[f"{prefix}raw_cacc"] = _per_class(hit, gold, concept)
    return out


def verdict(row: dict[str, Any], comp: dict[str, Any] | None = None) -> tuple[str, bool]:
    """A plain verdict for one erasure row (``ConceptRow.to_dict()``) and whether it is
    selective (module docstring); ``comp``: the base model's ``competence``, when at hand."""
    nan = math.nan
    gated = claims.base_gate(row, comp)
    if gated:
        return gated, False
    base, mass = row.get("base_cmass", nan), row.get("cmass", nan)
    if base > 0 and mass < COLLAPSE * base:
        return (
            f"collapses every label: label-word probability on the other concepts "
            f"{base:.3f} -> {mass:.3f}",
            False,
        )
    cacc = claims.span(row, "d_cacc")
    cconf = row.get("base_cconf")
    rel = tuple(v / cconf if cconf else nan for v in claims.span(row, "d_cconf"))
    side = {
        "accuracy": (claims.within(*cacc, MAX_CACC), cacc, MAX_CACC, "{:+.3f}"),
        "confidence": (claims.within(*rel, MAX_CCONF), rel, MAX_CCONF, "{:+.0%}"),
    }
    failed = [k for k, v in side.items() if v[0] == claims.FAILS]
    if failed:
        return "not selective: " + _collateral(side, failed), False
    t, o = row.get("fire_target", nan), row.get("fire_other", nan)
    if o >= SHARE * t:
        return (
            f"not selective: fires on {o:.0%} of other-concept activations (target {t:.0%})",
            False,
        )
    acc, conf = claims.span(row, "d_acc"), claims.span(row, "d_conf")
    if claims.HOLDS not in (claims.below(*acc), claims.below(*conf)):
        return (
            f"no effect shown: the target's accuracy moves by {_span(acc)}, its confidence by "
            f"{_span(conf)}; neither interval shows a drop",
            False,
        )
    open_ = [k for k, v in side.items() if v[0] != claims.HOLDS]
    if open_:
        return "undecided: " + _collateral(side, open_), False
    if math.isnan(o):
        return "selective (other concepts kept; firing rates not measured)", True
    return f"selective: fires on {t:.0%} of target, {o:.0%} of other-concept activations", True


def _span(ci: tuple[float, float], fmt: str = "{:+.3f}") -> str:
    """``[lo, hi]``, or the point when both ends agree."""
    lo, hi = ci
    return fmt.format(lo) if lo == hi else f"[{fmt.format(lo)}, {fmt.format(hi)}]"


def _collateral(
    side: dict[str, tuple[str, tuple[float, float], float, str]], keys: list[str]
) -> str:
    """The other concepts' accuracy / relative confidence change against its bound, in words."""
    parts = []
    for k in keys:
        outcome, ci, bound, fmt = side[k]
        word = {claims.FAILS: "beyond", claims.HOLDS: "within"}.get(outcome, "straddles")
        limit = fmt.format(bound).lstrip("+")
        parts.append(f"the other concepts' {k} moves by {_span(ci, fmt)} ({word} ±{limit})")
    return "; ".join(parts)


def warnings_for(rows: Iterable[Any], comp: dict[str, Any] | None = None) -> list[str]:
    """One warning per range-masking row that is not selective (``ConceptRow`` objects;
    ``comp``: the base model's competence)."""
    out = []
    for r in rows:
        if r.method != "range" or not r.diag:
            continue
        text, ok = verdict(r.to_dict(), comp)
        if not ok:
            where = f"{r.edit}:{r.concept}" if r.edit else r.concept
            out.append(f"warning: edit {where} is {text}")
    return out


def _pct(v: Any) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.0%}"


def _num(v: Any) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3f}"


TABLE_HEAD = (
    "| Concept | Method | Fires: target | others | target (all tokens) | others (all tokens) "
    "| general text | Label mass, others: base → edited | Raw Acc | Raw CAcc | Verdict |"
)


def markdown_rows(rows: list[dict[str, Any]]) -> str:
    """The selectivity table (one line per erasure row that carries diagnostics)."""
    lines = [TABLE_HEAD, "|" + "---|" * 11]
    for r in rows:
        if "verdict" not in r:
            continue
        cells = [
            r["concept"],
            r["method"],
            *(_pct(r.get(k)) for k in ("fire_target", "fire_other", "fire_target_all")),
            *(_pct(r.get(k)) for k in ("fire_other_all", "fire_general")),
            f"{_num(r.get('base_cmass'))} → {_num(r.get('cmass'))}",
            f"{_num(r.get('base_raw_acc'))} → {_num(r.get('raw_acc'))}",
            f"{_num(r.get('base_raw_cacc'))} → {_num(r.get('raw_cacc'))}",
            r["verdict"],
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) if len(lines) > 2 else ""


def summary_lines(rows: list[dict[str, Any]]) -> list[str]:
    """Terminal lines: raw accuracy, label mass and the verdict of each diagnosed row."""
    out = []
    for r in rows:
        if "verdict" not in r:
            continue
        out.append(
            f"{r['concept'][:11]:<12}{r['method']:<10}raw Acc {_num(r.get('base_raw_acc'))}"
            f"->{_num(r.get('raw_acc'))} raw CAcc {_num(r.get('base_raw_cacc'))}"
            f"->{_num(r.get('raw_cacc'))} label mass {_num(r.get('base_cmass'))}"
            f"->{_num(r.get('cmass'))}; {r['verdict']}"
        )
    return out
