"""`nledit tune` on tiny models: cheap trials equal the plain forward pass, the study resumes,
the pick rule does what it says, and the written recipe is a valid recipe."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml

from nledit.cli import main
from nledit.evaluation.erasure import Condition, applied, label_probs
from nledit.evaluation.perplexity import as_generated
from nledit.recipe import Recipe, SearchSpace, load_recipe, parse_recipe
from nledit.tune.job import run_tune
from nledit.tune.pick import NoPick, cautious, is_noop, pick_trial, selectivity
from nledit.tune.study import complete_trials, open_study
from nledit.tune.trial import (
    TuneError,
    build_gates,
    candidate_layers,
    edit_mapping,
    suggest,
    to_edit,
    tune_context,
)

optuna = pytest.importorskip("optuna")

WORDS = [
    "the",
    "match",
    "of",
    "the",
    "market",
    "in",
    "software",
    "news",
    "says",
    "the",
    "coach",
    "and",
    "the",
    "bank",
]


@pytest.fixture
def wiki(tmp_path: Path) -> Path:
    path = tmp_path / "wiki.txt"
    path.write_text(" ".join(WORDS[i % len(WORDS)] for i in range(800)))
    return path


def _tune_recipe(make_recipe, tiny_models, tiny_data, wiki: Path, out: Path, **tune) -> Path:
    extra = {
        "eval": {"perplexity_source": str(wiki), "perplexity_windows": 2, "perplexity_window": 24},
        "tune": {
            "dir": str(out),
            "trials": 3,
            "val_per_class": 6,
            "perplexity_windows": 2,
            "evaluate": False,
            "base_check": False,  # a tiny random model cannot do the task
            "space": {"layers": [1, "last"], "operators": ["zero", "dampen"]},
            **tune,
        },
    }
    return make_recipe(tiny_models["llama"], tiny_data, extra)


def test_a_cached_trial_equals_the_plain_forward_pass(
    make_recipe, tiny_models, tiny_data, wiki, tmp_path
) -> None:
    path = _tune_recipe(make_recipe, tiny_models, tiny_data, wiki, tmp_path / "t")
    recipe, text = load_recipe(path, {"eval.perplexity_windows": 0})
    ctx = tune_context(recipe, text, log=lambda *_: None)
    cm = ctx.cm
    for layer, positions, op in ((1, "all", "zero"), (2, "last", "dampen"), (1, "last", "zero")):
        edit = ctx.edit.updated(layer=layer, positions=positions, top_p=0.5, operator=op)
        gates = build_gates(ctx, edit)
        probs, ppl = ctx.cache.run(gates)
        cond = Condition("range", "Sports", gates)
        plain = label_probs(cm, ctx.data.val.texts, [Condition("base", None, []), cond], 4, False)
        torch.testing.assert_close(probs, plain[cond.key], atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(ctx.cache.base_probs, plain["base"], atol=1e-5, rtol=1e-4)
        ids = ctx.ppl_ids
        # perplexity scores text as generated: a read-token gate acts on every position
        on = applied(cm.model, cm.layout.layers_path, gates)
        with as_generated(gates), on, torch.no_grad():
            logits = cm.model(input_ids=ids, use_cache=False).logits
        logp = torch.log_softmax(logits[:, :-1].float(), -1).gather(-1, ids[:, 1:, None])
        want = torch.exp(-logp.sum() / (ids.shape[0] * (ids.shape[1] - 1))).item()
        assert ppl == pytest.approx(want, rel=1e-4)
    assert set(ctx.data.val.texts).isdisjoint(ctx.data.eval.texts)
    assert set(ctx.data.val.texts).isdisjoint(ctx.data.fit.texts)


def test_tune_runs_resumes_and_writes_a_valid_recipe(
    make_recipe, tiny_models, tiny_data, wiki, tmp_path
) -> None:
    out = tmp_path / "tune"
    path = _tune_recipe(make_recipe, tiny_models, tiny_data, wiki, out)
    lines: list[str] = []
    recipe, text = load_recipe(path)
    first = run_tune(recipe, text, log=lines.append)
    assert first.trials == 3 and (out / "tune.db").is_file()
    assert any("[3/3] trial 2" in line for line in lines)
    study = open_study(recipe)
    before = {t.number: t.params for t in complete_trials(study)}
    assert len(before) == 3

    recipe5, text5 = load_recipe(path, {"tune.trials": 5})
    lines.clear()
    second = run_tune(recipe5, text5, log=lines.append)
    assert second.study == first.study and second.trials == 5
    assert any("3 finished, running 2 more" in line for line in lines)
    after = {t.number: t.params for t in complete_trials(open_study(recipe5))}
    assert len(after) == 5 and all(after[n] == p for n, p in before.items())
    assert not any(after[n] == after[m] for n in (3, 4) for m in before)  # new points

    tuned, _ = load_recipe(second.recipe_path)
    assert isinstance(tuned, Recipe) and "tune" not in yaml.safe_load(
        second.recipe_path.read_text()
    )
    picked = second.pick.trial.user_attrs["edit"]
    assert tuned.edits[0].model_dump(exclude_unset=True) == to_edit(picked).model_dump(
        exclude_unset=True
    )
    with (out / "trials.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 5 and {"d_acc", "d_cacc", "d_ppl", "pareto"} <= set(rows[0])
    assert (out / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "Pareto front" in (out / "pareto.md").read_text()
    doc = json.loads((out / "tune.json").read_text())
    assert doc["trials"] == 5 and doc["objectives"]["selectivity"] == "maximize"
    assert "qualified" in doc["pick"]


def test_resume_and_pick_reuse_statistics_and_base_cache(
    make_recipe, tiny_models, tiny_data, wiki, tmp_path, monkeypatch
) -> None:
    import nledit.tune.trial as tune_mod

    out = tmp_path / "tune"
    path = _tune_recipe(make_recipe, tiny_models, tiny_data, wiki, out, trials=2)
    recipe, text = load_recipe(path)
    first = run_tune(recipe, text, log=lambda *_: None)
    assert len(list(out.glob("stats-*.safetensors"))) == 1
    assert len(list(out.glob("base-*.safetensors"))) == 1

    def boom(*_a, **_k):
        raise AssertionError("recomputed")

    monkeypatch.setattr(tune_mod.building, "prepare", boom)  # the one statistics set-up
    monkeypatch.setattr(tune_mod, "ValidationCache", boom)
    lines: list[str] = []
    recipe3, text3 = load_recipe(path, {"tune.trials": 3})
    again = run_tune(recipe3, text3, log=lines.append)
    assert again.trials == 3 and any("statistics loaded" in x for x in lines)
    assert any("validation data loaded" in x for x in lines)
    # a trial measured on the stored cache equals the same trial measured fresh
    ctx = tune_context(recipe3, text3, log=lambda *_: None)
    t0 = complete_trials(open_study(recipe3))[0]
    again_m = tune_mod.trial_metrics(ctx, to_edit(t0.user_attrs["edit"]))
    for key in ("d_acc", "d_cacc", "d_ppl"):
        assert again_m[key] == pytest.approx(t0.user_attrs[key], abs=1e-5)
    recipe_p, text_p = load_recipe(path, {"tune.trials": 3, "tune.pick": 0})
    assert run_tune(recipe_p, text_p, log=lambda *_: None).pick.trial.number == 0
    assert first.study == again.study


def test_cli_pick_evaluates_on_the_held_out_split(
    make_recipe, tiny_models, tiny_data, wiki, tmp_path, capsys
) -> None:
    out = tmp_path / "tune"
    path = _tune_recipe(make_recipe, tiny_models, tiny_data, wiki, out, trials=2, evaluate=True)
    assert main(["tune", str(path), "--pick", "1", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "picked trial 1" in printed and "Held-out evaluation split" in printed
    table = (out / "comparison.md").read_text()
    for method in ("default", "tuned", "neuron", "tuned-nm"):
        assert f"{method} ΔAcc" in table
    assert "| tuned:Sports |" in table
    doc = json.loads((out / "tune.json").read_text())
    assert doc["pick"]["trial"] == 1
    rows = doc["held_out"]["erasure"]
    assert {r["method"] for r in rows} == {"default", "tuned", "neuron", "tuned-nm"}
    assert all(r["n_target"] == 6 for r in rows)  # the evaluation split, not validation
    assert main(["tune", str(path), "--pick", "7", "--out", str(out)]) == 2
    assert "tune.pick: trial 7" in capsys.readouterr().err


def test_tune_without_perplexity_on_an_encoder(make_recipe, tiny_models, tiny_data, tmp_path):
    out = tmp_path / "tune"
    extra = {
        "tune": {
            "dir": str(out),
            "trials": 2,
            "val_per_class": 4,
            "objectives": ["d_acc", "d_cacc"],
            "evaluate": False,
            "base_check": False,
        }
    }
    path = make_recipe(tiny_models["bert"], tiny_data, extra)
    recipe, text = load_recipe(path)
    try:
        result = run_tune(recipe, text, log=lambda *_: None)
        assert result.trials == 2 and "d_ppl" not in result.reference
    except TuneError as err:  # a tiny random encoder may erase nothing: said, not crashed
        assert "lowers the target" in str(err)
        assert (out / "trials.csv").is_file() and not (out / "tuned.yaml").exists()
    path = make_recipe(
        tiny_models["bert"], tiny_data, {"tune": {"dir": str(out), "val_per_class": 4}}
    )
    recipe, text = load_recipe(path)
    with pytest.raises(ValueError, match="d_ppl needs"):
        run_tune(recipe, text, log=lambda *_: None)


def _trial(number: int, d_acc: float, d_cacc: float, d_ppl: float = 0.0, k: int = 10):
    attrs = {"d_acc": d_acc, "d_cacc": d_cacc, "d_ppl": d_ppl, "k": k}
    return SimpleNamespace(number=number, user_attrs=attrs)


def test_pick_when_the_reference_collapses_every_label() -> None:
    ref = {"d_acc": -0.9, "d_cacc": -0.5, "d_ppl": 300.0}
    trials = [
        _trial(0, -0.95, -0.6, 400.0),  # worse than the reference on collateral
        _trial(1, -0.6, -0.02, 5.0),
        _trial(2, 0.0, 0.0, 0.0),  # no-op: most harmless, never picked
        _trial(3, -0.7, -0.1, 30.0),
    ]
    pick = pick_trial(trials, ref, keep=0.9)
    # selectivity 0.58 (1) and 0.60 (3) are within 0.9 of the best: the smaller ΔPPL wins
    assert pick.trial.number == 1 and pick.qualified
    assert "beat the recipe's edit" in pick.rule
    assert pick_trial(trials, ref, keep=1.0).trial.number == 3


def test_pick_when_the_reference_does_nothing() -> None:
    ref = {"d_acc": 0.0, "d_cacc": 0.0, "d_ppl": 0.0}
    trials = [_trial(0, 0.0, 0.0), _trial(1, -0.5, -0.05, 3.0), _trial(2, -0.8, -0.5, 50.0)]
    pick = pick_trial(trials, ref, keep=0.9)
    assert pick.trial.number == 1 and not pick.qualified
    assert "no trial beats" in pick.rule


def test_the_pick_scores_both_drop_and_collateral_at_their_interval_bounds() -> None:
    ref = {"d_acc": -0.5, "d_cacc": -0.3, "d_ppl": 10.0}
    noisy, tight = _trial(0, -0.6, -0.02, 1.0), _trial(1, -0.55, -0.04, 2.0)
    noisy.user_attrs |= {"d_acc_hi": -0.5, "d_cacc_worst": 0.30}  # harmless only by its point
    tight.user_attrs |= {"d_acc_hi": -0.45, "d_cacc_worst": 0.06}
    assert cautious(noisy.user_attrs) < cautious(tight.user_attrs)
    assert pick_trial([noisy, tight], ref, keep=1.0).trial.number == 1
    del noisy.user_attrs["d_cacc_worst"], tight.user_attrs["d_cacc_worst"]  # points only
    assert pick_trial([noisy, tight], ref, keep=1.0).trial.number == 0


def test_no_trial_lowers_the_target_is_an_error_not_a_crash() -> None:
    ref = {"d_acc": -0.3, "d_cacc": -0.1, "d_ppl": 10.0}
    trials = [_trial(0, 0.2, -0.4, 9.0), _trial(1, 0.1, 0.0, 1.0), _trial(2, -0.5, 0.0, k=0)]
    with pytest.raises(NoPick, match="none of the 3 finished trial"):
        pick_trial(trials, ref)
    with pytest.raises(NoPick, match="no finished trial"):
        pick_trial([], ref)


def test_selectivity_and_confidence() -> None:
    collapse = {"d_acc": -0.9, "d_cacc": -0.8, "conf": 0.01, "d_conf": -0.3, "cconf": 0.01}
    collapse["d_cconf"] = -0.3
    clean = {"d_acc": -0.5, "d_cacc": 0.0, "conf": 0.1, "d_conf": -0.2, "cconf": 0.3}
    clean["d_cconf"] = 0.0
    assert selectivity(clean) > selectivity(collapse)
    assert selectivity({"d_acc": -0.5, "d_cacc": -0.1}) == pytest.approx(0.4)
    assert is_noop({"d_acc": 0.0, "conf": 0.2, "d_conf": -0.01})
    assert not is_noop({"d_acc": 0.0, "conf": 0.2, "d_conf": -0.1})  # confidence halved


@pytest.mark.parametrize("preset", [False, True])
def test_every_sampled_point_is_a_valid_edit(preset: bool) -> None:
    recipe = parse_recipe(
        {
            "model": {"id": "x"},
            "data": {"source": "d.jsonl"},
            "edits": [{"concepts": ["A"], "operator": {"name": "dampen", "alpha": 0.3}}],
            "tune": {
                "space": {
                    "operators": ["zero", "dampen", "mean", "adaptive"],
                    "quorum": ["none", "auto"],
                    "trim_overlap": [False, True],
                }
            },
        }
    )
    study = optuna.create_study(
        directions=["minimize"], sampler=optuna.samplers.RandomSampler(seed=0)
    )
    # the tuned edit's section sets the mean's text: a trial's section takes it only for the
    # mean operator, and only the tuned parameters of its own operator
    source = {"name": "mean", "mean_source": "general.txt"}
    base = {"concepts": ["A"], "name": "mine", "operator": source}
    if preset:  # a preset's settings never override the trial's
        base = {**base, "preset": "selective"}
    seen_quorum: set[str] = set()
    for _ in range(60):
        trial = study.ask()
        p = suggest(trial, recipe.tune.space, [3, 5])
        mapping = edit_mapping(base, p)
        doc = recipe.model_dump(mode="json", exclude_unset=True)
        doc["edits"] = [mapping]
        parsed = parse_recipe(doc).edits[0]  # passes the cross-field checks
        assert parsed.name == "mine" and parsed.layer in (3, 5)
        assert (parsed.range == "quantile") == (parsed.quantiles is not None)
        assert parsed.quorum == (None if p["quorum"] == "none" else "auto")
        assert parsed.trim_overlap == p["trim_overlap"] and parsed.saliency == p["saliency"]
        assert parsed.preset is None and parsed.top_p == p["top_p"]
        assert parsed.operator.name == p["operator"]
        assert parsed.operator.option("mean_source") == (
            "general.txt" if p["operator"] == "mean" else None
        )
        for name in ("alpha", "beta"):  # tuned where its operator has it, else absent
            assert (name in parsed.operator.model_fields_set) == (name in p), (name, p)
        seen_quorum.add(p["quorum"])
        study.tell(trial, 0.0)
    assert seen_quorum == {"none", "auto"}  # a space listing both searches both


def test_the_default_space_searches_trimmed_ranges_with_a_quorum() -> None:
    space = SearchSpace()
    assert space.trim_overlap == [True] and space.quorum == ["auto"]


@pytest.mark.parametrize(
    ("n_layers", "expected"),
    [(30, [15, 22, 26, 29]), (18, [9, 13, 14, 17]), (4, [0, 2, 3]), (2, [1]), (1, [0])],
)
def test_the_default_space_spans_the_upper_half_of_the_depth(
    n_layers: int, expected: list[int]
) -> None:
    space = SearchSpace()
    assert space.layers is None
    edit = parse_recipe(
        {"model": {"id": "x"}, "data": {"source": "x.jsonl"}, "edits": [{"concepts": ["a"]}]}, "r"
    ).edits[0]
    layers, ref = candidate_layers(space, edit, n_layers)
    assert layers == expected and ref == n_layers - 1
    explicit, _ = candidate_layers(SearchSpace(layers=[-1, 0]), edit, n_layers)
    assert explicit == sorted({n_layers - 1, 0})


def test_a_trial_line_shows_the_tuned_parameters_the_registry_names() -> None:
    from nledit.runtime import operators
    from nledit.tune.study import describe_trial

    base = {"layer": 3, "saliency": "max", "top_p": 0.1, "range": "sigma", "tau": 2.0}
    base |= {"trim_overlap": False}
    for op in operators.names():
        tuned = operators.get(op).tuned
        line = describe_trial({**base, "operator": op, **{n: 0.25 for n in tuned}})
        assert line.endswith(op + "(0.25)" * len(tuned)), line


def test_tune_refuses_a_base_that_cannot_do_the_task(make_recipe, tiny_models, tiny_data, tmp_path):
    out = tmp_path / "tune"
    extra = {"tune": {"dir": str(out), "trials": 2, "val_per_class": 4, "evaluate": False}}
    extra["tune"]["objectives"] = ["d_acc", "d_cacc"]
    recipe, text = load_recipe(make_recipe(tiny_models["bert"], tiny_data, extra))
    with pytest.raises(TuneError, match="cannot do this task"):
        run_tune(recipe, text, log=lambda *_: None)
    assert not (out / "trials.csv").exists()
