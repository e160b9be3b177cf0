"""``nledit eval`` on a local lm-eval YAML task (``--include-path``), the base pass cached."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import recipe_dict

from nledit.cli import main

TASK = """task: tiny_topics
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: "Article : {{{{text}}}} Topic :"
doc_to_choice: [" World", " Sports", " Business", " Tech"]
doc_to_target: label
metric_list:
  - metric: acc
"""


@pytest.fixture(scope="module")
def export(tiny_models: dict[str, Path], tiny_data: Path, tmp_path_factory: Any) -> Path:
    root = tmp_path_factory.mktemp("evaltasks")
    recipe = root / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(recipe_dict(tiny_models["llama"], tiny_data)))
    assert (
        main(["run", str(recipe), "--out", str(root / "out"), "--set", "eval.enabled=false"]) == 0
    )
    return root / "out"


def test_eval_runs_a_local_yaml_task_and_caches_the_base(
    export: Path, tiny_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "tiny.yaml").write_text(TASK.format(data=tiny_data))
    monkeypatch.setenv("NLEDIT_CACHE", str(tmp_path / "cache"))
    argv = ["eval", str(export), "--tasks", "tiny_topics", "--include-path", str(tasks)]
    argv += ["--limit", "4"]
    assert main(argv) == 0
    first = capsys.readouterr().out
    assert "base pass: computed" in first
    assert main(argv) == 0
    assert "base pass: cached" in capsys.readouterr().out
    manifest = json.loads((export / "nledit_manifest.json").read_text())
    lm = manifest["metrics"]["lm_eval"]
    assert "acc" in lm["edited"]["tiny_topics"] and "acc" in lm["base"]["tiny_topics"]
    assert "tiny_topics acc (lm-eval)" in (export / "README.md").read_text()
    for p in export.iterdir():  # the results name no local path either
        assert str(tmp_path).encode() not in p.read_bytes(), p.name
        assert str(export.parent).encode() not in p.read_bytes(), p.name


def test_an_unknown_task_is_a_clear_error(export: Path, tmp_path: Path, capsys: Any) -> None:
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    argv = ["eval", str(export), "--tasks", "no_such_task", "--include-path", str(tasks)]
    assert main(argv) == 2
    assert "no_such_task" in capsys.readouterr().err


def test_an_export_path_with_a_comma_is_evaluated(
    export: Path, tiny_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """lm-eval's model_args go as a mapping, so a comma in the path is only a character; the
    printed shell command, which cannot carry it, is left out with a note."""
    import shutil

    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "tiny.yaml").write_text(TASK.format(data=tiny_data))
    monkeypatch.setenv("NLEDIT_CACHE", str(tmp_path / "cache"))
    odd = tmp_path / "a,b" / "out,1"
    shutil.copytree(export, odd)
    argv = ["eval", str(odd), "--tasks", "tiny_topics", "--include-path", str(tasks)]
    assert main([*argv, "--limit", "2", "--no-base"]) == 0
    out = capsys.readouterr().out
    assert "no lm_eval shell command" in out and '"tiny_topics"' in out
