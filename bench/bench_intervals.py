"""Cost of the figures' intervals: base competence and the paired bootstrap of one erasure row,
from cached per-example results (no forward pass), at evaluation-split sizes.

    python bench/bench_intervals.py
"""

from __future__ import annotations

import time

import torch

from nledit.evaluation.bootstrap import delta_intervals, ppl_interval, stratified_indices
from nledit.evaluation.competence import competence


def main() -> None:
    """Print seconds per call of each step for a few split sizes."""
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(0)
    for classes, per in ((2, 50), (4, 25), (4, 100), (10, 100)):
        gold = torch.arange(classes).repeat_interleave(per)
        probs = torch.softmax(torch.randn(len(gold), classes, generator=gen), -1)
        edited = torch.softmax(torch.randn(len(gold), classes, generator=gen), -1)
        names = [f"c{i}" for i in range(classes)]
        t0 = time.perf_counter()
        competence(probs.argmax(-1), gold, names, ["c0"])
        t1 = time.perf_counter()
        idx, order = stratified_indices(gold)
        delta_intervals((probs, probs.argmax(-1)), (edited, edited.argmax(-1)), gold, 0, idx, order)
        t2 = time.perf_counter()
        ppl_interval(torch.rand(64) * 700, torch.rand(64) * 700, 255)
        t3 = time.perf_counter()
        print(
            f"{classes} classes x {per}: competence {t1 - t0:.3f}s, one row's intervals "
            f"{t2 - t1:.3f}s, ΔPPL interval (64 windows) {t3 - t2:.3f}s"
        )


if __name__ == "__main__":
    main()
