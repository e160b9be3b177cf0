"""Record lm-evaluation-harness figures in an export: results.json, the manifest and the card,
and the hashes of exactly those files."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from ..checkpoint.card import CardInfo, card_from_fields, write_card
from ..checkpoint.manifest import CARD_METRICS
from ..checkpoint.write import MANIFEST_FILE, RECIPE_FILE, sha256_file


def _write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def merge_into_checkpoint(out: Path, lm: dict[str, Any]) -> None:
    """Add lm-eval figures to results.json, the manifest and the card, and their hashes."""
    results_path = out / "results.json"
    results = json.loads(results_path.read_text()) if results_path.is_file() else {}
    results["lm_eval"] = lm
    _write_atomic(results_path, json.dumps(results, indent=2, default=str) + "\n")
    manifest = json.loads((out / MANIFEST_FILE).read_text())
    metrics = manifest.setdefault("metrics", {})
    metrics["lm_eval"] = lm
    card_metrics = {k: metrics[k] for k in CARD_METRICS if metrics.get(k)}
    card_metrics |= {"erasure": metrics.get("erasure", []), "lm_eval": lm}
    recipe_yaml = (out / RECIPE_FILE).read_text(encoding="utf-8")
    if isinstance(manifest.get("card"), dict):  # exports since the card block was added
        write_card(out, card_from_fields(manifest["card"], card_metrics, recipe_yaml))
    else:
        write_card(out, _card_of_older_export(out, manifest, card_metrics, recipe_yaml))
    for name in ("results.json", "README.md"):  # the files written above, and only those
        manifest["files"][name] = sha256_file(out / name)
    _write_atomic(out / MANIFEST_FILE, json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def _card_of_older_export(
    out: Path, manifest: dict[str, Any], card_metrics: dict[str, Any], recipe_yaml: str
) -> CardInfo:
    """The card of an export whose manifest has no ``card`` block, from what it does hold."""
    config = json.loads((out / "config.json").read_text(encoding="utf-8"))
    return CardInfo(
        base_model=manifest["base_model"]["origin"],
        hub_base_model=manifest["base_model"].get("hub_id"),
        weights=manifest.get("weights", "copy"),
        method=manifest.get("method", "range"),
        auto_class=next(
            (k for k in config.get("auto_map", {}) if k.startswith("AutoModelFor")),
            "AutoModelForCausalLM",
        ),
        base_revision=manifest["base_model"].get("revision"),
        edits=manifest.get("edits", []),
        metrics=card_metrics,
        recipe_yaml=recipe_yaml,
    )
