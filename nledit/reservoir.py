"""A bounded, seeded reservoir sample of activations per (layer, concept).

Memory stays at ``capacity`` rows per concept whatever the data size (Vitter's algorithm R);
the probe ranking and the distribution analysis read from it. Each (layer, concept) draws from
its own seeded generator, so a layer's sample does not depend on which other layers a pass
collects (a tuning pass over several layers samples the same rows as a run at one).
"""

from __future__ import annotations

import random

import numpy as np
import torch


class Reservoir:
    """At most ``capacity`` uniformly drawn activation rows per (layer, concept)."""

    def __init__(self, capacity: int, seed: int = 0) -> None:
        self.capacity = capacity
        self.seed = seed
        self.rngs: dict[tuple[int, int], random.Random] = {}
        self.rows: dict[tuple[int, int], list[np.ndarray]] = {}
        self.ids: dict[tuple[int, int], list[int]] = {}
        self.seen: dict[tuple[int, int], int] = {}

    def add(self, layer: int, h: torch.Tensor, labels: torch.Tensor, ids: list[int]) -> None:
        """Offer the rows ``h`` (labelled by concept id, numbered by example id) at ``layer``."""
        x = h.detach().to("cpu", torch.float32).numpy()
        for row, y, i in zip(x, labels.tolist(), ids):
            key = (layer, int(y))
            n = self.seen.get(key, 0)
            rows, idx = self.rows.setdefault(key, []), self.ids.setdefault(key, [])
            if n < self.capacity:
                rows.append(row.copy())
                idx.append(i)
            else:
                rng = self.rngs.get(key)
                if rng is None:  # str seeds hash the same in every process
                    rng = self.rngs[key] = random.Random(f"{self.seed}/{key[0]}/{key[1]}")
                j = rng.randrange(n + 1)
                if j < self.capacity:
                    rows[j], idx[j] = row.copy(), i
            self.seen[key] = n + 1

    def samples(self, layer: int, n_concepts: int) -> dict[int, np.ndarray]:
        """Concept id -> (n, d) array of sampled activations at ``layer``."""
        out = {}
        for c in range(n_concepts):
            rows = self.rows.get((layer, c), [])
            out[c] = np.stack(rows) if rows else np.zeros((0, 0), dtype=np.float32)
        return out

    def example_ids(self, layer: int, concept: int) -> list[int]:
        """The example ids of the rows sampled for ``concept`` at ``layer``."""
        return list(self.ids.get((layer, concept), []))
