"""``batch_size: auto``: a batch size from the model's size and the memory available.

Throughput on a CPU stops rising once a batch feeds the matrix products enough rows; more rows
then only add padding and memory. So ``auto`` aims at ``TOKENS`` fed tokens per batch (a
multiple of that on an accelerator), and lowers the batch until a generous estimate of one row's
working memory (its key/value cache over the whole context and the activations in flight)
times the batch fits in half of the memory left beside the weights.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch

TOKENS = 512  # fed tokens per batch on a CPU (bench/bench_batch.py, docs/BENCHMARKS.md)
ACCELERATOR = 8  # an accelerator's products want more rows (not measured here)
LARGEST = 64
IN_FLIGHT = 16  # activations held per token, in hidden-state widths (MLP, attention, norms)
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}


@dataclass(frozen=True)
class AutoBatch:
    """A resolved ``batch_size: auto`` and the figures it came from."""

    size: int
    tokens: int  # fed tokens per row
    context: int  # tokens one row attends over
    free_bytes: int | None  # memory left beside the weights (None: unknown)

    def describe(self) -> str:
        free = (
            "unknown free memory"
            if self.free_bytes is None
            else (f"{self.free_bytes / 2**30:.1f} GiB free beside the weights")
        )
        return (
            f"auto = {self.size} ({self.tokens} fed / {self.context} context tokens a row, {free})"
        )


def available_memory(device: str) -> int | None:
    """Bytes the process may still allocate on ``device`` (None when it cannot be told)."""
    if device.startswith("cuda") and torch.cuda.is_available():
        free, _total = torch.cuda.mem_get_info(torch.device(device))
        return int(free)
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def row_tokens(recipe: Any) -> tuple[int, int]:
    """Fed tokens and context tokens of one row under ``recipe``: a query (the prompt head is
    cached), or a perplexity window when the evaluation scores one."""
    fed = recipe.data.max_length
    context = fed * (recipe.prompt.shots + 1)  # the shots' queries plus this one
    ev = recipe.eval
    if ev.enabled and ev.perplexity_source and ev.perplexity_windows:
        fed = max(fed, ev.perplexity_window)
        context = max(context, ev.perplexity_window)
    return fed, context


def auto_batch_size(
    recipe: Any, n_layers: int, hidden: int, n_params: int, free: int | None
) -> AutoBatch:
    """The batch size ``auto`` stands for with this model shape and ``free`` bytes available
    (weights not yet loaded), under ``recipe`` (its dtype, device and row lengths)."""
    width = DTYPE_BYTES.get(recipe.model.dtype, 4)
    fed, context = row_tokens(recipe)
    target = TOKENS * (1 if recipe.model.device == "cpu" else ACCELERATOR)
    size = max(1, target // fed)
    spare = None
    if free is not None:
        spare = max(free - n_params * width, 0)
        per_row = width * hidden * (2 * n_layers * context + IN_FLIGHT * fed)
        size = min(size, spare // 2 // max(per_row, 1))
    return AutoBatch(int(min(max(size, 1), LARGEST)), fed, context, spare)


def resolve_batch_size(recipe: Any, model: Any, n_layers: int, hidden: int) -> int:
    """The batch size ``recipe`` runs with on the loaded ``model``: its own, or for
    ``batch_size: auto`` the size ``auto_batch_size`` picks (the recipe is not changed)."""
    if recipe.batch_size != "auto":
        return int(recipe.batch_size)
    n_params = sum(p.numel() for p in model.parameters())
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    free = available_memory(recipe.model.device)
    free = None if free is None else free + weights  # measured with the weights loaded
    return auto_batch_size(recipe, n_layers, hidden, n_params, free).size
