"""What an exported checkpoint says about itself: ``nledit_manifest.json`` and the model card's
facts, built the same way whether the command line or the Python API exports."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..models.loading import ModelSource
from ..recipe import EditSpec, edit_name
from ..runtime.gate import RangeGate
from .card import CardInfo


def edit_summaries(
    specs: Sequence[EditSpec], layers: Sequence[int], gates: Sequence[RangeGate]
) -> list[dict[str, Any]]:
    """What the card and the manifest say about each edit: its settings, its resolved layer and
    the number of neurons its ``gates`` (named by ``edit_name``) select."""
    out = []
    for i, (edit, layer) in enumerate(zip(specs, layers)):
        name = edit_name(edit, i)
        own = [g for g in gates if g.spec.edit == name]
        k = sum(int(g.spec.k) for g in own)
        quorum = {
            "setting": edit.quorum,
            "neurons": {g.spec.concept: int(g.spec.quorum) for g in own},
        }
        out.append(
            {
                "name": name,
                "concepts": edit.concepts,
                "layer": layer,
                "saliency": edit.saliency,
                "top_p": edit.top_p,
                "tau": edit.tau,
                "operator": edit.operator.model_dump(),
                "n_neurons": k,
                **({"quorum": quorum} if edit.quorum is not None else {}),
                **edit.model_dump(
                    include={"preset", "range", "quantiles", "trim_overlap", "selectivity"}
                    | ({"magnitude_weight"} if edit.saliency == "selective" else set()),
                    exclude_defaults=True,
                ),
            }
        )
    return out


def _name(source: str) -> str:
    """A local data source as the card names it: its file or folder name, never its path."""
    return source.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]


# The parts of an evaluation (``EvalResult.to_dict``) that the model card shows.
CARD_METRICS = (
    "erasure",
    "perplexity",
    "perplexity_ci",
    "competence",
    "calibration",
    "transfer",
    "seeds",
)


def describe_checkpoint(
    source: ModelSource,
    *,
    method: str,
    weights: str,
    seed: int | None,
    data: dict[str, Any],
    edits: list[dict[str, Any]],
    metrics: dict[str, Any],
    recipe_text: str,
    is_lm: bool,
    datasets: Sequence[str] = (),
    timings: dict[str, float] | None = None,
) -> tuple[dict[str, Any], CardInfo]:
    """The manifest and the card of a checkpoint of ``source``'s model carrying ``edits`` (their
    summaries), exported as ``method`` with ``weights`` ("copy" or "reference"); ``metrics``:
    the evaluation as plain data (empty when there was none); ``data``: what the edit was fitted
    on; ``datasets``: Hub data sets the card names; ``timings``: seconds per step."""
    manifest: dict[str, Any] = {
        "method": method,
        "seed": seed,
        "base_model": {
            "origin": source.origin,
            "kind": source.kind,
            "revision": source.revision,
            "gguf_sha256": source.gguf_sha256,
            "hub_id": source.base_model,
            **({"fine_tuned": source.fine_tuned} if source.fine_tuned else {}),
        },
        "data": data,
        "edits": edits,
        **({"timings": dict(timings)} if timings is not None else {}),
        "metrics": metrics,
    }
    card = CardInfo(
        base_model=source.origin,
        hub_base_model=source.base_model,
        fine_tuned=source.fine_tuned,
        weights=weights,
        base_revision=source.revision,
        datasets=list(datasets),
        local_data=[] if datasets or not data.get("source") else [_name(str(data["source"]))],
        edits=edits,
        metrics={k: metrics[k] for k in CARD_METRICS if metrics.get(k)},
        recipe_yaml=recipe_text,
        method=method,
        auto_class="AutoModelForCausalLM" if is_lm else "AutoModelForSequenceClassification",
    )
    return manifest, card
