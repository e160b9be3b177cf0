"""Whether to use contextual calibration: ``prompt.calibrate`` true, false or ``auto``
(applied by ``evaluate.resolve_calibration``).

``auto`` measures, on (at most ``MAX_EXAMPLES`` of) the fitting split, the base model's balanced
accuracy without calibration and with it, and keeps calibration only when it is higher by more
than ``MARGIN``; a tie keeps the raw argmax. The raw figures are reported next to the calibrated
ones either way (``diagnostics.label_stats``), so calibration cannot hide a collapse.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

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


def resolve(
    cm: Any, setting: Any, fit: Any, base_probs: Callable[[list[str]], torch.Tensor]
) -> dict[str, Any]:
    """Set (or clear) ``cm.calibration`` as ``setting`` says, ``base_probs(texts)`` giving the
    base model's label probabilities (N, C); the choice, as plain data."""
    cm.calibration = None
    if not cm.is_lm or setting is False:
        return {"setting": setting, "used": False}
    content_free = base_probs(["N/A"])[0]
    cm.calibration = content_free
    if setting is True:
        return {"setting": True, "used": True}
    step = max(1, len(fit) // MAX_EXAMPLES)  # spread over the split, which may be class-ordered
    texts = list(fit.texts)[::step][:MAX_EXAMPLES]
    labels = list(fit.labels)[::step][:MAX_EXAMPLES]
    cm.calibration = None
    out = choose(base_probs(texts), content_free, torch.tensor(labels))
    cm.calibration = content_free if out["used"] else None
    return out
