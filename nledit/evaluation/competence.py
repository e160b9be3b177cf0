"""Can the base model do the task at all? Checked before any erasure claim is made.

From the unedited model's predictions on the evaluation examples: per-class accuracy, balanced
accuracy (mean of per-class accuracies) and macro-F1, each with a seeded bootstrap interval
(``bootstrap``), against chance (``1 / classes``: the balanced accuracy of any constant or random
guess). Verdicts, first match:

task
- ``cannot`` when the balanced-accuracy interval reaches down to chance, or one label takes
  ``DOMINANT`` of the way from its gold share to all predictions (share ≥ gold + DOMINANT ×
  (1 − gold));
- ``weak`` when balanced accuracy is below ``WEAK`` of the way from chance to 1;
- else ``can do it``.

target concept
- ``cannot`` when its accuracy is under ``TARGET_FLOOR``, its accuracy's interval reaches down
  to chance (the concept itself is at chance, even when the task as a whole is not), or it is
  the dominant label above (its accuracy then says nothing);
- ``weak`` when its accuracy is under ``TARGET_WEAK``;
- else ``can do it``.

An erasure claim on a concept needs a task and a target that are not ``cannot``.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from .bootstrap import RESAMPLES, SEED, class_means, percentile, stratified_indices

DOMINANT = 0.5
WEAK = 0.5
TARGET_FLOOR = 0.5
TARGET_WEAK = 0.7
CANNOT, WEAK_V, CAN = "cannot", "weak", "can do it"


def _f1(pred: torch.Tensor, gold_cols: torch.Tensor, n: int) -> torch.Tensor:
    """Macro-F1 per resample from resampled predictions (R, N) and the columns' classes."""
    scores = []
    for c in range(n):
        truth = gold_cols == c
        if not truth.any():
            continue
        said = pred == c
        tp = (said & truth).sum(1).double()
        fp = (said & ~truth).sum(1).double()
        fn = truth.sum().double() - tp
        scores.append(2 * tp / (2 * tp + fp + fn).clamp_min(1))
    return torch.stack(scores).mean(0)


def competence(
    pred: torch.Tensor,
    gold: torch.Tensor,
    label_names: list[str],
    targets: list[str],
    resamples: int = RESAMPLES,
    seed: int = SEED,
) -> dict[str, Any]:
    """The base model's competence (module docstring) as plain data."""
    n = len(label_names)
    chance = 1.0 / n
    hit = (pred == gold).double()
    idx, order = stratified_indices(gold, resamples, seed)
    per = class_means(hit, idx, order)
    present = sorted(per)
    bal_r = torch.stack([per[c] for c in present]).mean(0)
    f1_r = _f1(pred[idx], order.unsqueeze(0).expand_as(idx), n)
    per_class = {}
    for c in present:
        acc = hit[gold == c].mean().item()
        per_class[label_names[c]] = {"acc": acc, "ci": list(percentile(per[c]))}
    bal = sum(v["acc"] for v in per_class.values()) / len(per_class)
    f1 = float(_f1(pred.unsqueeze(0), gold.unsqueeze(0).expand(1, -1), n)[0])
    share = torch.bincount(pred, minlength=n).double() / len(pred)
    gold_share = torch.bincount(gold, minlength=n).double() / len(gold)
    top = int(share.argmax())
    dominant = bool(share[top] >= gold_share[top] + DOMINANT * (1 - gold_share[top]))
    bal_ci = percentile(bal_r)
    if bal_ci[0] <= chance:
        task, why = CANNOT, f"balanced accuracy's interval reaches chance ({chance:.2f})"
    elif dominant:
        task, why = CANNOT, f"{label_names[top]!r} takes {float(share[top]):.0%} of predictions"
    elif bal < chance + WEAK * (1 - chance):
        task, why = (
            WEAK_V,
            f"balanced accuracy {bal:.2f} is under {chance + WEAK * (1 - chance):.2f}",
        )
    else:
        task, why = CAN, f"balanced accuracy {bal:.2f} clears chance ({chance:.2f})"
    target_out = {}
    for t in targets:
        acc = per_class.get(t, {}).get("acc", math.nan)
        if dominant and label_names[top] == t:
            v, w = CANNOT, f"{t!r} is predicted for {float(share[top]):.0%} of all inputs"
        elif not acc >= TARGET_FLOOR:
            v, w = CANNOT, f"accuracy on {t!r} is {acc:.2f}, under {TARGET_FLOOR:.2f}"
        elif not per_class[t]["ci"][0] > chance:
            lo, hi = per_class[t]["ci"]
            v, w = CANNOT, f"accuracy on {t!r} {acc:.2f} [{lo:.2f}, {hi:.2f}] reaches chance"
        elif acc < TARGET_WEAK:
            v, w = WEAK_V, f"accuracy on {t!r} is {acc:.2f}, under {TARGET_WEAK:.2f}"
        else:
            v, w = CAN, f"accuracy on {t!r} is {acc:.2f}"
        target_out[t] = {"verdict": v, "why": w}
    return {
        "chance": chance,
        "balanced_acc": bal,
        "balanced_acc_ci": list(bal_ci),
        "macro_f1": f1,
        "macro_f1_ci": list(percentile(f1_r)),
        "per_class": per_class,
        "top_share": float(share[top]),
        "top_label": label_names[top],
        "task": task,
        "task_why": why,
        "targets": target_out,
        "competent": task != CANNOT and all(v["verdict"] != CANNOT for v in target_out.values()),
    }


def assessable(comp: dict[str, Any], concept: str) -> bool:
    """Whether an erasure claim on ``concept`` can rest on this base model."""
    if not comp:
        return True
    t = comp["targets"].get(concept, {})
    return comp["task"] != CANNOT and t.get("verdict") != CANNOT


def line(comp: dict[str, Any]) -> str:
    """One line for the terminal, the report and the card."""
    lo, hi = comp["balanced_acc_ci"]
    targets = "; ".join(f"{k}: {v['verdict']} ({v['why']})" for k, v in comp["targets"].items())
    return (
        f"Base competence: task {comp['task']} ({comp['task_why']}); balanced accuracy "
        f"{comp['balanced_acc']:.3f} [{lo:.3f}, {hi:.3f}], macro-F1 {comp['macro_f1']:.3f}, "
        f"chance {comp['chance']:.3f}; target {targets}"
        + ("" if comp["competent"] else ". The base cannot do this: no erasure claim is made")
    )


def calibration_text(choice: dict[str, Any]) -> str:
    """The calibration choice in words (``calibration.resolve``)."""
    used = "used" if choice.get("used") else "not used"
    if choice.get("setting") != "auto":
        return f"{used} (prompt.calibrate: {choice.get('setting')})"
    if "n" not in choice:  # a classifier scores its own head: nothing to calibrate
        return f"{used} (auto: calibration applies to prompted language models only)"
    return (
        f"{used} (auto: base balanced accuracy on {choice['n']} fitting examples raw "
        f"{choice['raw_balanced_acc']:.3f}, calibrated {choice['calibrated_balanced_acc']:.3f})"
    )
