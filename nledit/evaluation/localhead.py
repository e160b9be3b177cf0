"""Outputs that cost only where an edit acts.

A gate on the last decoder layer's output changes the hidden state only at the positions where
it fires, and nothing after the last block mixes positions (final norm, LM head and any logit
cap act per position). So the edited model's logits equal the base model's everywhere else:
an evaluation reuses the base pass's per-token values there and runs the model's own head only
on the changed positions, fed as a batch of one-token rows after a replayed last block. For the
window NLL, a plain linear head then projects in cache-sized blocks (``headnll``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from ..models.arch import Layout
from ..models.fastpath import replay_from
from .headnll import DeferredHead, token_nll


@dataclass
class Local:
    """How a per-batch reduction is rebuilt from the base pass and a few recomputed positions.

    ``tokens(base_output, ctx)``: the base pass's per-batch values to reuse;
    ``positions(changed, ctx)``: which of the changed positions (B, T) need new values;
    ``project(model, layout, rows, as_tuple, where, ctx)``: the new values of the ``where``
    positions, in row-major order, from their edited last-block outputs ``rows`` (N, d)
    (default: their logits (N, V));
    ``combine(tokens, where, values, ctx)``: the condition's reduced value (``where`` and
    ``values`` None: nothing changed).
    """

    tokens: Callable[[Any, Any], Any]
    positions: Callable[[torch.Tensor, Any], torch.Tensor]
    combine: Callable[[Any, torch.Tensor | None, torch.Tensor | None, Any], torch.Tensor]
    project: Callable[..., torch.Tensor] = field(default=lambda *a: head_logits(*a[:4]))


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
    return bool(gates) and not layout.is_encoder and all(int(g.spec.layer) == last for g in gates)


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
    if not bool(where.any()):
        return local.combine(base_tokens, None, None, ctx), changed
    values = local.project(model, layout, edited[where], as_tuple, where, ctx)
    return local.combine(base_tokens, where, values, ctx), changed


def window_nll(deferred: DeferredHead | None = None) -> Local:
    """Per-token next-token NLL of windows ``ids`` (B, T), summed per window (perplexity);
    with ``deferred`` (see ``headnll``), from the head's recorded input, never the logits."""

    def tokens(res: Any, ids: torch.Tensor) -> torch.Tensor:
        if deferred is not None:
            return deferred.nll(deferred.take()[:, :-1], ids[:, 1:])
        return token_nll(res.logits[:, :-1], ids[:, 1:])

    def positions(changed: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        where = changed.clone()
        where[:, -1] = False  # the last position predicts no token of the window
        return where

    def project(model: Any, layout: Layout, rows: torch.Tensor, as_tuple: bool, where, ids):
        targets = ids[:, 1:].to(where.device)[where[:, :-1]]
        logits = head_logits(model, layout, rows, as_tuple)
        if deferred is not None:
            return deferred.nll(deferred.take()[:, -1], targets)
        return token_nll(logits, targets)

    def combine(base: torch.Tensor, where, values, ids: torch.Tensor) -> torch.Tensor:
        nll = base
        if where is not None:
            nll = base.clone()
            nll[where[:, :-1].to(base.device)] = values.to(base.dtype)
        return nll.sum(dim=-1, dtype=torch.float64)

    return Local(tokens, positions, combine, project)


def read_token(read_probs: Callable[[Any, Any], torch.Tensor], probs: Callable) -> Local:
    """Label probabilities at each row's read token: ``read_probs(output, batch)`` on the base
    pass, ``probs(logits)`` on recomputed rows (``batch.read``: read position per row)."""

    def positions(changed: torch.Tensor, batch: Any) -> torch.Tensor:
        rows = torch.arange(changed.shape[0], device=changed.device)
        read = batch.read.to(changed.device)
        where = torch.zeros_like(changed)
        where[rows, read] = changed[rows, read]
        return where

    def combine(base: torch.Tensor, where, logits, batch: Any) -> torch.Tensor:
        if where is None:
            return base
        out = base.clone()
        out[where.any(dim=-1).to(out.device)] = probs(logits).to(out.dtype)
        return out

    return Local(read_probs, positions, combine)
