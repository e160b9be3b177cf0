"""Outputs that cost only where an edit acts.

A gate on the last decoder layer's output changes the hidden state only at the positions where
it fires, and nothing after the last block mixes positions (final norm, LM head and any logit
cap act per position). So the edited model's logits equal the base model's everywhere else:
an evaluation reuses the base pass's per-token values there and runs the model's own head only
on the changed positions, fed as a batch of one-token rows after a replayed last block.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from .arch import Layout
from .fastpath import replay_from


@dataclass
class Local:
    """How a per-batch reduction is rebuilt from the base pass and a few recomputed positions.

    ``tokens(base_output, ctx)``: the base pass's per-batch values to reuse;
    ``positions(changed, ctx)``: which of the changed positions (B, T) need new logits;
    ``combine(tokens, where, logits, ctx)``: the condition's reduced value, given the logits
    (N, V) of the ``where`` positions in row-major order.
    """

    tokens: Callable[[Any, Any], Any]
    positions: Callable[[torch.Tensor, Any], torch.Tensor]
    combine: Callable[[Any, torch.Tensor, torch.Tensor, Any], torch.Tensor]


@dataclass
class Firing:
    """Per condition key: positions its edit changed, positions seen (local path only), and
    seconds spent on it (the base pass under ``base``)."""

    changed: dict[str, int] = field(default_factory=dict)
    seen: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    def spent(self, key: str, seconds: float) -> None:
        self.seconds[key] = self.seconds.get(key, 0.0) + seconds

    def add(self, key: str, changed: torch.Tensor) -> None:
        self.changed[key] = self.changed.get(key, 0) + int(changed.sum())
        self.seen[key] = self.seen.get(key, 0) + changed.numel()

    def rate(self, key: str) -> float:
        """Fraction of positions where the condition's edit changed the hidden state."""
        return self.changed.get(key, 0) / max(self.seen.get(key, 0), 1)


def lap(firing: Firing | None, key: str, t0: float) -> float:
    """Charge the time since ``t0`` to ``key`` (when counting); the time now."""
    now = time.perf_counter()
    if firing is not None:
        firing.spent(key, now - t0)
    return now


def applies(gates: list[Any], layout: Layout) -> bool:
    """Whether ``gates`` all act on the last decoder block (edited positions then influence
    no other position)."""
    last = layout.n_layers - 1
    return (
        bool(gates) and not layout.is_encoder and all(int(g.spec["layer"]) == last for g in gates)
    )


@torch.no_grad()
def head_logits(model: Any, layout: Layout, rows: torch.Tensor, as_tuple: bool) -> torch.Tensor:
    """The model's own head (final norm, LM head, logit cap) on last-block outputs ``rows``
    (N, d): logits (N, V)."""
    state = rows.unsqueeze(1)
    ids = torch.zeros(state.shape[:2], dtype=torch.long, device=state.device)
    with replay_from(model, layout, layout.n_layers - 1, state, as_tuple, gates=False):
        res = model(input_ids=ids, use_cache=False)
    logits = res.logits if hasattr(res, "logits") else res[0]
    return logits[:, -1]


@torch.no_grad()
def local_reduce(
    model: Any,
    layout: Layout,
    gates: list[Any],
    state: tuple[torch.Tensor, bool],
    base_tokens: Any,
    local: Local,
    ctx: Any,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One condition's reduced value from the base pass's last-block ``state`` (and whether
    the block returned a tuple): the gates run on the state, the head only where they changed
    it. Returns the value and the changed-position mask (B, T)."""
    h, as_tuple = state
    edited = h
    for gate in gates:
        edited = gate(edited)
    changed = (edited != h).any(dim=-1)
    where = local.positions(changed, ctx)
    if bool(where.any()):
        logits = head_logits(model, layout, edited[where], as_tuple)
    else:
        logits = h.new_zeros((0, 0))
    return local.combine(base_tokens, where, logits, ctx), changed


def token_nll(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Negative log-likelihood of ``targets`` under each row of ``logits`` (..., V); the fused
    log-softmax is faster on CPU than a log-sum-exp and a gather."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    return -logp.gather(-1, targets.to(logp.device).unsqueeze(-1)).squeeze(-1)


def _window_tokens(res: Any, ids: torch.Tensor) -> torch.Tensor:
    return token_nll(res.logits[:, :-1], ids[:, 1:])


def _window_positions(changed: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    where = changed.clone()
    where[:, -1] = False  # the last position predicts no token of the window
    return where


def _window_combine(
    base: torch.Tensor, where: torch.Tensor, logits: torch.Tensor, ids: torch.Tensor
) -> torch.Tensor:
    nll = base
    if logits.numel():
        nll = base.clone()
        inside = where[:, :-1].to(base.device)
        targets = ids[:, 1:].to(base.device)[inside]
        nll[inside] = token_nll(logits, targets)
    return nll.sum(dim=-1)


WINDOW_NLL = Local(_window_tokens, _window_positions, _window_combine)
"""Summed next-token NLL per window (perplexity)."""


def read_token(read_probs: Callable[[Any, Any], torch.Tensor], probs: Callable) -> Local:
    """Label probabilities at each row's read token: ``read_probs(output, batch)`` on the base
    pass, ``probs(logits)`` on recomputed rows (``batch.read``: read position per row)."""

    def positions(changed: torch.Tensor, batch: Any) -> torch.Tensor:
        rows = torch.arange(changed.shape[0], device=changed.device)
        read = batch.read.to(changed.device)
        where = torch.zeros_like(changed)
        where[rows, read] = changed[rows, read]
        return where

    def combine(base: torch.Tensor, where: torch.Tensor, logits: torch.Tensor, batch: Any):
        if not logits.numel():
            return base
        out = base.clone()
        out[where.any(dim=-1).to(out.device)] = probs(logits).to(out.dtype)
        return out

    return Local(read_probs, positions, combine)
