"""`nledit train-head` mode answer: a causal LM fine-tuned to answer with the label word, saved
as a plain checkpoint, cached for `model.id: nledit:train_head`, then edited."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from conftest import DECODERS, LABELS, recipe_dict, write_data

from nledit.cli import main
from nledit.models.loading import HEAD_RECORD
from nledit.recipe import PromptSpec, RecipeError, TrainHeadSpec, parse_recipe
from nledit.training.base_cache import cache_folder, cache_key, train, trained_base
from nledit.training.lm import LowerCache, TrainSettingsError, trainable_parameters

torch.set_num_threads(1)
QUIET = {"log": lambda *_: None}


@pytest.fixture(scope="module")
def lm_data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("lm-data")
    return write_data(root / "train.jsonl", 20, seed=1), write_data(root / "held.jsonl", 8, seed=2)


def prompt() -> PromptSpec:
    p = recipe_dict(Path("x"), Path("y"))["prompt"]
    return PromptSpec.model_validate({**p, "shots": 0})


def spec(base: Path, data: tuple[Path, Path], out: Path, **kw) -> TrainHeadSpec:
    settings = {
        "mode": "answer",
        "base": str(base),
        "data": str(data[0]),
        "eval_data": str(data[1]),
        "train_examples": 80,
        "eval_examples": 32,
        "batch_size": 8,
        "max_length": 32,
        "lr": 3e-3,
        "epochs": 3,
        "train_layers": 1,
        "out": str(out),
    }
    return TrainHeadSpec.model_validate(settings | kw)


@pytest.mark.parametrize("family", DECODERS)
def test_cached_top_layers_reproduce_the_full_forward(family: str, tiny_models, lm_data) -> None:
    """The lower-layer cache gives the full forward's answer logits in every decoder family."""
    from transformers import AutoModelForCausalLM

    from nledit.training.lm import answer_logits, pad

    model = AutoModelForCausalLM.from_pretrained(tiny_models[family]).eval()
    cache = LowerCache(model, 1)
    ids, mask, last = pad([[5, 6, 7, 8, 9], [5, 6, 7]], 0)
    with torch.no_grad():
        full = answer_logits(model, ids, mask, last)
        with cache.top_only(cache.states(ids, mask)):
            top = answer_logits(model, ids, mask, last)
        again = answer_logits(model, ids, mask, last)  # the real layers are back
    torch.testing.assert_close(top, full, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(again, full)


def test_only_the_top_layers_and_final_norm_train(tiny_models) -> None:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_models["llama"])
    params = {id(p) for p in trainable_parameters(model, 2)}
    named = {n for n, p in model.named_parameters() if id(p) in params}
    assert named and all(
        n.startswith(("model.layers.1.", "model.layers.2.", "model.norm")) for n in named
    )
    assert "model.norm.weight" in named
    assert not model.get_input_embeddings().weight.requires_grad
    with pytest.raises(TrainSettingsError, match=r"train_head\.train_layers"):
        trainable_parameters(model, 4)


@pytest.mark.parametrize("family", DECODERS)
def test_answer_training_learns_and_saves_a_plain_checkpoint(
    family: str, tiny_models, lm_data, tmp_path: Path
) -> None:
    """On a trivially learnable task the loss falls and held-out accuracy beats chance; the
    folder reloads in plain transformers and answers as training measured."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path / "lm"
    result = train(spec(tiny_models[family], lm_data, out), prompt(), **QUIET)
    record = json.loads((out / HEAD_RECORD).read_text())
    epochs = record["epochs"]
    assert epochs[-1]["loss"] < epochs[0]["loss"]
    assert record["balanced_acc"] > 0.25 and record["mode"] == "answer"
    assert result.n_train == 80 and result.n_eval == 32
    model = AutoModelForCausalLM.from_pretrained(out)
    AutoTokenizer.from_pretrained(out)
    base = AutoModelForCausalLM.from_pretrained(tiny_models[family])
    changed = [
        n for (n, a), b in zip(model.named_parameters(), base.parameters()) if not torch.equal(a, b)
    ]
    assert changed and set(record["files"]) >= {"config.json", "model.safetensors"}


def test_answer_training_is_seeded(tiny_models, lm_data, tmp_path: Path) -> None:
    a = train(spec(tiny_models["llama"], lm_data, tmp_path / "a", epochs=1), prompt(), **QUIET)
    b = train(spec(tiny_models["llama"], lm_data, tmp_path / "b", epochs=1), prompt(), **QUIET)
    assert a.final_loss == b.final_loss and a.per_class == b.per_class
    ra = json.loads((tmp_path / "a" / HEAD_RECORD).read_text())["files"]
    rb = json.loads((tmp_path / "b" / HEAD_RECORD).read_text())["files"]
    assert ra["model.safetensors"] == rb["model.safetensors"]


def test_answer_mode_needs_a_zero_shot_recipe_prompt(tiny_models, lm_data, tmp_path) -> None:
    s = spec(tiny_models["llama"], lm_data, tmp_path / "x")
    with pytest.raises(RecipeError, match=r"train_head\.mode: answer needs a recipe"):
        train(s, None, **QUIET)
    few = prompt().updated(shots=2)
    with pytest.raises(RecipeError, match=r"prompt\.shots"):
        train(s, few, **QUIET)
    assert not (tmp_path / "x").exists()


def test_bad_settings_name_the_field(tmp_path: Path, capsys) -> None:
    code = main(
        ["train-head", "--base", "x", "--data", "y", "--mode", "answer", "--train-layers", "0"]
    )
    assert code == 2 and "train_head.train_layers" in capsys.readouterr().err


def _recipe(tiny_models, lm_data, tmp_path: Path) -> Path:
    d = recipe_dict(Path("unused"), lm_data[1])
    d["model"]["id"] = "nledit:train_head"
    d["prompt"]["shots"] = 0
    s = spec(tiny_models["llama"], lm_data, tmp_path, epochs=1).model_dump(exclude={"out"})
    d["train_head"] = {k: v for k, v in s.items() if v is not None and k != "overwrite"}
    d["output"] = {"dir": str(tmp_path / "out")}
    d["data"]["fit_per_class"], d["data"]["eval_per_class"] = 4, 4
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(d, sort_keys=False))
    return path


def test_run_trains_once_into_the_cache_and_reuses_it(
    tiny_models, lm_data, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("NLEDIT_CACHE", str(tmp_path / "cache"))
    path = _recipe(tiny_models, lm_data, tmp_path)
    recipe = parse_recipe(yaml.safe_load(path.read_text()))
    lines: list[str] = []
    first = trained_base(recipe, log=lines.append)
    folder = Path(first.model.id)
    assert folder == cache_folder(cache_key(recipe.train_head, recipe.prompt))
    assert folder.is_relative_to(tmp_path / "cache") and any("training" in x for x in lines)
    stamp = (folder / "model.safetensors").stat().st_mtime_ns
    lines.clear()
    again = trained_base(recipe, log=lines.append)
    assert again.model.id == first.model.id and any("reusing" in x for x in lines)
    assert (folder / "model.safetensors").stat().st_mtime_ns == stamp
    # a damaged copy is trained again, never used
    (folder / "config.json").chmod(0o644)
    (folder / "config.json").write_text((folder / "config.json").read_text() + " ")
    trained_base(recipe, log=lines.append)
    assert "sha256 mismatch" not in (folder / HEAD_RECORD).read_text()
    assert json.loads((folder / "config.json").read_text())
    # other settings, another folder
    other = recipe.updated(train_head=recipe.train_head.updated(lr=1e-3))
    assert cache_key(other.train_head, other.prompt) != cache_key(recipe.train_head, recipe.prompt)


def test_a_foreign_folder_at_the_cache_path_is_refused(
    tiny_models, lm_data, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("NLEDIT_CACHE", str(tmp_path / "cache"))
    path = _recipe(tiny_models, lm_data, tmp_path)
    recipe = parse_recipe(yaml.safe_load(path.read_text()))
    folder = cache_folder(cache_key(recipe.train_head, recipe.prompt))
    folder.mkdir(parents=True)
    (folder / "mine.txt").write_text("keep me")
    with pytest.raises(RecipeError, match="not written by nledit"):
        trained_base(recipe, **QUIET)
    assert (folder / "mine.txt").read_text() == "keep me"


def test_run_edits_the_fine_tuned_base_and_the_export_says_so(
    tiny_models, lm_data, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("NLEDIT_CACHE", str(tmp_path / "cache"))
    path = _recipe(tiny_models, lm_data, tmp_path)
    assert main(["run", str(path)]) == 0
    manifest = json.loads((tmp_path / "out" / "nledit_manifest.json").read_text())
    tuned = manifest["base_model"]["fine_tuned"]
    assert tuned["mode"] == "answer" and tuned["from"].endswith("llama")
    card = (tmp_path / "out" / "README.md").read_text()
    assert "a fine-tune of" in card and "nledit train-head" in card
    assert main(["verify", str(tmp_path / "out")]) == 0


def test_labels_come_from_the_data(tiny_models, lm_data, tmp_path: Path) -> None:
    s = spec(tiny_models["gpt2"], lm_data, tmp_path / "g", epochs=1)
    result = train(s, prompt(), **QUIET)
    assert result.label_names == LABELS


def test_check_plans_from_the_base_without_training(
    tiny_models, lm_data, tmp_path: Path, monkeypatch, capsys
) -> None:
    monkeypatch.setenv("NLEDIT_CACHE", str(tmp_path / "cache"))
    path = _recipe(tiny_models, lm_data, tmp_path)
    assert main(["check", str(path)]) == 0
    out = capsys.readouterr().out
    assert "not trained yet" in out and "is valid" in out
    assert not (tmp_path / "cache" / "trained").exists()


def test_the_trained_base_needs_an_answer_mode_section(tiny_models, lm_data, tmp_path) -> None:
    recipe = parse_recipe(yaml.safe_load(_recipe(tiny_models, lm_data, tmp_path).read_text()))
    with pytest.raises(RecipeError, match="needs a train_head section"):
        trained_base(recipe.updated(train_head=None), **QUIET)
    head = recipe.train_head.updated(mode="head")
    with pytest.raises(RecipeError, match="needs mode answer"):
        trained_base(recipe.updated(train_head=head), **QUIET)


def test_a_perfect_base_leaves_the_fixed_share_out_not_nan() -> None:
    """A fine-tuned base that gets every other-concept example right has nothing to fix: the
    interval is left out (an export must hold no NaN), the broken share is still there."""
    from nledit.evaluation.bootstrap import delta_intervals, stratified_indices

    gold = torch.arange(3).repeat_interleave(10)
    base = torch.nn.functional.one_hot(gold, 3).double()
    edit = base.clone()
    edit[:5] = torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64)  # half the target moved
    edit[10] = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)  # one other example broken
    idx, order = stratified_indices(gold)
    out = delta_intervals((base, base.argmax(-1)), (edit, edit.argmax(-1)), gold, 0, idx, order)
    assert "cacc_fixed" not in out and out["cacc_broken"][1] > 0
    assert all(v == v for ci in out.values() for v in ci)  # no NaN
