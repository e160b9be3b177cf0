"""One streaming pass: per-concept sufficient statistics of layer activations.

For each edited layer and concept: count, sum, sum of squares and sum of |x| in float64. Memory
is O(layers x concepts x d), flat in the number of examples, and statistics from several
processes merge exactly by addition. The forward pass stops after the deepest edited layer.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from tqdm.auto import tqdm

from ..data.concept import ConceptModel
from ..data.dataset import Examples
from ..errors import NleditError
from ..models.compat import with_cache
from ..models.devices import input_device
from .reservoir import Reservoir

if TYPE_CHECKING:
    from .leace import LeaceStats


class StopForward(Exception):
    """Raised by a hook to end a forward pass once the last needed layer has run."""


class ActivationError(NleditError, ValueError):
    """Activations that cannot be summarised (NaN or inf)."""


def _hidden(output: object) -> torch.Tensor:
    return output[0] if isinstance(output, tuple) else output  # type: ignore[return-value,index]


@contextlib.contextmanager
def capture(
    model: torch.nn.Module, paths: dict[int, str], stop: bool
) -> Iterator[dict[int, torch.Tensor]]:
    """Record the output hidden state of each layer in ``paths``; optionally stop after the last."""
    seen: dict[int, torch.Tensor] = {}
    deepest = max(paths)
    handles = []
    for layer, path in paths.items():

        def hook(_m: object, _a: object, out: object, layer: int = layer) -> None:
            seen[layer] = _hidden(out)
            if stop and layer == deepest:
                raise StopForward

        handles.append(model.get_submodule(path).register_forward_hook(hook))
    try:
        yield seen
    finally:
        for h in handles:
            h.remove()


@dataclass
class ConceptStats:
    """Float64 sufficient statistics per layer: tensors of shape (concepts, d)."""

    n_concepts: int
    d: int
    count: dict[int, torch.Tensor] = field(default_factory=dict)
    total: dict[int, torch.Tensor] = field(default_factory=dict)
    sumsq: dict[int, torch.Tensor] = field(default_factory=dict)
    sumabs: dict[int, torch.Tensor] = field(default_factory=dict)

    def _init(self, layer: int) -> None:
        if layer not in self.count:
            z = torch.zeros(self.n_concepts, self.d, dtype=torch.float64)
            self.count[layer] = torch.zeros(self.n_concepts, dtype=torch.float64)
            self.total[layer], self.sumsq[layer], self.sumabs[layer] = z, z.clone(), z.clone()

    def update(self, layer: int, h: torch.Tensor, labels: torch.Tensor) -> None:
        """Add rows ``h`` (B, d) with concept ids ``labels`` (B,)."""
        self._init(layer)
        x = h.detach().to("cpu", torch.float64)
        y = labels.to("cpu", torch.long)
        self.count[layer].index_add_(0, y, torch.ones(len(y), dtype=torch.float64))
        self.total[layer].index_add_(0, y, x)
        self.sumsq[layer].index_add_(0, y, x * x)
        self.sumabs[layer].index_add_(0, y, x.abs())

    def merge(self, other: ConceptStats) -> ConceptStats:
        for layer in other.count:
            self._init(layer)
            self.count[layer] += other.count[layer]
            self.total[layer] += other.total[layer]
            self.sumsq[layer] += other.sumsq[layer]
            self.sumabs[layer] += other.sumabs[layer]
        return self

    def mean(self, layer: int) -> torch.Tensor:
        return self.total[layer] / self.count[layer].clamp_min(1).unsqueeze(-1)

    def std(self, layer: int) -> torch.Tensor:
        """Population standard deviation (the paper's sigma)."""
        mu = self.mean(layer)
        var = self.sumsq[layer] / self.count[layer].clamp_min(1).unsqueeze(-1) - mu * mu
        return var.clamp_min(0).sqrt()

    def mean_abs(self, layer: int) -> torch.Tensor:
        return self.sumabs[layer] / self.count[layer].clamp_min(1).unsqueeze(-1)

    def to_tensors(self) -> dict[str, torch.Tensor]:
        out = {}
        for layer in self.count:
            for name in ("count", "total", "sumsq", "sumabs"):
                out[f"{layer}.{name}"] = getattr(self, name)[layer]
        return out

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor]) -> ConceptStats:
        layers = sorted({int(k.split(".")[0]) for k in tensors})
        first = tensors[f"{layers[0]}.total"]
        stats = cls(first.shape[0], first.shape[1])
        for layer in layers:
            for name in ("count", "total", "sumsq", "sumabs"):
                getattr(stats, name)[layer] = tensors[f"{layer}.{name}"].to(torch.float64)
        return stats


def read_rows(hidden: torch.Tensor, read: torch.Tensor) -> torch.Tensor:
    """The read token's hidden state per row: (B, T, d) -> (B, d)."""
    rows = torch.arange(hidden.shape[0], device=hidden.device)
    return hidden[rows, read.to(hidden.device)]


@torch.no_grad()
def _prefix_cache(cm: ConceptModel, paths: dict[int, str]) -> Any:
    """The prompt head's key/value cache, filled only up to the deepest needed layer.

    The blocks after it and the LM head never run, not even once for the head.
    """
    from transformers import DynamicCache

    cache = DynamicCache(config=cm.model.config)
    ids = torch.tensor([cm.head_ids], device=cm.device)
    with capture(cm.model, paths, stop=True), contextlib.suppress(StopForward):
        cm.model(**with_cache(cm.model, {"input_ids": ids}, cache), use_cache=True)
    return cache


@torch.no_grad()
def collect(
    cm: ConceptModel,
    examples: Examples,
    layers: list[int],
    batch_size: int,
    reservoir: Reservoir | None = None,
    desc: str = "fit",
    leace: LeaceStats | None = None,
) -> ConceptStats:
    """Stream ``examples`` through the model up to the deepest of ``layers`` (``leace``: also
    feed the read-token activations to these LEACE statistics)."""
    stats = ConceptStats(len(cm.label_names), cm.layout.hidden_size)
    paths = {layer: cm.layout.layer_path(layer) for layer in layers}
    labels = torch.tensor(examples.labels)
    prefix = _prefix_cache(cm, paths) if cm.use_prefix_cache else None
    with tqdm(total=len(examples), desc=desc, unit="ex", leave=False) as bar:
        _stream(
            cm, examples, layers, batch_size, prefix, paths, labels, stats, reservoir, bar, leace
        )
    return stats


SORT_WINDOW = 8  # batches whose examples are sorted by length together


def _stream(
    cm: ConceptModel,
    examples: Examples,
    layers: list[int],
    batch_size: int,
    prefix: Any,
    paths: dict[int, str],
    labels: torch.Tensor,
    stats: ConceptStats,
    reservoir: Reservoir | None,
    bar: Any,
    leace: LeaceStats | None = None,
) -> None:
    """The batches of one collection pass (the bar closes even when one fails).

    Within each window of ``SORT_WINDOW`` batches the examples are batched by length (little
    padding); the window's read-token rows are then summarised in data order, so the
    statistics and the activation sample do not depend on the batching."""
    window = batch_size * SORT_WINDOW
    for lo in range(0, len(examples), window):
        ids = list(range(lo, min(lo + window, len(examples))))
        rows = _window_rows(cm, examples, ids, layers, batch_size, prefix, paths, bar)
        y = labels[lo : lo + len(ids)]
        for layer in layers:
            h = rows[layer]
            bad = ~torch.isfinite(h).all(dim=-1)
            if bad.any():
                i = lo + int(bad.nonzero()[0])
                raise ActivationError(
                    f"non-finite activation (NaN/inf) at layer {layer} for example {i}: "
                    f"{examples.texts[i][:80]!r}; try model.dtype: float32"
                )
            stats.update(layer, h, y)
            if leace is not None:
                leace.update(layer, h, y)
            if reservoir is not None:
                reservoir.add(layer, h, y, ids)


def _window_rows(
    cm: ConceptModel,
    examples: Examples,
    ids: list[int],
    layers: list[int],
    batch_size: int,
    prefix: Any,
    paths: dict[int, str],
    bar: Any,
) -> dict[int, torch.Tensor]:
    """Read-token rows (len(ids), d) per layer of the examples ``ids``, in that order, from
    length-sorted batches."""
    texts = [examples.texts[i] for i in ids]
    lengths = [len(q) for q in cm._encode(texts)]
    order = sorted(range(len(ids)), key=lengths.__getitem__)
    out: dict[int, torch.Tensor] = {}
    sorted_texts = [texts[j] for j in order]
    for batch in cm.batches(sorted_texts, batch_size, prefix=prefix):
        with capture(cm.model, paths, stop=True) as seen, contextlib.suppress(StopForward):
            cm.model(**batch.inputs)
        where = torch.tensor(order[batch.rows])
        for layer in layers:
            h = read_rows(seen[layer], batch.read)
            if layer not in out:
                out[layer] = h.new_empty((len(ids), h.shape[-1]))
            out[layer][where.to(h.device)] = h
        bar.update(len(where))
    return out


@torch.no_grad()
def token_means(
    model: torch.nn.Module, paths: dict[int, str], ids: torch.Tensor, batch_size: int
) -> dict[int, torch.Tensor]:
    """Per-layer mean hidden state over every token of ``ids`` (windows, (n, T)), float64."""
    sums: dict[int, torch.Tensor] = {}
    count = 0
    device = input_device(model)
    for start in range(0, len(ids), batch_size):
        chunk = ids[start : start + batch_size].to(device)
        with capture(model, paths, stop=True) as seen, contextlib.suppress(StopForward):
            model(input_ids=chunk, use_cache=False)
        for layer in paths:
            h = seen[layer].detach().to("cpu", torch.float64).reshape(-1, seen[layer].shape[-1])
            sums[layer] = sums.get(layer, 0) + h.sum(0)
        count += chunk.numel()
    return {layer: s / count for layer, s in sums.items()}
