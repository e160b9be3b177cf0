"""Token-level perplexity on fixed windows of general text (WikiText-2 raw or any text file)."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any

import torch

from ..data.text import load_text, windows
from ..errors import PerplexityError
from ..models.arch import Layout
from ..models.devices import input_device
from .erasure import Condition, run_conditions
from .headnll import DeferredHead, direct_head
from .localhead import Firing, window_nll

__all__ = ["PerplexityError", "general_perplexity", "load_text", "perplexity", "windows"]


def general_perplexity(
    cm: Any,
    conditions: list[Condition],
    window: int,
    count: int,
    batch_size: int,
    *,
    text: str | None = None,
    source: str = "",
    field: str = "eval.perplexity_source",
    steps: list[str] | tuple[str, ...] = (),
    intervals: dict[str, list[float]] | None = None,
) -> dict[str, float]:
    """Perplexity of each condition on general text (``text``, or read from ``source``, the
    recipe's ``field``, after ``steps``) for the concept model ``cm``; empty when there is
    no text, no window to score or the model is not a causal LM. ``intervals`` (when given)
    receives each ΔPPL's bootstrap interval over windows. Every job measures it here."""
    if not count or not cm.is_lm or not (text or source):
        return {}
    if text is None:
        text = load_text(source, field, steps)
    return perplexity(
        cm.model,
        cm.layout,
        cm.tokenizer,
        text,
        conditions,
        window,
        count,
        batch_size,
        intervals=intervals,
        count_field=field.replace("perplexity_source", "perplexity_windows"),
    )


def _nll(res: Any, ids: torch.Tensor) -> torch.Tensor:
    """Summed next-token negative log-likelihood per window (from the logits)."""
    return window_nll().tokens(res, ids).sum(dim=-1, dtype=torch.float64)


@contextlib.contextmanager
def as_generated(gates: list[Any]) -> Iterator[None]:
    """Score text as the edited model generates it: a gate on the read token (``positions:
    last``) acts on every token it generates (each is the last when it is produced), so in a
    perplexity pass over whole windows it acts on every position."""
    before = [g.spec.positions for g in gates]
    for g in gates:
        g.spec.positions = "all"
    try:
        yield
    finally:
        for g, p in zip(gates, before):
            g.spec.positions = p


@torch.inference_mode()  # self-contained: only numbers leave it
def perplexity(
    model: Any,
    layout: Layout,
    tokenizer: Any,
    text: str,
    conditions: list[Condition],
    window: int,
    count: int,
    batch_size: int,
    fast: bool = True,
    local: bool = True,
    firing: Firing | None = None,
    intervals: dict[str, list[float]] | None = None,
    count_field: str | None = None,
) -> dict[str, float]:
    """Perplexity per condition key over the same windows (``local``, fast path: a last-block
    edit runs the head only at the positions it changed, counted in ``firing``); ``intervals``,
    when given, receives each edited condition's ΔPPL interval over windows (``bootstrap``)."""
    data = windows(tokenizer, text, window, count, count_field=count_field)
    device = input_device(model)

    def batches():
        for start in range(0, len(data), batch_size):
            ids = data[start : start + batch_size]
            yield {"input_ids": ids.to(device), "use_cache": False}, ids

    total = math.ceil(len(data) / batch_size)
    gates = [g for c in conditions for g in c.gates]
    # A plain linear head projects in cache-sized blocks, never materialising the logits.
    deferred = DeferredHead(model) if direct_head(model) else None
    per_token = window_nll(deferred)

    def reduce(res: Any, ids: torch.Tensor) -> torch.Tensor:
        return per_token.tokens(res, ids).sum(dim=-1, dtype=torch.float64)

    with as_generated(gates), deferred or contextlib.nullcontext():
        nll = run_conditions(
            model,
            layout,
            batches(),
            conditions,
            reduce,
            None,
            fast,
            total,
            "ppl",
            local=per_token if local else None,
            firing=firing,
        )
    tokens = data.shape[0] * (data.shape[1] - 1)
    if intervals is not None and "base" in nll:
        from .bootstrap import ppl_interval

        for key, v in nll.items():
            if key != "base":
                intervals[key] = list(ppl_interval(nll["base"], v, data.shape[1] - 1))
    return {key: math.exp(v.sum().item() / tokens) for key, v in nll.items()}
