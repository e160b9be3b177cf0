"""The pick of `nledit tune`: the most selective edit that beats the reference, never a no-op.

Selectivity of an edit (validation metrics, deltas against the unedited model):

    selectivity = mean over the measured pairs of (target drop − collateral change)
    accuracy pair:    −d_acc − |d_cacc|
    confidence pair:  −d_conf / conf_base − |d_cconf| / cconf_base   (relative changes)

It is high when the target goes down and the other concepts stay where they were; a collapse of
every label scores low (the collateral term cancels the drop); a no-op scores 0.

The rule, over finished trials:

1. No-ops are out: a trial must lower the target's accuracy by at least ``MIN_DROP`` or its
   confidence by at least ``MIN_CONF_DROP`` (relative), with at least one neuron.
2. Constraints, not an anchor: a trial qualifies when it beats the reference (the recipe's own
   edit on the same split) on collateral and perplexity: |d_cacc|, |relative d_cconf| and
   d_ppl no larger than the reference's. A reference that collapses every label sets loose
   bounds, one that does nothing sets bounds no real edit meets.
3. Among the qualifying trials (scored by ``cautious``: the target's ΔAcc at the upper end of
   its 95 % bootstrap interval and ΔCAcc at the largest magnitude its interval allows, so a
   drop or a harmlessness that noise could explain counts for less; or, when
   none qualifies, among all non-no-op trials, and the rule
   says so), keep those within ``keep`` of the best selectivity (selectivity >= keep × best),
   then take the smallest d_ppl, then the highest selectivity.

When every trial is a no-op there is no pick: ``NoPick`` says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ..errors import NleditError

MIN_DROP = 0.05  # target accuracy drop that makes an edit more than a no-op
MIN_CONF_DROP = 0.10  # or relative drop of the target's confidence
_TOL = 1e-9


class NoPick(NleditError, ValueError):
    """No finished trial lowers the target: nothing worth writing as a tuned recipe."""


@dataclass
class Pick:
    """The chosen trial and the rule that chose it, in words."""

    trial: Any
    rule: str
    qualified: bool = True  # False: no trial beat the reference; the most selective was taken


def _rel(a: dict[str, Any], delta: str, value: str) -> float | None:
    """A confidence change relative to the base value (``value`` - ``delta``), if measured."""
    if delta not in a:
        return None
    base = a[value] - a[delta] if value in a else None
    return a[delta] / base if base and base > _TOL else a[delta]


def selectivity(a: dict[str, Any]) -> float:
    """Target drop minus collateral change (module docstring), from a metrics mapping."""
    terms = []
    if "d_acc" in a and "d_cacc" in a:
        terms.append(-a["d_acc"] - abs(a["d_cacc"]))
    conf, cconf = _rel(a, "d_conf", "conf"), _rel(a, "d_cconf", "cconf")
    if conf is not None and cconf is not None:
        terms.append(-conf - abs(cconf))
    return sum(terms) / len(terms) if terms else math.nan


def cautious(a: dict[str, Any]) -> float:
    """Selectivity at the pessimistic ends of the 95 % intervals, when measured: the target's
    ΔAcc at its upper end (``d_acc_hi``) and the collateral ΔCAcc at its largest magnitude
    (``d_cacc_worst``), so validation noise can make a weak or a damaging edit look neither
    strong nor harmless."""
    worse = dict(a)
    for key, point in (("d_acc_hi", "d_acc"), ("d_cacc_worst", "d_cacc")):
        bound = a.get(key)
        if bound is not None and not math.isnan(bound):
            worse[point] = bound
    return selectivity(worse)


def is_noop(a: dict[str, Any]) -> bool:
    """True when the edit lowers neither the target's accuracy nor its confidence enough."""
    if int(a.get("k", 1)) == 0:
        return True
    acc_drop = -a.get("d_acc", 0.0)
    conf = _rel(a, "d_conf", "conf")
    conf_drop = -conf if conf is not None else 0.0
    return acc_drop < MIN_DROP - _TOL and conf_drop < MIN_CONF_DROP - _TOL


def beats(a: dict[str, Any], ref: dict[str, Any]) -> bool:
    """No more collateral damage (accuracy, relative confidence) and perplexity change than
    the reference, on every metric both measured."""
    pairs = [(a.get("d_cacc"), ref.get("d_cacc"))]
    pairs.append((_rel(a, "d_cconf", "cconf"), _rel(ref, "d_cconf", "cconf")))
    for mine, theirs in pairs:
        if mine is not None and theirs is not None and abs(mine) > abs(theirs) + _TOL:
            return False
    return not ("d_ppl" in a and "d_ppl" in ref and a["d_ppl"] > ref["d_ppl"] + _TOL)


def pick_trial(trials: list[Any], reference: dict[str, Any], keep: float = 0.9) -> Pick:
    """The rule of the module docstring over finished trials (``user_attrs`` hold metrics)."""
    if not trials:
        raise NoPick("tune: no finished trial to pick from")
    live = [t for t in trials if not is_noop(t.user_attrs)]
    if not live:
        raise NoPick(
            f"tune: none of the {len(trials)} finished trial(s) lowers the target (accuracy by "
            f"{MIN_DROP:g} or confidence by {MIN_CONF_DROP:.0%}); no tuned recipe written. "
            "Widen tune.space (more layers, larger top_p or tau) or run more trials"
        )
    ok = [t for t in live if beats(t.user_attrs, reference)]
    pool, qualified = (ok, True) if ok else (live, False)
    scores = {t.number: cautious(t.user_attrs) for t in pool}
    best = max(scores.values())
    floor = keep * best if best > 0 else best
    near = [t for t in pool if scores[t.number] >= floor - _TOL]

    def key(t: Any) -> tuple[float, ...]:
        return (t.user_attrs.get("d_ppl", 0.0), -scores[t.number], t.number)

    chosen = min(near, key=key)
    if qualified:
        rule = (
            f"smallest d_ppl among the {len(near)} trial(s) within {keep:g} of the best "
            f"selectivity ({best:+.3f}) of the {len(ok)} trial(s) that lower the target and beat "
            "the recipe's edit on collateral and perplexity"
        )
    else:
        rule = (
            "no trial beats the recipe's edit on both collateral and perplexity; took the "
            f"smallest d_ppl among the {len(near)} trial(s) within {keep:g} of the best "
            f"selectivity ({best:+.3f}) of the {len(live)} trial(s) that lower the target"
        )
    return Pick(chosen, rule + _drop_caveat(chosen.user_attrs), qualified)


def _drop_caveat(a: dict[str, Any]) -> str:
    """What the rule must add when the pick's validation interval does not show its target
    drop (``claims.below`` on the upper end ``d_acc_hi``): the drop is undecided, not shown."""
    from ..evaluation import claims

    hi = a.get("d_acc_hi")
    if hi is None or math.isnan(hi) or claims.below(a.get("d_acc", hi), hi) == claims.HOLDS:
        return ""
    return (
        f"; its validation ΔAcc interval reaches {hi:+.3f}: the target drop is not shown "
        "(undecided) on the validation split"
    )
