"""Gates that act on the whole hidden state (mode ``vector``): steering, ablation, LEACE."""

from __future__ import annotations

from typing import Any

import torch

from .gate import RangeGate


def whole_vector_gate(
    spec: dict[str, Any], value: torch.Tensor, extra: dict[str, torch.Tensor] | None = None
) -> RangeGate:
    """A gate on the whole hidden state (mode ``vector``): ``spec`` names it, its layer,
    operator, parameters and positions; ``value`` is its vector; ``extra`` more tensors (the
    LEACE eraser's matrices)."""
    d = int(value.numel())
    zeros = torch.zeros(d, dtype=torch.float32)
    full = {"mode": "vector", "k": d, "saliency": "none", "top_p": 1.0, **spec}
    tensors = {"index": torch.arange(d), "lo": zeros, "hi": zeros, "mu": zeros, "sigma": zeros}
    tensors["value"] = value.to(torch.float32)
    for key, t in (extra or {}).items():
        tensors[key] = t.to(torch.float32).contiguous()
    return RangeGate(full, tensors)
