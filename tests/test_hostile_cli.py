"""Hostile command lines: damaged fit directories, devices, folders that cannot be written, and
the last-resort net that turns any OS or parser error into a message with exit code 2."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from hostile import refused, write_recipe

torch.set_num_threads(1)


def _fit_dir(tmp_path: Path) -> Path:
    """A fit directory whose files are all present and whose recipe is valid (never fitted)."""
    folder = tmp_path / "fit"
    folder.mkdir()
    recipe = write_recipe(tmp_path, tmp_path / "model", tmp_path / "d.jsonl", {})
    shutil.copy(recipe, folder / "nledit_recipe.yaml")
    (folder / "nledit_fit.json").write_text("{}")
    for name in ("nledit_stats.safetensors", "nledit_fit_ranges.safetensors"):
        (folder / name).write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    return folder


def _damage(folder: Path, name: str, content: bytes | None) -> None:
    if content is None:
        (folder / name).unlink()
    else:
        (folder / name).write_bytes(content)


FIT_DIRS = {
    "meta_invalid": ("nledit_fit.json", b'{"layers": [', "nledit_fit.json, line 1: invalid JSON"),
    "meta_list": ("nledit_fit.json", b"[1, 2]", "nledit_fit.json: expected a JSON object"),
    "meta_latin1": ("nledit_fit.json", b'{"a": "caf\xe9"}', "nledit_fit.json: cannot be read"),
    "ranges_missing": ("nledit_fit_ranges.safetensors", None, "damaged or incomplete fit"),
    "ranges_garbage": ("nledit_fit_ranges.safetensors", b"\xff" * 64, "damaged or incomplete fit"),
    "stats_truncated": ("nledit_stats.safetensors", b"\x08\x00", "damaged or incomplete fit"),
    "recipe_missing": ("nledit_recipe.yaml", None, "recipe: file not found"),
    "recipe_binary": ("nledit_recipe.yaml", b"\xff\xfe\x00m", "recipe: not a UTF-8 text file"),
    "recipe_twice": (
        "nledit_recipe.yaml",
        b"seed: 1\nseed: 2\n",
        "seed: given twice, at lines 1 and 2",
    ),
    "meta_missing": ("nledit_fit.json", None, "not a fit directory"),
    "meta_deep": ("nledit_fit.json", b"[" * 100_000 + b"]" * 100_000, "nledit_fit.json: cannot be"),
}


@pytest.mark.parametrize("name, content, fragment", FIT_DIRS.values(), ids=list(FIT_DIRS))
def test_damaged_fit_directory(
    tmp_path: Path, name: str, content: bytes | None, fragment: str, capsys
) -> None:
    folder = _fit_dir(tmp_path)
    _damage(folder, name, content)
    out = tmp_path / "out"
    refused(["export", str(folder), "--out", str(out)], capsys, out, fragment)


DEVICES = {
    "word": (["--device", "banana"], "model.device: 'banana' is not valid here"),
    "bad_index": (["--device", "cuda:x"], "model.device: 'cuda:x' is not valid here"),
    "spaces": (["--set", "model.device='cpu '"], "model.device: 'cpu ' is not valid here"),
    "number": (["--set", "model.device=0"], "model.device: Input should be a valid string"),
}


@pytest.mark.parametrize("flags, fragment", DEVICES.values(), ids=list(DEVICES))
def test_bad_device(tmp_path: Path, flags: list[str], fragment: str, capsys) -> None:
    recipe = write_recipe(tmp_path, tmp_path / "model", tmp_path / "d.jsonl", {})
    out = tmp_path / "out"
    refused(["run", str(recipe), "--out", str(out), *flags], capsys, out, fragment)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda(tmp_path: Path, tiny_models, tiny_data: Path, capsys) -> None:
    recipe = write_recipe(tmp_path, tiny_models["llama"], tiny_data, {})
    out = tmp_path / "out"
    argv = ["run", str(recipe), "--out", str(out), "--device", "cuda:3"]
    refused(argv, capsys, out, "model.device: cannot use 'cuda:3' here")


@pytest.mark.parametrize("command", ["run", "fit", "sweep", "tune", "inspect"])
def test_folder_that_cannot_be_written(
    tmp_path: Path, command: str, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    import nledit.folders.preflight

    def denied(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(nledit.folders.preflight.tempfile, "TemporaryFile", denied)
    recipe = write_recipe(tmp_path, tmp_path / "model", tmp_path / "d.jsonl", {})
    out = tmp_path / "locked" / "out"
    flag = "--report" if command == "inspect" else "--out"
    refused([command, str(recipe), flag, str(out)], capsys, out, "cannot write in", "Permission")


def test_train_head_from_an_export(tmp_path: Path, tiny_models, tiny_data: Path, capsys) -> None:
    base = tmp_path / "export"
    shutil.copytree(tiny_models["bert"], base)
    (base / "nledit_manifest.json").write_text("{}")
    out = tmp_path / "clf"
    argv = ["train-head", "--base", str(base), "--data", str(tiny_data), "--out", str(out)]
    argv += ["--train-examples", "8", "--eval-examples", "4"]
    refused(argv, capsys, out, "is an nledit export")


def test_empty_label_names(tmp_path: Path, capsys) -> None:
    recipe = write_recipe(
        tmp_path, tmp_path / "m", tmp_path / "d.jsonl", {"data": ["label_names: []"]}
    )
    out = tmp_path / "out"
    refused(
        ["run", str(recipe), "--out", str(out)], capsys, out, "data.label_names: must not be empty"
    )


ERRORS = {
    "os_error": (PermissionError(13, "Permission denied", "/x/y"), "Permission denied: /x/y"),
    "json_error": (json.JSONDecodeError("Expecting value", "{\n]", 2), "invalid JSON at line 2"),
    "unicode_error": (
        UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"),
        "not UTF-8 text",
    ),
}


@pytest.mark.parametrize("error, fragment", ERRORS.values(), ids=list(ERRORS))
def test_unforeseen_errors_are_messages(
    tmp_path: Path, error: Exception, fragment: str, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    import nledit.pipeline

    def fails(*args: object, **kwargs: object) -> None:
        raise error

    monkeypatch.setattr(nledit.pipeline, "run", fails)
    recipe = write_recipe(tmp_path, tmp_path / "model", tmp_path / "d.jsonl", {})
    out = tmp_path / "out"
    refused(["run", str(recipe), "--out", str(out)], capsys, out, fragment)


NAMES = {
    "pypi_dots": (["--set", "model.id=pypi:.."], "model.id: pypi:..: not a package name"),
    "pypi_dotted": (["--set", "model.id=pypi:a.b.c"], "pypi:a.b.c: not a package name"),
    "pypi_slash": (["--set", "model.id=pypi:a/b"], "pypi:a/b: not a package name"),
    "nobody_data": (["--set", "data.source=~nouser9/x.jsonl"], "data.source: cannot expand"),
    "nobody_out": (["--out", "~nouser9/out"], "output.dir: cannot expand '~nouser9/out'"),
    "nobody_model": (["--set", "model.id=~nouser9/m"], "model.id: cannot expand"),
    "nobody_text": (["--set", "eval.perplexity_source=~nouser9/w.txt"], "perplexity_source"),
}


@pytest.mark.parametrize("flags, fragment", NAMES.values(), ids=list(NAMES))
def test_names_that_do_not_resolve(
    tmp_path: Path, tiny_data: Path, flags: list[str], fragment: str, capsys
) -> None:
    recipe = write_recipe(tmp_path, tmp_path / "model", tiny_data, {})
    out = tmp_path / "out"
    argv = ["run", str(recipe), *(flags if "--out" in flags else ["--out", str(out), *flags])]
    refused(argv, capsys, out, fragment)


def test_report_in_a_home_that_does_not_exist(tmp_path: Path, capsys) -> None:
    recipe = write_recipe(tmp_path, tmp_path / "model", tmp_path / "d.jsonl", {})
    argv = ["inspect", str(recipe), "--report", "~nouser9/report"]
    refused(argv, capsys, None, "--report: cannot expand")
