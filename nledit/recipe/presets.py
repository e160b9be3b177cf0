"""Named edit settings: ``edits.N.preset`` fills the fields an edit leaves out.

- ``paper``: NeuronLens's default (the last layer, max-activation saliency, top 30 %, mu ± 2.5
  sigma, zero): the plain field defaults of ``EditSpec`` and ``gate.TAU``, stated there once,
  so the preset sets nothing; also the ``paper`` comparison row.
- ``selective``: an edit that removes its concept and leaves the other concepts and general
  text nearly untouched, without tuning: four layers below the top, the half of the neurons
  whose concept mean lies farthest from the other concepts' (probeless saliency), mu ± 3.5
  sigma trimmed to where the concept dominates, and a fitted quorum. docs/tune.md measures it
  on nine data sets.

Fields written in the edit always win over the preset's.
"""

from __future__ import annotations

from typing import Any

PAPER: dict[str, Any] = {}  # the field defaults
SELECTIVE: dict[str, Any] = {
    "layer": -4,
    "saliency": "probeless",
    "top_p": 0.5,
    "tau": 3.5,
    "trim_overlap": True,
    "quorum": "auto",
    "operator": "zero",
}
PRESETS: dict[str, dict[str, Any]] = {"paper": PAPER, "selective": SELECTIVE}


def with_preset(data: Any) -> Any:
    """An edit mapping with its preset's settings filled in where the mapping has none
    (anything else passes through for the model's own validation to judge)."""
    if not isinstance(data, dict) or data.get("preset") not in PRESETS:
        return data
    return {**PRESETS[data["preset"]], **data}
