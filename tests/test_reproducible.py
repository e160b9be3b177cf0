"""Same recipe and seed give byte-identical range files; inspect writes a report."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from nledit.cli import main


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_same_recipe_same_ranges_bytes(tiny_models, tiny_data, make_recipe, tmp_path) -> None:
    recipe = make_recipe(tiny_models["llama"], tiny_data, saliency="random")
    out = tmp_path / "out"  # the same recipe: output.dir is part of it
    assert main(["run", str(recipe), "--out", str(out)]) == 0
    first = _sha(out / "nledit_ranges.safetensors")
    assert main(["run", str(recipe), "--out", str(out), "--overwrite"]) == 0
    assert _sha(out / "nledit_ranges.safetensors") == first
    assert main(["run", str(recipe), "--out", str(out), "--overwrite", "--seed", "1"]) == 0
    assert _sha(out / "nledit_ranges.safetensors") != first


def test_inspect_writes_a_report(tiny_models, tiny_data, make_recipe, tmp_path) -> None:
    recipe = make_recipe(tiny_models["gpt2"], tiny_data)
    out = tmp_path / "report"
    assert main(["inspect", str(recipe), "--report", str(out), "--all-layers"]) == 0
    html = (out / "report.html").read_text()
    assert "<img" in html and "http://" not in html and "https://" not in html
    data = json.loads((out / "analysis.json").read_text())
    assert data["layer"] == 2 and len(data["concepts"]) == 4
    assert len(data["layer_stats"]) == 3  # layers 0..2
