"""The quorum of a range edit: the gate acts on a token only when enough of its neurons lie
inside their ranges there (`nledit/runtime/gate.py`), and how the count is fitted
(`nledit/fitting/quorum.py`)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from nledit.errors import NleditError
from nledit.fitting.quorum import best_count, fit_quorum, in_range_counts, pass_rates
from nledit.recipe import RecipeError, parse_recipe
from nledit.runtime.gate import (
    NleditLoadError,
    RangeGate,
    install_gates,
    load_gates,
    remove_gates,
    save_ranges,
)

K = 4
INDEX = torch.arange(K)
LO = torch.zeros(K)
HI = torch.ones(K)


def gate(quorum: int, mode: str = "range") -> RangeGate:
    spec = {
        "name": "e.t",
        "edit": "e",
        "concept": "t",
        "layer": 0,
        "operator": "zero",
        "params": {},
        "mode": mode,
        "positions": "all",
        "k": K,
    }
    if quorum:
        spec["quorum"] = quorum
    z = torch.zeros(K)
    tensors = {"index": INDEX, "lo": LO, "hi": HI, "mu": z, "sigma": z, "value": z}
    return RangeGate(spec, tensors)


def tokens(inside_counts: list[int]) -> torch.Tensor:
    """(1, T, K): token t has its first ``inside_counts[t]`` neurons inside [0, 1] (0.5), the
    rest outside (5.0)."""
    h = torch.full((1, len(inside_counts), K), 5.0)
    for t, n in enumerate(inside_counts):
        h[0, t, :n] = 0.5
    return h


@pytest.mark.parametrize("quorum", [0, 1, 2, 3, 4])
def test_the_gate_acts_only_on_tokens_that_meet_the_quorum(quorum: int) -> None:
    counts = [0, 1, 2, 3, 4]
    h = tokens(counts)
    out = gate(quorum)(h)
    for t, n in enumerate(counts):
        edited = n >= max(quorum, 1)
        expected = h[0, t].clone()
        if edited:
            expected[:n] = 0.0  # only the neurons inside their ranges change
        assert torch.equal(out[0, t], expected), (quorum, n)


def test_neuron_mode_ignores_the_quorum() -> None:
    out = gate(4, mode="neuron")(tokens([0, 2]))
    assert torch.equal(out, torch.zeros_like(out))


def test_the_quorum_survives_the_range_file_and_bad_values_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "r.safetensors"
    block = save_ranges(str(path), [gate(3)], {})
    (loaded,) = load_gates(str(path), json.loads(json.dumps(block)))
    assert loaded.spec.quorum == 3
    h = tokens([2, 3])
    assert torch.equal(loaded(h), gate(3)(h))
    for bad in (K + 1, -1, 2.5, "2", True):
        g = gate(3)
        g.spec.quorum = bad
        block = save_ranges(str(path), [g], {})
        with pytest.raises(NleditLoadError, match="quorum"):
            load_gates(str(path), json.loads(json.dumps(block)))


def test_pass_rates_and_counts() -> None:
    assert pass_rates(np.array([0, 2, 2, 4]), 4).tolist() == [1.0, 0.75, 0.75, 0.25, 0.25]
    samples = np.array([[0.5, 5.0, 0.5, 0.5], [5.0, 5.0, 5.0, 5.0]], dtype=np.float32)
    assert in_range_counts(samples, INDEX, LO, HI).tolist() == [3, 0]


def test_auto_picks_the_count_that_separates_the_concepts() -> None:
    rng = np.random.default_rng(0)
    target = rng.integers(7, 11, 200)  # 7..10 neurons inside
    others = [rng.integers(0, 5, 200), rng.integers(2, 6, 200)]  # at most 5
    m = best_count(target, others, 10)
    assert m == 6  # counts 6 and 7 both separate perfectly; the lower middle one is taken
    j = pass_rates(target, 10)[m] - np.mean([pass_rates(o, 10)[m] for o in others])
    assert j == pytest.approx(1.0)


def test_auto_on_overlapping_concepts_still_returns_a_valid_count() -> None:
    same = np.array([3, 3, 3, 3])
    m = best_count(same, [same], 5)
    assert 1 <= m <= 5


def test_fit_quorum_share_auto_and_errors() -> None:
    assert fit_quorum(None, 10, 0, None, INDEX, LO, HI, "edits.0") == 0
    assert fit_quorum(0.5, 10, 0, None, INDEX, LO, HI, "edits.0") == 5
    assert fit_quorum(0.51, 10, 0, None, INDEX, LO, HI, "edits.0") == 6
    assert fit_quorum(1.0, 10, 0, None, INDEX, LO, HI, "edits.0") == 10
    assert fit_quorum(0.01, 10, 0, None, INDEX, LO, HI, "edits.0") == 1
    with pytest.raises(NleditError, match=r"edits\.0: quorum auto needs"):
        fit_quorum("auto", K, 0, None, INDEX, LO, HI, "edits.0")
    inside = np.full((3, K), 0.5, dtype=np.float32)
    with pytest.raises(NleditError, match="another concept"):
        fit_quorum("auto", K, 0, {0: inside}, INDEX, LO, HI, "edits.0")
    outside = np.full((3, K), 5.0, dtype=np.float32)
    assert fit_quorum("auto", K, 0, {0: inside, 1: outside}, INDEX, LO, HI, "e") in range(1, 5)


def recipe(quorum: object) -> dict:
    return {
        "model": {"id": "m"},
        "data": {"source": "d.jsonl"},
        "prompt": {"label_words": [" a", " b"]},
        "edits": [{"concepts": ["a"], "quorum": quorum}],
    }


@pytest.mark.parametrize("quorum", [0.5, 1, "auto", None])
def test_recipe_accepts_a_share_auto_or_null(quorum: object) -> None:
    assert parse_recipe(recipe(quorum), "r.yaml").edits[0].quorum == quorum


@pytest.mark.parametrize("quorum", [0, -0.5, 1.5, True, "yes", "0.5", [0.5], float("nan")])
def test_recipe_refuses_other_quorums(quorum: object) -> None:
    with pytest.raises(RecipeError, match="quorum"):
        parse_recipe(recipe(quorum), "r.yaml")


def test_quorum_auto_fits_exports_and_reloads_with_equal_logits(
    tiny_models: dict[str, Path], tiny_data: Path, tmp_path: Path
) -> None:
    import yaml
    from conftest import recipe_dict
    from transformers import AutoModelForCausalLM

    from nledit import pipeline

    torch.set_num_threads(1)
    d = recipe_dict(tiny_models["llama"], tiny_data, quorum="auto", trim_overlap=True)
    text = yaml.safe_dump(d, sort_keys=False)
    out = tmp_path / "export"
    logs: list[str] = []
    run = pipeline.run(parse_recipe(d), text, out, False, log=logs.append)
    (g,) = run.fitted.edit.gates
    assert 1 <= g.spec.quorum <= g.spec.k
    said = f"acts on a token when at least {g.spec.quorum} of its {g.spec.k} neurons"
    assert any(said in line for line in logs)
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["nledit"]["edits"][0]["quorum"] == g.spec.quorum
    card = (out / "README.md").read_text()
    assert f"auto: {g.spec.quorum} (Sports)" in card
    reloaded = AutoModelForCausalLM.from_pretrained(out, trust_remote_code=True)
    ids = torch.randint(3, 40, (2, 12))
    model = run.fitted.model
    install_gates(model, run.fitted.layout.layers_path, run.fitted.edit.gates)
    try:
        with torch.no_grad():
            ours = model(input_ids=ids).logits
            theirs = reloaded(input_ids=ids).logits
    finally:
        remove_gates(model)
    assert (ours - theirs).abs().max() <= 1e-6


def test_a_leace_edit_refuses_a_quorum() -> None:
    d = recipe("auto")
    d["edits"][0]["operator"] = "leace"
    with pytest.raises(RecipeError, match=r"edits\.0\.quorum: a LEACE edit"):
        parse_recipe(d, "r.yaml")
