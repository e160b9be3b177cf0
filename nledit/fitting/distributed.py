"""Fitting across processes (accelerate launch): shard the data, add up the statistics.

The per-concept statistics are sums, so reducing them across processes gives the
single-process ranges; the activation sample (when an edit reads one) is gathered so that
every process holds the very sample a single process keeps (see ``reservoir``). Only the main
process returns the result.
"""

from __future__ import annotations

import os

import torch

from ..recipe import Recipe
from .collect import ConceptStats
from .leace import LeaceStats
from .recipe_fit import Fitted, fit
from .reservoir import Reservoir


def world_size() -> int:
    """Number of processes the launcher started (1 when run alone)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def all_reduce_stats(
    stats: ConceptStats, reservoir: Reservoir | None = None, leace: LeaceStats | None = None
) -> ConceptStats:
    """Sum every statistic over all processes (float64), gather the activation sample and pool
    the LEACE statistics."""
    import torch.distributed as dist

    device = comm_device()
    for name in ("count", "total", "sumsq", "sumabs"):
        for layer, t in getattr(stats, name).items():
            buf = t.to(device, copy=True)
            dist.all_reduce(buf, op=dist.ReduceOp.SUM)
            getattr(stats, name)[layer] = buf.to(t.device)
    if reservoir is not None:
        gather_reservoir(reservoir, sorted(stats.count), stats.d)
    if leace is not None:
        gather_leace(leace)
    return stats


def gather_leace(leace: LeaceStats) -> None:
    """Every process's LEACE statistics pooled over all processes, in process order (means and
    co-moments merge exactly in real arithmetic; in floating point they differ from one
    process's running update in the last bits, so the eraser agrees to rounding, not byte for
    byte)."""
    import torch.distributed as dist

    world, device = dist.get_world_size(), comm_device()
    for layer in sorted(leace.fitters):
        parts: list[list[torch.Tensor]] = [[] for _ in range(world)]
        for t in leace.state(layer):
            got = [torch.zeros_like(t, device=device) for _ in range(world)]
            dist.all_gather(got, t.to(device).contiguous())
            for rank in range(world):
                parts[rank].append(got[rank].to(t.device))
        leace.pool(layer, parts)


def comm_device() -> torch.device:
    """Where the process group's collectives take their tensors: this process's GPU under NCCL
    (which reduces no CPU tensor), the CPU under gloo."""
    import torch.distributed as dist

    if dist.get_backend() == "nccl":
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


def _all_gather_rows(t: torch.Tensor) -> torch.Tensor:
    """Concatenate every process's ``t`` (rows may differ in number), in process order; the
    result is on ``t``'s device."""
    import torch.distributed as dist

    world, device = dist.get_world_size(), comm_device()
    size = torch.tensor([t.shape[0]], dtype=torch.long, device=device)
    sizes = [torch.zeros_like(size) for _ in range(world)]
    dist.all_gather(sizes, size)
    most = int(max(s.item() for s in sizes))
    padded = torch.zeros((most, *t.shape[1:]), dtype=t.dtype, device=device)
    padded[: t.shape[0]] = t.to(device)
    parts = [torch.zeros_like(padded) for _ in range(world)]
    dist.all_gather(parts, padded)
    return torch.cat([p[: int(s.item())] for p, s in zip(parts, sizes)]).to(t.device)


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
