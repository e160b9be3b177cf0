"""The table of a sweep, as written to ``sweep_<over>.json`` and drawn by ``sweep_plot``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

METHODS = ("range", "neuron")  # range masking against neuron masking, in this order


@dataclass
class SweepResult:
    over: str
    values: list[int | float]
    rows: list[dict[str, Any]]
    settings: dict[str, Any]
    base: dict[str, float] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> SweepResult:
        """Back from ``sweep_<over>.json`` (e.g. to redraw the figure)."""
        keys = ("over", "values", "rows", "settings", "base", "timings")
        return cls(**{k: doc[k] for k in keys})

    def to_dict(self) -> dict[str, Any]:
        return {
            "over": self.over,
            "values": self.values,
            "settings": self.settings,
            "base": self.base,
            "timings": self.timings,
            "rows": self.rows,
        }
