"""Where a model's inputs go, also when accelerate dispatched it (``device_map``, offload)."""

from __future__ import annotations

from typing import Any

import torch


def input_device(model: Any) -> torch.device:
    """The device a batch of token ids must be on: the first execution device of a dispatched
    model (offloaded weights sit on ``meta``; their modules run on the CPU), else the device
    of its parameters."""
    placed = getattr(model, "hf_device_map", None)
    if isinstance(placed, dict) and placed:
        for where in placed.values():
            if isinstance(where, int):
                return torch.device("cuda", where)
            if where not in ("disk", "meta"):
                return torch.device(where)
        return torch.device("cpu")
    return next(model.parameters()).device
