"""Distribution analysis of concept-conditioned neuron activations (paper §3, §4, App. D-F).

`stats` holds the numbers (normality, pairwise AUROC, salient-set overlap, bound examples),
`plots` turns them into PNG figures, `build` assembles an `InspectReport` from raw activations
and `report` holds its content, which `page` writes as a self-contained HTML page plus a JSON file;
`inspection` makes the report of a recipe (`nledit inspect`).

Names are resolved lazily so that importing `nledit.analysis.stats` does not load matplotlib.
"""

from __future__ import annotations

from ..lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "AurocSummary": "stats",
    "DistributionStats": "stats",
    "auroc_summary": "stats",
    "distribution_stats": "stats",
    "nearest_to_bounds": "stats",
    "pairwise_auroc": "stats",
    "top_neurons": "stats",
    "topk_overlap": "stats",
    "plot_kde": "plots",
    "plot_overlap_heatmap": "plots",
    "BoundExamples": "report",
    "ExampleText": "report",
    "InspectReport": "report",
    "KdeFigure": "report",
    "write_report": "page",
    "all_layer_stats": "build",
    "build_report": "build",
    "inspect": "inspection",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
