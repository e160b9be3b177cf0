"""eval.seeds (mean ± sd across seeds), the transfer figure and intervals in the card."""

from __future__ import annotations

import argparse
import json
import math
import statistics
from pathlib import Path

import pytest
import torch
import yaml
from conftest import recipe_dict

from nledit import pipeline
from nledit.checkpoint.card import CardInfo, render_card
from nledit.commands.args import recipe_from_args
from nledit.evaluation import transfer
from nledit.evaluation.seeds import mean_sd, seed_list, summarise, text
from nledit.fitting.recipe_fit import fit
from nledit.recipe import parse_recipe


def _run(r: dict, d_acc: float, ppl: float, assessable: bool = True) -> dict:
    row = {"concept": "b", "method": r["method"], "edit": "e", "d_acc": d_acc, "d_conf": 0.0}
    row["assessable"] = assessable
    return {
        "erasure": [row],
        "perplexity": {"base": 10.0, f"{r['method']}:b": 10.0 + ppl},
        "competence": {"balanced_acc": 0.5 + d_acc, "competent": assessable},
    }


def test_mean_and_sd_on_a_synthetic_case() -> None:
    values = [-0.6, -0.4, -0.5, -0.8, -0.2]
    got = mean_sd(values)
    assert got["n"] == 5
    assert got["mean"] == pytest.approx(statistics.fmean(values))
    assert got["sd"] == pytest.approx(statistics.stdev(values))  # sample sd (n - 1)
    assert mean_sd([0.3]) == {"mean": 0.3, "sd": 0.0, "n": 1}
    assert mean_sd([1.0, math.nan, 3.0])["mean"] == 2.0  # NaN left out
    runs = [_run({"method": "range"}, d, p, d < -0.3) for d, p in zip(values, [1, 2, 3, 4, 5])]
    summary = summarise([0, 1, 2, 3, 4], runs)
    (row,) = summary["rows"]
    assert row["d_acc"]["mean"] == pytest.approx(statistics.fmean(values))
    assert row["d_acc"]["sd"] == pytest.approx(statistics.stdev(values))
    assert row["d_ppl"]["mean"] == pytest.approx(3.0)
    assert row["d_ppl"]["sd"] == pytest.approx(statistics.stdev([1, 2, 3, 4, 5]))
    assert row["seeds"] == 5 and row["assessable"] == 4
    assert summary["competent_seeds"] == 4
    shown = text(summary)
    assert f"{statistics.fmean(values):+.3f} ± {statistics.stdev(values):.3f}" in shown
    assert "cannot do this under 1 of 5 seeds" in shown


def test_seeds_flag_and_field(tiny_models: dict[str, Path], tiny_data: Path, tmp_path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe_dict(tiny_models["llama"], tiny_data)))
    args = argparse.Namespace(recipe=str(path), set=None, seeds=3, seed=7)
    recipe, _ = recipe_from_args(args)
    assert recipe.eval.seeds == 3 and seed_list(recipe) == [7, 8, 9]
    bad = recipe_dict(tiny_models["llama"], tiny_data)
    bad["eval"]["seeds"] = 0
    with pytest.raises(Exception, match=r"eval\.seeds"):
        parse_recipe(bad)


def _doc(out: Path) -> dict:
    return json.loads((out / "results.json").read_text())


def test_seeds_are_reproducible_and_a_single_seed_run_is_unchanged(
    tiny_models: dict[str, Path], tiny_data: Path, tmp_path: Path
) -> None:
    torch.set_num_threads(1)
    d = recipe_dict(tiny_models["llama"], tiny_data)
    d["eval"]["transfer"] = False
    quiet = {"log": lambda *_: None}
    said: list[str] = []
    single = pipeline.run(parse_recipe(d), yaml.safe_dump(d), tmp_path / "one", False, said.append)
    assert single.result is not None and not single.result.competence["competent"]  # random
    assert "(base cannot do this: no claim)" in "\n".join(said)  # flagged, not dropped
    d1 = {**d, "seed": 1}
    other = pipeline.run(parse_recipe(d1), yaml.safe_dump(d1), tmp_path / "s1", False, **quiet)
    d["eval"]["seeds"] = 2
    runs = [
        pipeline.run(parse_recipe(d), yaml.safe_dump(d), tmp_path / f"two{i}", False, **quiet)
        for i in range(2)
    ]
    one, first, second = _doc(tmp_path / "one"), _doc(tmp_path / "two0"), _doc(tmp_path / "two1")
    assert "seeds" not in one and not single.result.seeds
    assert first["seeds"] == second["seeds"]  # reproducible
    assert first["erasure"] == one["erasure"]  # seed 0 of the run is the single-seed run
    (run1,) = first["seeds"]["runs"]
    assert run1["seed"] == 1 and run1["erasure"] == _doc(tmp_path / "s1")["erasure"]
    assert other.result is not None and runs[0].result is not None
    row = next(r for r in first["seeds"]["summary"]["rows"] if r["method"] == "range")
    values = [next(r for r in first["erasure"] if r["method"] == "range")["d_acc"]]
    values.append(next(r for r in run1["erasure"] if r["method"] == "range")["d_acc"])
    assert row["d_acc"]["mean"] == pytest.approx(statistics.fmean(values))
    assert row["d_acc"]["sd"] == pytest.approx(statistics.stdev(values))
    card = (tmp_path / "two0" / "README.md").read_text()
    assert "### Across seeds" in card and "Across 2 seeds (0, 1" in card


def test_transfer_on_a_tiny_model(tiny_models: dict[str, Path], tiny_data: Path) -> None:
    torch.set_num_threads(1)
    d = recipe_dict(tiny_models["llama"], tiny_data)
    fitted = fit(parse_recipe(d), yaml.safe_dump(d))
    prompts = transfer.prompts(fitted.edit, fitted.recipe.eval)
    assert prompts["zero_shot"][0].shots == 0 and not prompts["zero_shot"][1].texts
    assert prompts["template"][0].template == "{text}"  # "Article : {text}" without its label
    assert prompts["template"][0].answer_prefix == "\nAnswer:"
    ex, ev, bs = fitted.data.eval, fitted.recipe.eval, fitted.recipe.batch_size
    got = transfer.measure_transfer(fitted.edit, fitted.cm, ex, ev, bs)
    assert list(got) == list(transfer.SETTINGS)
    assert got["free_text"]["prompt"] == "{text}"  # the bare text, nothing around it
    assert "Answer:" in got["template"]["prompt"] and "Topic" not in got["template"]["prompt"]
    for setting in got.values():
        (row,) = setting["rows"]
        assert 0.0 <= row["changed"] <= 1.0 and set(row["ci"]) >= {"d_acc", "d_conf"}
    for g in fitted.edit.gates:  # a gate that does nothing: the figure says the edit stops acting
        g.enabled = False
    idle = transfer.measure_transfer(fitted.edit, fitted.cm, ex, ev, bs)
    assert all(not r["acts"] and r["changed"] == 0 for v in idle.values() for r in v["rows"])
    assert "stops acting under: 0-shot prompt, second template, free text" in transfer.stops(idle)
    d["eval"]["transfer_template"] = "Q: {text}"
    d["eval"]["transfer_answer_prefix"] = " A:"
    fitted = fit(parse_recipe(d), yaml.safe_dump(d))
    assert transfer.prompts(fitted.edit, fitted.recipe.eval)["template"][0].template == "Q: {text}"
    d["eval"]["transfer_template"] = "no placeholder"
    with pytest.raises(Exception, match=r"eval\.transfer_template"):
        parse_recipe(d)


def test_the_card_shows_intervals_and_flags_an_incompetent_base() -> None:
    row = {"concept": "b", "method": "range", "acc": 0.2, "conf": 0.3, "cacc": 0.8, "cconf": 0.7}
    row |= {"base_acc": 0.9, "base_conf": 0.8, "base_cacc": 0.8, "base_cconf": 0.7}
    row |= {"ci": {"d_acc": [-0.85, -0.55], "d_conf": [-0.6, -0.4]}, "assessable": True}
    metrics = {
        "erasure": [row, {**row, "method": "neuron", "assessable": False}],
        "perplexity": {"base": 10.0, "range:b": 10.5},
        "perplexity_ci": {"range:b": [0.2, 0.9]},
    }
    card = str(render_card(CardInfo(base_model="m", metrics=metrics)))
    assert "-0.7000 [-0.850, -0.550]" in card and "-0.5000 [-0.600, -0.400]" in card
    assert "neuron (base cannot do this: no erasure claim)" in card
    assert "range (base cannot" not in card
    assert "ΔPPL 95 % interval [+0.200, +0.900]" in card
