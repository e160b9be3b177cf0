"""Run only the layers after l: everything up to layer l is the same for every intervention.

One base pass records the output of layer l; each intervention then swaps layers 0..l for stubs
that hand back that recorded state (through the gates installed at layer l, if any), so the
model computes only the embeddings (cheap) and the layers after l.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from .arch import Layout


class _Replay(nn.Module):
    """Stands in for a block: returns a fixed hidden state, shaped like the block's output."""

    def __init__(self, state: torch.Tensor, as_tuple: bool, gates: nn.Module | None) -> None:
        super().__init__()
        self.state, self.as_tuple, self.gates = state, as_tuple, gates

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        h = self.gates(self.state) if self.gates is not None else self.state
        return (h,) if self.as_tuple else h


class _PassThrough(nn.Module):
    """Stands in for a block before l: skipped work (its output is replaced later anyway)."""

    def __init__(self, as_tuple: bool) -> None:
        super().__init__()
        self.as_tuple = as_tuple

    def forward(self, hidden_states: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        return (hidden_states,) if self.as_tuple else hidden_states


@contextlib.contextmanager
def replay_from(
    model: nn.Module,
    layout: Layout,
    layer: int,
    state: torch.Tensor,
    as_tuple: bool,
    gates: bool = True,
) -> Iterator[None]:
    """Inside the block, ``model`` skips layers 0..layer and resumes from ``state`` (through
    the gates installed at ``layer``, unless ``gates`` is false: ``state`` is already edited)."""
    blocks = model.get_submodule(layout.layers_path)
    assert isinstance(blocks, nn.ModuleList)
    originals = [blocks[i] for i in range(layer + 1)]
    installed = getattr(model, "nledit_gates", None) if gates else None
    here = installed is not None and str(layer) in installed
    layer_gates = installed[str(layer)] if here else None
    try:
        for i in range(layer):
            blocks[i] = _PassThrough(as_tuple)
        blocks[layer] = _Replay(state, as_tuple, layer_gates)
        yield
    finally:
        for i, block in enumerate(originals):
            blocks[i] = block
