"""The CPU thread count for torch: the recipe's ``threads`` or a command's ``--threads``.

Nothing is pinned unless a count is given, and the count governs CPU work only (intra-op threads
of CPU kernels): on an accelerator it limits the host-side work (tokenising, statistics in
float64 on the CPU), never the device's kernels."""

from __future__ import annotations

import argparse
import os

from nledit.errors import FlagError


def usable_cpus() -> int:
    """How many CPUs this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def apply_threads(threads: int | None, field: str = "threads") -> None:
    """``torch.set_num_threads(threads)`` when a count is given; otherwise leave torch's.

    A count above the CPUs this process may use is refused (naming ``field``): torch would
    accept it and only run slower."""
    if threads is not None:
        if threads > (cpus := usable_cpus()):
            raise FlagError(
                f"{field}: {threads} threads is more than the {cpus} CPU(s) this process may "
                f"use (at most {cpus})"
            )
        import torch  # here, so the command line's --help does not load torch

        torch.set_num_threads(int(threads))


def _positive(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, got {text!r}")
    return n


def threads_option(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add ``--threads N`` to a command's parser; returns the parser."""
    p.add_argument(
        "--threads",
        type=_positive,
        help="torch CPU threads (recipe: threads; one is fastest on a busy machine)",
    )
    return p
