"""An export's edit, read back for a model already in memory (``Edit.from_pretrained``).

Only data is read (config.json, the range file, the manifest and the recipe copy), never the
export's code, and only from a folder that passes every integrity check.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..checkpoint.integrity import check_export
from ..errors import EditError
from ..recipe import PromptSpec
from . import gate

RECIPE_FILE = "nledit_recipe.yaml"
_TASKS = {
    "AutoModelForCausalLM": "causal-lm",
    "AutoModelForSequenceClassification": "sequence-classification",
}


@dataclass
class ExportedEdit:
    """What an export says about its edit, in the terms of ``nledit.Edit``."""

    gates: list[gate.RangeGate]
    layers_path: str
    label_names: list[str]
    prompt: PromptSpec
    max_length: int
    task: str
    definition: dict[str, Any]


def read_export(path: str | Path) -> ExportedEdit:
    """The edit of the export in ``path``; an ``EditError`` (or ``IntegrityError``) says why
    it cannot be read."""
    folder = Path(path)
    manifest = check_export(folder, "read its edit").manifest
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        block = config["nledit"]
        gates = gate.load_gates(str(folder / gate.RANGES_FILE), block)
        recipe = yaml.safe_load((folder / RECIPE_FILE).read_text(encoding="utf-8")) or {}
        auto = next(k for k in config.get("auto_map", {}) if k in _TASKS)
        data = recipe.get("data") or {}
        return ExportedEdit(
            gates=gates,
            layers_path=str(block["layers_path"]),
            label_names=[str(n) for n in (manifest.get("data") or {}).get("label_names") or []],
            prompt=PromptSpec.model_validate(recipe.get("prompt") or {}),
            max_length=int(data.get("max_length") or 512),
            task=_TASKS[auto],
            definition={"edit_sha256": block.get("edit_sha256"), "export": folder.name},
        )
    except gate.NleditLoadError as err:
        raise EditError(str(err)) from None
    except (OSError, ValueError, KeyError, TypeError, AttributeError, StopIteration) as err:
        detail = f"{type(err).__name__}: {err}".splitlines()[0]
        raise EditError(f"{folder}: not a readable nledit export ({detail})") from None
