"""Fitting across processes (accelerate launch): shard the data, add up the statistics.

The per-concept statistics are sums, so reducing them across processes gives the
single-process ranges; the activation sample (when an edit reads one) is gathered so that
every process holds the very sample a single process keeps (see ``reservoir``). Only the main
process returns the result.
"""

from __future__ import annotations

import os

import torch

from .collect import ConceptStats
from .fit import Fitted, fit
from .recipe import Recipe
from .reservoir import Reservoir


def world_size() -> int:
    """Number of processes the launcher started (1 when run alone)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def all_reduce_stats(stats: ConceptStats, reservoir: Reservoir | None = None) -> ConceptStats:
    """Sum every statistic over all processes (float64) and gather the activation sample."""
    import torch.distributed as dist

    for name in ("count", "total", "sumsq", "sumabs"):
        for layer, t in getattr(stats, name).items():
            buf = t.clone()
            dist.all_reduce(buf, op=dist.ReduceOp.SUM)
            getattr(stats, name)[layer] = buf
    if reservoir is not None:
        gather_reservoir(reservoir, sorted(stats.count), stats.d)
    return stats


def _all_gather_rows(t: torch.Tensor) -> torch.Tensor:
    """Concatenate every process's ``t`` (rows may differ in number), in process order."""
    import torch.distributed as dist

    world = dist.get_world_size()
    size = torch.tensor([t.shape[0]], dtype=torch.long)
    sizes = [torch.zeros_like(size) for _ in range(world)]
    dist.all_gather(sizes, size)
    most = int(max(s.item() for s in sizes))
    padded = torch.zeros((most, *t.shape[1:]), dtype=t.dtype)
    padded[: t.shape[0]] = t
    parts = [torch.zeros_like(padded) for _ in range(world)]
    dist.all_gather(parts, padded)
    return torch.cat([p[: int(s.item())] for p, s in zip(parts, sizes)])


def gather_reservoir(reservoir: Reservoir, layers: list[int], d: int) -> None:
    """Make every process's shard reservoir the whole set's sample (tensors only)."""
    meta, rows = reservoir.local_rows(layers, d)
    reservoir.absorb(_all_gather_rows(meta), _all_gather_rows(rows))


def fit_distributed_or_local(recipe: Recipe, text: str) -> Fitted | None:
    """``fit`` on this process's shard, reduced across processes; None off the main process."""
    if world_size() == 1:
        return fit(recipe, text)
    from accelerate import PartialState

    state = PartialState(cpu=not torch.cuda.is_available())
    fitted = fit(
        recipe, text, shard=(state.process_index, state.num_processes), reduce=all_reduce_stats
    )
    state.wait_for_everyone()
    return fitted if state.is_main_process else None
