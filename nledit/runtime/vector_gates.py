"""Gates that act on the whole hidden state (mode ``vector``): steering, ablation, LEACE."""

from __future__ import annotations

from typing import Any

import torch

from .gate import GateSpec, RangeGate


def whole_vector_gate(
    *,
    name: str,
    method: str,
    edit: str,
    concept: str,
    layer: int,
    operator: str,
    params: dict[str, Any],
    positions: str,
    value: torch.Tensor,
    extra: dict[str, torch.Tensor] | None = None,
) -> RangeGate:
    """A gate on the whole hidden state (mode ``vector``): ``value`` is its vector, ``extra``
    more tensors (the LEACE eraser's matrices).

    It holds only what its mode reads (``gate.VECTOR_TENSORS``: all neurons' indices and the
    vector, plus ``extra``): no ranges or neuron statistics.
    """
    d = int(value.numel())
    spec = GateSpec(
        name=name,
        method=method,
        edit=edit,
        concept=concept,
        layer=layer,
        operator=operator,
        params=params,
        positions=positions,
        mode="vector",
        k=d,
        saliency="none",
        top_p=1.0,
    )
    tensors = {"index": torch.arange(d), "value": value.to(torch.float32)}
    for key, t in (extra or {}).items():
        tensors[key] = t.to(torch.float32).contiguous()
    return RangeGate(spec, tensors)
