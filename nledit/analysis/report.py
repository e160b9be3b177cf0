"""The content of the inspection report (statistics, examples, figures) and its JSON form;
``analysis.page`` renders it as HTML and writes the report folder."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nledit.analysis.stats import AurocSummary, DistributionStats

REPORT_HTML = "report.html"
ANALYSIS_JSON = "analysis.json"
REPORT_MARKERS = (ANALYSIS_JSON, REPORT_HTML)
OVERLAP_PNG = "overlap.png"


@dataclass
class ExampleText:
    """One sample shown next to a range bound."""

    index: int  # row in the concept's sample array
    value: float  # the neuron's activation on this sample
    text: str
    concept: str | None = None  # the sample's own concept, when drawn from a pooled set

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "value": self.value,
            "text": self.text,
            "concept": self.concept,
        }


@dataclass
class BoundExamples:
    """Samples nearest the lower bound, mean and upper bound of one neuron's range (Table 2)."""

    concept: str
    neuron: int
    rank_group: str  # "top", "middle" or "bottom" by saliency
    lo: float
    mu: float
    hi: float
    lower: list[ExampleText]
    mean: list[ExampleText]
    upper: list[ExampleText]
    fitted: bool = True  # False when the range was computed here rather than supplied

    def to_dict(self) -> dict[str, Any]:
        return {
            "concept": self.concept,
            "neuron": self.neuron,
            "rank_group": self.rank_group,
            "lo": self.lo,
            "mu": self.mu,
            "hi": self.hi,
            "fitted": self.fitted,
            "lower": [e.to_dict() for e in self.lower],
            "mean": [e.to_dict() for e in self.mean],
            "upper": [e.to_dict() for e in self.upper],
        }


@dataclass
class KdeFigure:
    """A KDE figure of one concept's top-, middle- and bottom-ranked neurons (Fig. 3)."""

    concept: str
    neurons: list[int]
    groups: list[str]  # rank group of each neuron
    png: bytes
    filename: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "concept": self.concept,
            "neurons": self.neurons,
            "groups": self.groups,
            "file": self.filename,
        }


@dataclass
class InspectReport:
    """Everything the report shows; absent parts are simply left out of the page."""

    model_name: str
    layer: int
    concepts: list[str]
    stats: dict[str, DistributionStats] = field(default_factory=dict)
    pair_overlaps: list[AurocSummary] = field(default_factory=list)
    pooled_overlap: AurocSummary | None = None  # all pairs together (Table 5, "All Data")
    overlap_names: list[str] = field(default_factory=list)
    overlap_matrix: np.ndarray | None = None
    overlap_p: float | None = None
    overlap_png: bytes | None = None
    kde_figures: list[KdeFigure] = field(default_factory=list)
    bound_examples: list[BoundExamples] = field(default_factory=list)
    erasure_rows: list[dict[str, Any]] | None = None
    layer_stats: list[dict[str, Any]] | None = None
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """All numbers of the report in JSON-serialisable form (figures by file name)."""
        matrix = None if self.overlap_matrix is None else np.asarray(self.overlap_matrix).tolist()
        return _jsonable(
            {
                "model_name": self.model_name,
                "layer": self.layer,
                "concepts": self.concepts,
                "settings": self.settings,
                "distribution_stats": {c: s.to_dict() for c, s in self.stats.items()},
                "pairwise_auroc": [s.to_dict() for s in self.pair_overlaps],
                "pairwise_auroc_pooled": (
                    self.pooled_overlap.to_dict() if self.pooled_overlap else None
                ),
                "topk_overlap": {
                    "p": self.overlap_p,
                    "names": self.overlap_names,
                    "matrix": matrix,
                    "file": OVERLAP_PNG if self.overlap_png else None,
                },
                "kde_figures": [f.to_dict() for f in self.kde_figures],
                "bound_examples": [b.to_dict() for b in self.bound_examples],
                "erasure": self.erasure_rows,
                "layer_stats": self.layer_stats,
            }
        )


def _jsonable(obj: Any) -> Any:
    """Convert numpy values and non-finite floats (to null) recursively."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if obj is None or isinstance(obj, bool | int | float | str):
        return obj
    return str(obj)
