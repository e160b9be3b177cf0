"""A fresh export's card carries its base's facts, and no exported file names a local path."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import recipe_dict
from huggingface_hub import ModelCard, ModelCardData

from nledit import pipeline
from nledit.checkpoint.base_card import KNOWN_BASES, base_facts
from nledit.checkpoint.card import TRANSFORMERS_RANGE
from nledit.checkpoint.portable import portable_text, with_roots
from nledit.recipe import parse_recipe

BASE_README = """---
license: mit
language:
- en
- fr
datasets:
- someone/pretraining-corpus
---

# a tiny base
"""


@pytest.fixture(scope="module")
def export(
    tiny_models: dict[str, Path], tiny_data: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, list[str]]:
    root = tmp_path_factory.mktemp("facts")
    base = root / "base"
    shutil.copytree(tiny_models["llama"], base)
    (base / "README.md").write_text(BASE_README)
    data = root / "data" / tiny_data.name
    shutil.copytree(tiny_data.parent, data.parent, dirs_exist_ok=True)
    d = recipe_dict(base, data)
    d["model"]["base_model"] = "someone/tiny-llama"
    out = root / "out"
    text = yaml.safe_dump(d, sort_keys=False)
    pipeline.run(parse_recipe(d), text, out, False, log=lambda *_: None)
    return out, [str(root), str(root.resolve()), str(base), str(data), str(Path.home())]


def test_no_exported_file_holds_an_absolute_local_path(export: Any) -> None:
    out, local = export
    files = [p for p in out.rglob("*") if p.is_file()]
    assert {"nledit_recipe.yaml", "config.json", "nledit_manifest.json", "README.md"} <= {
        p.name for p in files
    }
    for p in files:
        blob = p.read_bytes()
        for path in local:
            assert path.encode() not in blob, f"{p.name} holds {path}"
    recipe = yaml.safe_load((out / "nledit_recipe.yaml").read_text())
    assert recipe["model"]["id"] == "local:base"
    assert recipe["data"]["source"] == "local:topics.jsonl"


def test_card_carries_the_base_facts_and_validates(export: Any) -> None:
    out, _ = export
    card = ModelCard.load(out / "README.md")
    data = card.data
    assert data.license == "mit"
    assert data.language == ["en", "fr"]
    assert "someone/pretraining-corpus" in data.datasets
    assert data.base_model == "someone/tiny-llama"
    assert data.base_model_relation == "finetune"
    ModelCardData(**data.to_dict())  # the front matter is valid card data, model-index included
    assert f"transformers {TRANSFORMERS_RANGE}" in card.text
    assert "`topics.jsonl`" in card.text  # local data is named, not listed as a Hub data set


def test_known_bases_fill_in_where_no_card_ships(tmp_path: Path) -> None:
    facts = base_facts(tmp_path, "HuggingFaceTB/SmolLM2-135M-Instruct")
    assert facts == {k: v for k, v in KNOWN_BASES["HuggingFaceTB/SmolLM2-135M-Instruct"].items()}
    (tmp_path / "README.md").write_text(BASE_README)
    assert base_facts(tmp_path, "HuggingFaceTB/SmolLM2-135M-Instruct")["license"] == "mit"
    assert base_facts(tmp_path / "nope", None) == {}


def test_a_path_below_a_root_keeps_its_tail(tmp_path: Path) -> None:
    roots = with_roots([tmp_path / "a", tmp_path / "a" / "b.jsonl", "relative"])
    text = portable_text(
        f"x: {tmp_path / 'a' / 'b.jsonl'} y: {tmp_path / 'a' / 'c'} relative", roots
    )
    assert text == "x: local:b.jsonl y: local:a/c relative"
