"""LEACE: streamed statistics, the erasure property, the gate, and the exported edit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from concept_erasure import LeaceFitter
from conftest import recipe_dict
from safetensors.torch import load_file, save_file

from nledit import pipeline
from nledit.fitting.leace import LeaceError, LeaceStats, eraser_gate
from nledit.recipe import parse_recipe
from nledit.runtime.gate import (
    RANGES_FILE,
    NleditLoadError,
    install_gates,
    load_gates,
    remove_gates,
)

torch.set_num_threads(1)


def _data(n: int = 300, d: int = 12, concepts: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, concepts, (n,), generator=g)
    shift = torch.randn(concepts, d, generator=g, dtype=torch.float64) * 2
    x = torch.randn(n, d, generator=g, dtype=torch.float64) + shift[y]
    return x, y


def _cross_cov(x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    return (x - x.mean(0)).T @ (z - z.mean(0)) / len(x)


def test_streamed_eraser_equals_the_package_fit_on_the_indicator() -> None:
    x, y = _data()
    stats = LeaceStats(x.shape[1], 3, [5])
    for start in range(0, len(x), 64):  # batches, as the statistics pass streams them
        stats.update(5, x[start : start + 64], y[start : start + 64])
    stats.update(7, x, y)  # a layer nobody asked for is ignored
    for c in range(3):
        z = (y == c).to(torch.float64)
        want = LeaceFitter.fit(x, z.unsqueeze(1)).eraser
        got = stats.eraser(5, c)
        torch.testing.assert_close(got(x), want(x), rtol=1e-9, atol=1e-9)
        # the published property: erased features carry no covariance with the concept
        before = _cross_cov(x, z.unsqueeze(1)).abs().max()
        after = _cross_cov(got(x), z.unsqueeze(1)).abs().max()
        assert before > 0.1 and after < 1e-8 * before


def test_no_statistics_is_a_clear_error() -> None:
    with pytest.raises(LeaceError, match="layer 3"):
        LeaceStats(4, 2, [1]).eraser(3, 0)


def test_gate_applies_the_eraser_at_the_gate_positions() -> None:
    x, y = _data(d=6)
    eraser = LeaceStats(6, 3, [0])
    eraser.update(0, x, y)
    er = eraser.eraser(0, 1)
    common = {"method": "leace", "edit": "e", "concept": "b", "layer": 0}
    g = eraser_gate(er, name="e.b", positions="all", **common)
    h = x[:8].to(torch.float32).reshape(2, 4, 6)
    torch.testing.assert_close(g(h), er(h.double()).float(), rtol=1e-5, atol=1e-5)
    last = eraser_gate(er, name="e.b", positions="last", **common)
    out = last(h)
    torch.testing.assert_close(out[:, :-1], h[:, :-1])  # other tokens untouched
    torch.testing.assert_close(out[:, -1], er(h[:, -1].double()).float(), rtol=1e-5, atol=1e-5)


CHILD = r"""
import sys
sys.modules["nledit"] = None  # plain transformers, without nledit
import torch, transformers
from safetensors.torch import load_file, save_file
torch.set_num_threads(1)
model = transformers.AutoModelForCausalLM.from_pretrained(
    sys.argv[1], trust_remote_code=True, dtype=torch.float32
).eval()
with torch.no_grad():
    save_file({"logits": model(**load_file(sys.argv[2])).logits}, sys.argv[3])
"""


@pytest.fixture(scope="module")
def leace_run(tiny_models: dict[str, Path], tiny_data: Path, tmp_path_factory):
    root = tmp_path_factory.mktemp("leace")
    d = recipe_dict(tiny_models["llama"], tiny_data, operator="leace", positions="all")
    d["eval"]["baselines"] = ["neuron", "leace"]
    text = yaml.safe_dump(d, sort_keys=False)
    out = root / "export"
    run = pipeline.run(parse_recipe(d), text, out, False, log=lambda *_: None)
    return run, root


def test_leace_edit_and_baseline_are_in_the_erasure_table(leace_run) -> None:
    run, _ = leace_run
    methods = {r.method for r in run.result.rows}
    assert methods == {"range", "leace"}  # a LEACE edit has no neuron baseline
    (gate,) = run.fitted.edit.gates
    assert gate.spec.operator == "leace" and gate.spec.mode == "vector"
    leace = [g for g in run.fitted.edit.baseline if g.spec.method == "leace"]
    assert len(leace) == 1  # one eraser per target concept
    torch.testing.assert_close(leace[0].proj_left, gate.proj_left)


def test_erased_read_activations_have_no_covariance_with_the_concept(leace_run) -> None:
    from nledit.fitting.collect import capture, read_rows

    run, _ = leace_run
    fitted = run.fitted
    (gate,) = fitted.edit.gates
    cm, layer = fitted.cm, fitted.layers[0]
    rows, labels = [], []
    examples = fitted.data.fit
    for batch in cm.batches(examples.texts, 8, prefix=None):
        with torch.no_grad(), capture(cm.model, {layer: cm.layout.layer_path(layer)}, False) as s:
            cm.model(**batch.inputs)
        rows.append(read_rows(s[layer], batch.read).double())
        labels += examples.labels[batch.rows]
    h = torch.cat(rows)
    z = (torch.tensor(labels) == fitted.data.label_names.index("Sports")).double().unsqueeze(1)
    erased = gate.phi(h.float()).double()
    before, after = _cross_cov(h, z).abs().max(), _cross_cov(erased, z).abs().max()
    assert after < 1e-3 * before, (before, after)


def test_exported_leace_edit_reloads_with_equal_logits(leace_run) -> None:
    run, root = leace_run
    fitted, out = run.fitted, run.out
    assert (out / RANGES_FILE).is_file()
    tokens = fitted.cm.tokenizer(
        ["match goal coach season", "shares profit market bank today"],
        return_tensors="pt",
        padding=True,
    )
    inputs = {k: tokens[k] for k in ("input_ids", "attention_mask")}
    save_file(inputs, str(root / "inputs.safetensors"))
    with torch.no_grad():
        base = fitted.model(**inputs).logits
        install_gates(fitted.model, fitted.layout.layers_path, fitted.edit.gates)
        try:
            edited = fitted.model(**inputs).logits
        finally:
            remove_gates(fitted.model, fitted.edit.gates)
    script = root / "child.py"
    script.write_text(CHILD)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PYTHONPATH": ""}
    env["HF_MODULES_CACHE"] = str(root / "modules")
    args = [str(out), str(root / "inputs.safetensors"), str(root / "logits.safetensors")]
    proc = subprocess.run(
        [sys.executable, str(script), *args], env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = load_file(str(root / "logits.safetensors"))["logits"]
    assert (edited - base).abs().max() > 1e-3  # the edit changes the logits
    assert (got - edited).abs().max() <= 1e-5


def test_a_malformed_eraser_does_not_load(leace_run) -> None:
    run, _ = leace_run
    config = json.loads((run.out / "config.json").read_text())
    tensors = load_file(str(run.out / RANGES_FILE))
    name = next(k for k in tensors if k.endswith(".proj_right"))
    tensors[name] = tensors[name][:, :-1].contiguous()
    from nledit.runtime.gate import tensors_digest

    block = {**config["nledit"], "ranges_sha256": tensors_digest(tensors)}
    path = run.out.parent / "bad.safetensors"
    from safetensors import safe_open

    with safe_open(str(run.out / RANGES_FILE), framework="pt") as f:
        meta = f.metadata()
    save_file(tensors, str(path), metadata=meta)
    with pytest.raises(NleditLoadError, match="eraser"):
        load_gates(str(path), block)


def test_exported_leace_edit_verifies(leace_run) -> None:
    from nledit.commands.verify import verify

    run, _ = leace_run
    findings = verify(run.out)
    assert findings.ok, findings.failures()


def test_a_leace_edit_has_no_neuron_method(leace_run) -> None:
    import dataclasses

    from nledit.checkpoint.write import ExportError
    from nledit.pipeline import checkpoint_gates

    fitted = leace_run[0].fitted
    recipe = fitted.recipe.updated(output=fitted.recipe.output.updated(method="neuron"))
    with pytest.raises(ExportError, match="LEACE edit"):
        checkpoint_gates(dataclasses.replace(fitted, recipe=recipe))
