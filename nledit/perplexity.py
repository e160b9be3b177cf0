"""Token-level perplexity on fixed windows of general text (WikiText-2 raw or any text file)."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from .arch import Layout
from .evaluate import Condition, run_conditions


class PerplexityError(ValueError):
    """The perplexity text cannot be used."""


def load_text(source: str, field: str = "eval.perplexity_source") -> str:
    """A local text file, or a Hub data set id (``name[:config]``) whose ``text`` is joined;
    errors name the recipe ``field`` the source came from."""
    path = Path(source).expanduser()
    if path.is_file():
        return path.read_text(encoding="utf-8")
    if path.suffix or source.startswith((".", "/", "~")):
        raise PerplexityError(f"{field}: no such file: {source}")
    import datasets

    name, _, config = source.partition(":")
    try:
        ds = datasets.load_dataset(name, config or None, split="test")
    except Exception as err:
        raise PerplexityError(f"{field}: cannot load {source!r}: {err}") from err
    return "\n".join(ds["text"])


def windows(
    tokenizer: Any, text: str, size: int, count: int, field: str = "eval.perplexity_source"
) -> torch.Tensor:
    """The first ``count`` non-overlapping windows of ``size`` tokens: (count, size)."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    n = min(count, len(ids) // size)
    if n == 0:
        raise PerplexityError(
            f"{field}: text has {len(ids)} tokens, fewer than one window of {size}"
        )
    return torch.tensor(ids[: n * size]).view(n, size)


def _nll(res: Any, ids: torch.Tensor) -> torch.Tensor:
    """Summed next-token negative log-likelihood per window."""
    logits = res.logits[:, :-1].float()
    target = ids[:, 1:].to(logits.device)
    logp = torch.log_softmax(logits, dim=-1).gather(-1, target.unsqueeze(-1)).squeeze(-1)
    return -logp.sum(dim=-1)


@contextlib.contextmanager
def as_generated(gates: list[Any]) -> Iterator[None]:
    """Score text as the edited model generates it: a gate on the read token (``positions:
    last``) acts on every token it generates (each is the last when it is produced), so in a
    perplexity pass over whole windows it acts on every position."""
    before = [g.spec.get("positions", "all") for g in gates]
    for g in gates:
        g.spec["positions"] = "all"
    try:
        yield
    finally:
        for g, p in zip(gates, before):
            g.spec["positions"] = p


@torch.no_grad()
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
) -> dict[str, float]:
    """Perplexity per condition key over the same windows."""
    data = windows(tokenizer, text, window, count)
    device = next(model.parameters()).device

    def batches():
        for start in range(0, len(data), batch_size):
            ids = data[start : start + batch_size]
            yield {"input_ids": ids.to(device), "use_cache": False}, ids

    total = math.ceil(len(data) / batch_size)
    gates = [g for c in conditions for g in c.gates]
    with as_generated(gates):
        nll = run_conditions(model, layout, batches(), conditions, _nll, None, fast, total, "ppl")
    tokens = data.shape[0] * (data.shape[1] - 1)
    return {key: math.exp(v.sum().item() / tokens) for key, v in nll.items()}
