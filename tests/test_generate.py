"""`nledit generate`: base and edited continuations side by side, from an export or in memory."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import torch
import yaml
from conftest import recipe_dict

from nledit.cli import main
from nledit.evaluation.generation import Decoding, _nucleus, compare, render

FAST = ["--set", "eval.enabled=false"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory, tiny_models, tiny_data) -> Path:
    root = tmp_path_factory.mktemp("gen")
    d = recipe_dict(tiny_models["llama"], tiny_data, top_p=1.0, tau=50.0)  # fires everywhere
    (root / "r.yaml").write_text(yaml.safe_dump(d))
    assert main(["run", str(root / "r.yaml"), "--out", str(root / "out"), *FAST]) == 0
    return root / "out"


def test_cli_prints_both_sides_and_writes_json(exported: Path, tmp_path: Path, capsys) -> None:
    target = tmp_path / "gen.json"
    argv = ["generate", str(exported), "--prompt", "match goal", "--max-new-tokens", "5"]
    assert main([*argv, "--json", str(target)]) == 0
    text = capsys.readouterr().out
    assert "| base |" in text and "| edited |" in text and "`Sports`" in text
    doc = json.loads(target.read_text())
    (c,) = doc["comparisons"]
    assert c["prompt"] == "match goal"
    steps = len(c["base"]["label_probs"][" Sports"])
    assert 1 <= steps <= 5
    assert main([*argv, "--json", str(target)]) == 0  # an earlier comparison may be replaced
    other = tmp_path / "notes.txt"
    other.write_text("mine")
    assert main([*argv, "--json", str(other)]) == 2
    assert other.read_text() == "mine"
    assert main(["generate", str(exported)]) == 2  # no prompt


def test_gates_change_the_continuation_and_raise_no_deprecation(exported: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(exported, trust_remote_code=True)
    model = AutoModelForCausalLM.from_pretrained(exported, trust_remote_code=True).eval()
    torch.manual_seed(0)
    with torch.no_grad():  # the tiny model's head is near zero: give its logits some spread
        model.lm_head.weight.normal_(0, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        (c,) = compare(model, tok, ["match goal coach"], [" Sports", " World"], Decoding(6))
    assert c.base.label_probs != c.edited.label_probs  # the edit fires on every activation
    model.nledit_enabled(False)
    (off,) = compare(model, tok, ["match goal coach"], [" Sports"], Decoding(6))
    assert off.base == off.edited  # every gate off: both sides are the base model
    assert "match goal coach" in render([c])


def test_sampling_is_seeded_and_nucleus_keeps_the_top_mass() -> None:
    p = torch.tensor([0.5, 0.3, 0.15, 0.05])
    kept = _nucleus(p, 0.7)
    assert torch.allclose(kept, torch.tensor([0.625, 0.375, 0.0, 0.0]))
    assert torch.equal(_nucleus(p, 1.0), p)


def test_recipe_prompts_put_examples_in_the_card(tmp_path: Path, tiny_models, tiny_data) -> None:
    d = recipe_dict(tiny_models["llama"], tiny_data, top_p=1.0, tau=50.0)
    d["eval"].update(generate_prompts=["match goal coach"], generate_tokens=4)
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(d))
    assert main(["run", str(tmp_path / "r.yaml"), "--out", str(tmp_path / "out"), *FAST]) == 0
    card = (tmp_path / "out" / "README.md").read_text()
    assert "## What the edit does to generated text" in card
    assert "**Prompt:** match goal coach" in card and "| edited |" in card
    assert main(["verify", str(tmp_path / "out")]) == 0  # the card is listed in the manifest
