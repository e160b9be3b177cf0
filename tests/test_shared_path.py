"""One preparation and gate-building path: run, fit, sweep, tune, inspect and the API give
byte-identical gates for the same settings."""

from __future__ import annotations

from pathlib import Path

import torch
import yaml
from conftest import recipe_dict
from transformers import AutoModelForCausalLM, AutoTokenizer

import nledit
import nledit.analysis.inspection
from nledit.fitting.recipe_fit import fit as fit_recipe
from nledit.recipe import load_recipe
from nledit.runtime.gate import RangeGate, gate_tensors
from nledit.sweep.points import build_points
from nledit.tune.trial import build_gates, tune_context

SETTINGS = {"saliency": "probeless", "range": "quantile", "top_p": 0.3}  # samples needed


def _bytes(gates: list[RangeGate]) -> dict[str, bytes]:
    tensors = gate_tensors(gates)
    return {k: v.contiguous().view(torch.uint8).numpy().tobytes() for k, v in tensors.items()}


def test_every_job_builds_the_same_gates(
    tiny_models, tiny_data: Path, tmp_path: Path, monkeypatch
) -> None:
    # a sample smaller than the fitting examples: every job must draw the same rows
    monkeypatch.setattr(nledit.fitting.prepare, "RESERVOIR_ROWS", 5)
    d = recipe_dict(tiny_models["llama"], tiny_data, **SETTINGS)
    d["tune"] = {"dir": str(tmp_path / "t"), "val_per_class": 4, "objectives": ["d_acc"]}
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(d, sort_keys=False))
    recipe, text = load_recipe(path)
    edit = recipe.edits[0]

    fitted = fit_recipe(recipe, text)  # nledit run / nledit fit
    want = _bytes(fitted.edit.gates)
    specs = [g.spec for g in fitted.edit.gates]

    model_dir = str(tiny_models["llama"])
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    tok = AutoTokenizer.from_pretrained(model_dir)
    api = nledit.fit(model, tok, d["data"], d["edits"], d["prompt"], batch_size=d["batch_size"])
    assert _bytes(api.gates) == want and [g.spec for g in api.gates] == specs

    ctx = tune_context(recipe, text, log=lambda *_: None)  # nledit tune
    tuned = build_gates(ctx, edit)
    assert _bytes(tuned) == want and [g.spec for g in tuned] == specs

    layer = fitted.layers[0]  # nledit sweep, at the recipe's own tau
    prep = nledit.fitting.prepare.Prepared(
        fitted.cm, fitted.stats, fitted.reservoir, None, recipe.seed
    )
    points = build_points(recipe, "tau", [edit.tau], [layer], prep)
    swept = [p.gate for p in points if p.method == "range"]
    assert _bytes(swept) == want and [g.spec for g in swept] == specs

    seen = {}  # nledit inspect: the same ranges for the concept
    real = nledit.analysis.inspection.build_report

    def capture(samples, texts, saliency, ranges, *args, **kwargs):
        seen.update(ranges)
        return real(samples, texts, saliency, ranges, *args, **kwargs)

    monkeypatch.setattr(nledit.analysis.inspection, "build_report", capture)
    nledit.analysis.inspection.inspect(recipe, text, tmp_path / "report", overwrite=False)
    index, lo, hi, _ = seen["Sports"]
    g = fitted.edit.gates[0]
    assert index.tolist() == g.index.tolist()
    # the report reads the float64 table; a gate stores float32
    assert lo.astype("float32").tobytes() == g.lo.numpy().tobytes()
    assert hi.astype("float32").tobytes() == g.hi.numpy().tobytes()
