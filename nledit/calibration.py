"""Whether to use contextual calibration: ``prompt.calibrate`` true, false or ``auto``.

``auto`` measures, on (at most ``MAX_EXAMPLES`` of) the fitting split, the base model's balanced
accuracy without calibration and with it, and keeps calibration only when it is higher by more
than ``MARGIN``; a tie keeps the raw argmax. The raw figures are reported next to the calibrated
ones either way (``diagnostics.label_stats``), so calibration cannot hide a collapse.
"""

from __future__ import annotations

from typing import Any

import torch

from .concept import ConceptModel
from .data import Examples

MAX_EXAMPLES = 200  # fitting examples the choice is measured on
MARGIN = 0.0  # calibration must beat the raw balanced accuracy by more than this


def balanced_accuracy(pred: torch.Tensor, gold: torch.Tensor) -> float:
    """Mean over the classes present of each class's accuracy."""
    hit = (pred == gold).float()
    return sum(hit[gold == c].mean().item() for c in gold.unique().tolist()) / len(gold.unique())


def choose(probs: torch.Tensor, calibration: torch.Tensor, gold: torch.Tensor) -> dict[str, Any]:
    """The ``auto`` choice from base label probabilities (N, C) and the content-free ones."""
    raw = balanced_accuracy(probs.argmax(-1), gold)
    cal = balanced_accuracy((probs / calibration.clamp_min(1e-12)).argmax(-1), gold)
    return {
        "setting": "auto",
        "used": cal > raw + MARGIN,
        "raw_balanced_acc": raw,
        "calibrated_balanced_acc": cal,
        "n": len(gold),
    }


def resolve(cm: ConceptModel, setting: Any, fit: Examples, batch_size: int) -> dict[str, Any]:
    """Set (or clear) ``cm.calibration`` as ``setting`` says; the choice, as plain data."""
    from .evaluate import Condition, calibrate, label_probs

    cm.calibration = None
    if not cm.is_lm or setting is False:
        return {"setting": setting, "used": False}
    calibrate(cm, batch_size)
    if setting is True:
        return {"setting": True, "used": True}
    step = max(1, len(fit) // MAX_EXAMPLES)  # spread over the split, which may be class-ordered
    texts, labels = list(fit.texts)[::step][:MAX_EXAMPLES], list(fit.labels)[::step][:MAX_EXAMPLES]
    probs = label_probs(cm, texts, [Condition("base", None, [])], batch_size)["base"]
    assert cm.calibration is not None
    out = choose(probs, cm.calibration, torch.tensor(labels))
    if not out["used"]:
        cm.calibration = None
    return out
