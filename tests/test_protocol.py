"""Recipe fields that pin a published protocol: demonstrations, candidates, curation,
tokenization, neuron counts, collateral definitions, perplexity text, baselines, threads."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch
import yaml
from conftest import recipe_dict

from nledit.data.dataset import DataError, load_concept_data
from nledit.data.prompting import demo_text
from nledit.data.selection import shot_counts
from nledit.data.text import preprocess
from nledit.evaluation.erasure import collateral_both, condition_metrics
from nledit.fitting.saliency_registry import top_count
from nledit.recipe import PromptSpec, parse_recipe
from nledit.recipe.loading import edit_definition


def test_top_rounding_rules_and_top_k() -> None:
    assert top_count(0.3, 576) == 173  # the default: round(172.8)
    assert top_count(0.3, 576, "floor") == 172
    assert top_count(0.3, 576, "ceil") == 173
    assert top_count(0.3, 10, "floor") == 3  # 0.3·10 is 3, not 2.9999…
    assert top_count(0.3, 576, "floor", k=40) == 40
    assert top_count(0.3, 576, k=9999) == 576


def test_per_class_shot_sampling_lets_every_class_appear() -> None:
    assert shot_counts(4, 6, "first_classes", 0) == [1, 1, 1, 1, 0, 0]
    drawn = {tuple(shot_counts(4, 6, "per_class", s)) for s in range(20)}
    assert len(drawn) > 1
    assert all(sum(d) == 4 and max(d) == 1 for d in drawn)
    assert any(d[5] == 1 for d in drawn)  # the seed decides which classes get a shot


def test_demo_text_collapses_whitespace_and_cuts_words() -> None:
    p = PromptSpec(normalize_whitespace=True, shot_words=3)
    assert demo_text("a  b\n\tc d e", p) == "a b c"
    assert demo_text("a  b", PromptSpec()) == "a  b"


def test_perplexity_preprocessing_maps_single_space_lines() -> None:
    text = " \n = Title = \n \n  \nbody"
    assert preprocess(text, ["space_lines_to_empty"]) == "\n = Title = \n\n  \nbody"
    assert preprocess(text) == text


def test_pooled_and_macro_collateral_differ_with_unequal_classes() -> None:
    gold = torch.tensor([0, 1, 1, 1, 2])
    pred = torch.tensor([0, 1, 1, 1, 0])  # class 1: 3/3 right, class 2: 0/1
    probs = torch.full((5, 3), 0.2)
    acc, _, cacc_macro, _ = condition_metrics(probs, pred, gold, 0, 3, "macro")
    _, _, cacc_pooled, _ = condition_metrics(probs, pred, gold, 0, 3, "pooled")
    assert acc == 1.0
    assert cacc_macro == pytest.approx(0.5)
    assert cacc_pooled == pytest.approx(0.75)
    both = collateral_both((probs, pred), (probs, gold), gold, 0, 3)
    assert both["d_cacc_macro"] == pytest.approx(0.5)
    assert both["d_cacc_pooled"] == pytest.approx(0.25)
    # the edit fixes the one other-concept example the base got wrong and breaks none
    assert both["cacc_broken"] == 0.0 and both["cacc_fixed"] == 1.0
    broke = collateral_both((probs, gold), (probs, pred), gold, 0, 3)
    assert broke["cacc_broken"] == pytest.approx(0.25) and broke["cacc_fixed"] is None


def _spec(tiny_data: Path, **data: object):
    d = recipe_dict(Path("m"), tiny_data)
    d["data"].update(data)
    return parse_recipe(d, "recipe")


def test_demonstrations_by_index_and_text(tiny_data: Path) -> None:
    r = _spec(tiny_data)
    rows = [json.loads(line) for line in tiny_data.read_text().splitlines()]
    demos = [{"index": 40}, {"text": "goal cup", "label": "Sports"}]
    prompt = PromptSpec.model_validate({"demonstrations": demos})
    data = load_concept_data(r.data, 2, 0, None, 0, prompt)
    assert data.shots.texts == [rows[40]["text"], "goal cup"]
    assert data.shots.labels == [rows[40]["label"], 1]
    assert rows[40]["text"] not in data.fit.texts + data.eval.texts


def test_fit_indices_pin_the_candidates_and_check_labels(tiny_data: Path, tmp_path: Path) -> None:
    doc = tmp_path / "ref.json"
    doc.write_text(json.dumps({"kept": {"World": [3, 1, 2], "Sports": [31, 30]}}))
    r = _spec(
        tiny_data, fit_indices={"file": str(doc), "key": "kept"}, fit_curate={"n": 2, "min": 2}
    )
    data = load_concept_data(r.data, 0, 0)
    rows = [json.loads(line)["text"] for line in tiny_data.read_text().splitlines()]
    assert data.fit.of(0) == [rows[3], rows[1], rows[2]]  # all candidates: the model curates
    assert data.fit.of(2) == []
    bad = _spec(tiny_data, fit_indices={"World": [31]})
    with pytest.raises(DataError, match=r"data.fit_indices: row 31 is labelled 'Sports'"):
        load_concept_data(bad.data, 0, 0)


def test_new_fields_at_defaults_leave_the_edit_definition_unchanged(tiny_data: Path) -> None:
    body = edit_definition(_spec(tiny_data))
    assert "fit_curate" not in body["data"] and "tokenization" not in body["prompt"]
    assert "top_rounding" not in body["edits"][0]
    pinned = edit_definition(_spec(tiny_data, fit_curate={"n": 3}))
    assert pinned["data"]["fit_curate"]["n"] == 3


def test_curation_keeps_the_first_correct_and_reports_short_classes(
    tiny_models, tiny_data, caplog
) -> None:
    from nledit.data import curation
    from nledit.fitting.recipe_fit import load_for_recipe

    d = recipe_dict(tiny_models["llama"], tiny_data)
    r = parse_recipe(d, "recipe")
    _, data, _, cm, _, _ = load_for_recipe(r)
    preds = curation.predictions(cm, data.eval.texts, 4)
    right = [t for t, y, p in zip(data.eval.texts, data.eval.labels, preds.tolist()) if y == p]
    d["data"]["eval_curate"] = {"n": 2, "min": 2}
    with caplog.at_level(logging.WARNING, logger="nledit"):
        _, data2, *_ = load_for_recipe(parse_recipe(d, "recipe"))
    counts = data2.curation["eval"]
    for c, k in enumerate(counts):
        expect = [t for t in right if t in data.eval.of(c)][:2]
        assert data2.eval.of(c) == expect
        assert k.kept == len(expect) and k.evaluable == (len(expect) >= 2)
    short = [k.name for k in counts if not k.evaluable]
    for name in short:
        assert f"curation: {name} keeps" in caplog.text
    assert curation.not_evaluable(data2.curation) == sorted(short)


def test_whole_tokenization_feeds_the_whole_prompts_tokens(tiny_models, tiny_data) -> None:
    from nledit.fitting.recipe_fit import load_for_recipe

    d = recipe_dict(tiny_models["qwen2"], tiny_data)
    d["prompt"].update(tokenization="whole", bos="none", normalize_whitespace=True)
    r = parse_recipe(d, "recipe")
    _, data, _, cm, _, _ = load_for_recipe(r)
    texts = data.eval.texts[:3]
    for b in cm.batches(texts, 3):
        for i, t in enumerate(texts):
            n = int(b.inputs["attention_mask"][i].sum()) - len(cm.head_ids)
            got = cm.head_ids + b.inputs["input_ids"][i, :n].tolist()
            assert got == cm.tokenizer(cm.prompt(t), add_special_tokens=False)["input_ids"]


def test_baseline_edits_limit_the_neuron_baseline(tiny_models, tiny_data) -> None:
    from nledit.fitting.recipe_fit import fit

    d = recipe_dict(tiny_models["llama"], tiny_data)
    d["edits"] = [{**d["edits"][0], "name": "a"}, {**d["edits"][0], "name": "b", "tau": 1.0}]
    d["eval"]["baseline_edits"] = ["b"]
    d["threads"] = 1
    fitted = fit(parse_recipe(d, "recipe"), yaml.safe_dump(d))
    assert [g.spec.edit for g in fitted.edit.baseline] == ["b"]
    assert torch.get_num_threads() == 1


def test_check_prints_shots_per_class_and_warns_on_missing(tiny_models, tiny_data, tmp_path):
    from nledit.plan import make_plan

    d = recipe_dict(tiny_models["llama"], tiny_data)  # 2 shots for 4 classes
    plan = make_plan(parse_recipe(d, "recipe"))
    text = plan.render()
    assert "shots     World: 1" in text and "shots     Business: none" in text
    assert "warning   class 'Business' has no demonstration" in text
    assert "time      about" in text and "tokens/s, measured" in text


def test_unknown_baseline_edit_is_named(tiny_data: Path) -> None:
    from nledit.recipe import RecipeError

    d = recipe_dict(Path("m"), tiny_data)
    d["eval"]["baseline_edits"] = ["nope"]
    with pytest.raises((RecipeError, ValueError), match=r"eval.baseline_edits: 'nope'"):
        parse_recipe(d, "recipe")


def test_threads_option_on_every_command(tiny_models, tiny_data, tmp_path, capsys) -> None:
    from nledit.cli import main

    before = torch.get_num_threads()
    d = recipe_dict(tiny_models["llama"], tiny_data)
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(d))
    try:
        assert main(["check", str(path), "--threads", "1"]) == 0
        assert torch.get_num_threads() == 1
        for command in (["check", str(path)], ["verify", str(tmp_path)]):
            with pytest.raises(SystemExit) as exit_:
                main([*command, "--threads", "0"])
            assert exit_.value.code == 2
        assert "--threads: must be a whole number of at least 1" in capsys.readouterr().err
    finally:
        torch.set_num_threads(before)
