"""A bounded, seeded reservoir sample of activations per (layer, concept).

Memory stays at ``capacity`` rows per concept whatever the data size (Vitter's algorithm R);
the probe ranking and the distribution analysis read from it. Each (layer, concept) draws from
its own seeded generator, so a layer's sample does not depend on which other layers a pass
collects (a tuning pass over several layers samples the same rows as a run at one).

Across processes (each streaming one shard of the fitting examples), the sample is the one a
single process keeps, exactly: which stream positions algorithm R keeps depends only on the
generator and the number of rows, not on their values. Given its shard's ``Placement`` (each
local example's position among all examples of its concept), every process replays the draws
of the whole stream, keeps the rows of its own positions that survive, and ``absorb`` puts the
survivors of all processes into their slots once they are gathered (see ``distributed``).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

Key = tuple[int, int]  # (layer, concept)


@dataclass(frozen=True)
class Placement:
    """Where one shard's examples sit in the whole fitting set."""

    ids: list[int]  # the whole set's example id of each local example
    ranks: list[int]  # its position among the whole set's examples of its concept
    totals: dict[int, int]  # examples per concept in the whole set


def shard_placement(labels: Sequence[int], index: int, count: int) -> Placement:
    """The placement of the shard ``labels[index::count]`` (concept ids of the whole set)."""
    seen: dict[int, int] = {}
    ranks = []
    for y in labels:
        ranks.append(seen.get(int(y), 0))
        seen[int(y)] = ranks[-1] + 1
    ids = list(range(index, len(labels), count))
    return Placement(ids, [ranks[i] for i in ids], seen)


class Reservoir:
    """At most ``capacity`` uniformly drawn activation rows per (layer, concept).

    ``placement``: this process streams one shard of the examples (see the module docstring);
    the sample is complete only after ``absorb``."""

    def __init__(self, capacity: int, seed: int = 0, placement: Placement | None = None) -> None:
        self.capacity = capacity
        self.seed = seed
        self.placement = placement
        self.rngs: dict[Key, random.Random] = {}
        self.rows: dict[Key, list[np.ndarray]] = {}
        self.ids: dict[Key, list[int]] = {}
        self.seen: dict[Key, int] = {}
        self._slots: dict[Key, list[int]] = {}  # shard: slot -> stream position
        self._own: dict[Key, dict[int, tuple[np.ndarray, int]]] = {}  # position -> (row, id)

    def _draw(self, key: Key, n: int) -> int | None:
        """The slot the ``n``-th row of ``key``'s stream goes to (None: not kept)."""
        if n < self.capacity:
            return n
        rng = self.rngs.get(key)
        if rng is None:  # str seeds hash the same in every process
            rng = self.rngs[key] = random.Random(f"{self.seed}/{key[0]}/{key[1]}")
        j = rng.randrange(n + 1)
        return j if j < self.capacity else None

    def add(self, layer: int, h: torch.Tensor, labels: torch.Tensor, ids: list[int]) -> None:
        """Offer the rows ``h`` (labelled by concept id, numbered by example id) at ``layer``."""
        x = h.detach().to("cpu", torch.float32).numpy()
        for row, y, i in zip(x, labels.tolist(), ids):
            key = (layer, int(y))
            if self.placement is not None:
                self._add_placed(key, row, i)
                continue
            n = self.seen.get(key, 0)
            rows, idx = self.rows.setdefault(key, []), self.ids.setdefault(key, [])
            j = self._draw(key, n)
            if j is not None and j == len(rows):
                rows.append(row.copy())
                idx.append(i)
            elif j is not None:
                rows[j], idx[j] = row.copy(), i
            self.seen[key] = n + 1

    def _add_placed(self, key: Key, row: np.ndarray, local: int) -> None:
        """A shard's row: replay the other shards' draws up to its position, then draw it."""
        assert self.placement is not None
        position = self.placement.ranks[local]
        self._replay(key, position)
        own = (row.copy(), self.placement.ids[local])
        self._place(key, self._draw(key, position), position, own)
        self.seen[key] = position + 1

    def _replay(self, key: Key, upto: int) -> None:
        """Draw the positions before ``upto`` not yet drawn (rows of other shards)."""
        for n in range(self.seen.get(key, 0), upto):
            self._place(key, self._draw(key, n), n, None)
        self.seen[key] = max(self.seen.get(key, 0), upto)

    def _place(
        self, key: Key, slot: int | None, position: int, own: tuple[np.ndarray, int] | None
    ) -> None:
        if slot is None:
            return
        slots, mine = self._slots.setdefault(key, []), self._own.setdefault(key, {})
        if slot == len(slots):
            slots.append(position)
        else:
            mine.pop(slots[slot], None)  # evicted
            slots[slot] = position
        if own is not None:
            mine[position] = own

    def local_rows(self, layers: Sequence[int], d: int) -> tuple[torch.Tensor, torch.Tensor]:
        """A shard's surviving rows once the whole stream is drawn: (m, 4) int64 of (layer,
        concept, slot, example id) and (m, d) float32 rows, to gather across processes."""
        assert self.placement is not None
        meta, rows = [], []
        for layer in layers:
            for c, total in sorted(self.placement.totals.items()):
                key = (layer, c)
                self._replay(key, total)
                mine = self._own.get(key, {})
                for slot, position in enumerate(self._slots.get(key, [])):
                    if position in mine:
                        row, i = mine[position]
                        meta.append([layer, c, slot, i])
                        rows.append(row)
        meta_t = torch.tensor(meta, dtype=torch.long).reshape(-1, 4)
        rows_t = torch.from_numpy(np.stack(rows)) if rows else torch.zeros(0, d)
        return meta_t, rows_t.to(torch.float32)

    def absorb(self, meta: torch.Tensor, rows: torch.Tensor) -> None:
        """Become the whole-set sample from every shard's ``local_rows`` (concatenated)."""
        assert self.placement is not None
        totals = self.placement.totals
        filled: dict[Key, dict[int, tuple[np.ndarray, int]]] = {}
        x = rows.numpy()
        for (layer, c, slot, i), row in zip(meta.tolist(), x):
            filled.setdefault((layer, c), {})[slot] = (row.copy(), i)
        self.rows, self.ids = {}, {}
        for key, by_slot in sorted(filled.items()):
            n = min(self.capacity, totals[key[1]])
            if sorted(by_slot) != list(range(n)):
                raise RuntimeError(f"reservoir merge: layer {key[0]} concept {key[1]} is short")
            self.rows[key] = [by_slot[s][0] for s in range(n)]
            self.ids[key] = [by_slot[s][1] for s in range(n)]
            self.seen[key] = totals[key[1]]
        self.placement, self._slots, self._own = None, {}, {}

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

    def to_tensors(self) -> tuple[dict[str, torch.Tensor], dict[str, int]]:
        """The sample as tensors (``<layer>.<concept>.rows`` and ``.ids``) and the number of
        rows each stream saw, for a file; ``from_tensors`` reads them back."""
        tensors: dict[str, torch.Tensor] = {}
        seen: dict[str, int] = {}
        for (layer, c), rows in self.rows.items():
            key = f"{layer}.{c}"
            tensors[f"{key}.rows"] = torch.from_numpy(np.stack(rows)).contiguous()
            tensors[f"{key}.ids"] = torch.tensor(self.ids[(layer, c)], dtype=torch.long)
            seen[key] = self.seen[(layer, c)]
        return tensors, seen

    @classmethod
    def from_tensors(
        cls, capacity: int, seed: int, tensors: dict[str, torch.Tensor], seen: dict[str, int]
    ) -> Reservoir:
        """A complete sample from what ``to_tensors`` wrote."""
        out = cls(capacity, seed)
        for key, n in seen.items():
            layer, c = (int(x) for x in key.split("."))
            out.rows[(layer, c)] = [r.copy() for r in tensors[f"{key}.rows"].numpy()]
            out.ids[(layer, c)] = tensors[f"{key}.ids"].tolist()
            out.seen[(layer, c)] = int(n)
        return out
