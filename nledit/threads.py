"""The CPU thread count for torch: the recipe's ``threads`` or a command's ``--threads``."""

from __future__ import annotations

import torch


def apply_threads(threads: int | None) -> None:
    """``torch.set_num_threads(threads)`` when a count is given; otherwise leave torch's."""
    if threads is not None:
        torch.set_num_threads(int(threads))
