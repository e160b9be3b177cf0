"""Fitting across processes (accelerate launch): shard the data, add up the statistics.

The per-concept statistics are sums, so reducing them across processes gives exactly the
single-process ranges. Only the main process returns the result.
"""

from __future__ import annotations

import os

import torch

from .collect import ConceptStats
from .fit import Fitted, fit
from .recipe import Recipe


def world_size() -> int:
    """Number of processes the launcher started (1 when run alone)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def all_reduce_stats(stats: ConceptStats) -> ConceptStats:
    """Sum every statistic over all processes (float64, exact for counts and sums)."""
    import torch.distributed as dist

    for name in ("count", "total", "sumsq", "sumabs"):
        for layer, t in getattr(stats, name).items():
            buf = t.clone()
            dist.all_reduce(buf, op=dist.ReduceOp.SUM)
            getattr(stats, name)[layer] = buf
    return stats


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
