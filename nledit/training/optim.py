"""The optimiser every fine-tuning in nledit uses: AdamW with linear warm-up, then linear decay."""

from __future__ import annotations

import math
from typing import Any

import torch


def make_optimizer(params: list[Any], settings: Any, total: int) -> tuple[Any, Any]:
    """(AdamW, scheduler) over ``params`` for ``total`` steps; ``settings`` gives ``lr``,
    ``weight_decay`` (on matrices only) and ``warmup`` (share of the steps)."""
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": settings.weight_decay}, {"params": no_decay}],
        lr=settings.lr,
        weight_decay=0.0,
    )
    warm = max(1, round(settings.warmup * total))

    def schedule(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return max(0.0, (total - step) / max(1, total - warm))

    return opt, torch.optim.lr_scheduler.LambdaLR(opt, schedule)


def take_step(loss: torch.Tensor, params: Any, opt: Any, sched: Any, ema: float) -> float:
    """One optimiser step on ``loss`` (gradients clipped to norm 1) and the loss's moving
    average after it (``ema``: the average so far, NaN before the first step)."""
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()
    sched.step()
    opt.zero_grad(set_to_none=True)
    value = float(loss.detach())
    return value if math.isnan(ema) else 0.9 * ema + 0.1 * value
