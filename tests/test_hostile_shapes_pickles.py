"""Hostile base models: a shape no model has (config.json or GGUF header) is named before any
model is built, and a pickled checkpoint is never opened.

- ``models.config_facts.shape_problem`` (through ``plan._config_shape`` and
  ``models.loading.gguf_shape``): layers and hidden size are whole numbers within bounds;
- ``models.loading.BASE_FOLDER_KW``: every base folder load reads safetensors only.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path

import pytest
import torch
from hostile import refused, write_recipe

torch.set_num_threads(1)


@pytest.mark.parametrize(
    "field, value",
    [
        ("num_hidden_layers", 10**30),  # building that many meta layers would not end
        ("num_hidden_layers", -1),
        ("num_hidden_layers", 0),
        ("hidden_size", 1 << 40),
        ("num_hidden_layers", True),
    ],
)
def test_a_config_shape_no_model_has_is_named(
    tiny_models: dict[str, Path], tiny_data: Path, tmp_path: Path, field: str, value, capsys
) -> None:
    model = tmp_path / "model"
    shutil.copytree(tiny_models["llama"], model)
    config = json.loads((model / "config.json").read_text())
    config[field] = value
    (model / "config.json").write_text(json.dumps(config))
    recipe = write_recipe(tmp_path, model, tiny_data, {})
    refused(["check", str(recipe)], capsys, None, f"config.json: {field} is {value!r}")


def _gguf(path: Path, blocks: int | None, width: int | None) -> Path:
    import numpy as np
    from gguf import GGUFWriter

    writer = GGUFWriter(str(path), "llama")
    if blocks is not None:
        writer.add_uint64("llama.block_count", blocks)
    if width is not None:
        writer.add_embedding_length(width)
    writer.add_tensor("token_embd.weight", np.ones((8, 4), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.mark.parametrize(
    "blocks, width, fragment",
    [
        (2**63, 32, "llama.block_count is 9223372036854775808"),
        (0, 32, "llama.block_count is 0"),
        (None, 32, "has no llama.block_count"),
        (3, None, "has no llama.embedding_length"),
    ],
)
def test_a_gguf_shape_no_model_has_is_named(
    tiny_data: Path, tmp_path: Path, blocks, width, fragment: str, capsys
) -> None:
    gguf = _gguf(tmp_path / "m.gguf", blocks, width)
    recipe = write_recipe(tmp_path, gguf, tiny_data, {})
    refused(["check", str(recipe)], capsys, None, fragment)


class _Canary:
    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.path}",))


@pytest.mark.parametrize("command", ["check", "run"])
def test_a_pickled_checkpoint_is_never_opened(
    tiny_models: dict[str, Path], tiny_data: Path, tmp_path: Path, command: str, capsys
) -> None:
    model = tmp_path / "model"
    shutil.copytree(tiny_models["llama"], model)
    (model / "model.safetensors").unlink()
    canary = tmp_path / "ran"
    (model / "pytorch_model.bin").write_bytes(pickle.dumps(_Canary(canary)))
    recipe = write_recipe(tmp_path, model, tiny_data, {})
    out = tmp_path / "out"
    argv = [command, str(recipe)] + (["--out", str(out)] if command == "run" else [])
    shown = refused(argv, capsys, out, "model.safetensors")
    assert "Weights only load failed" not in shown  # never handed to torch.load at all
    assert not canary.exists()


@pytest.mark.parametrize("name", ["Model.safetensors", "model-00002-of-00002.safetensors"])
def test_a_weight_file_nledit_did_not_copy_is_refused(
    trusted_folders: dict[str, Path], tmp_path: Path, name: str
) -> None:
    """``checkpoint.schema.manifest_problems``: the weight files are those base_weights names,
    even when the manifest lists the added file with its new sha256."""
    import hashlib

    from nledit.checkpoint.integrity import IntegrityError, check_export

    export = tmp_path / "export"
    shutil.copytree(trusted_folders["export"], export)
    (export / name).write_bytes((export / "model.safetensors").read_bytes())
    manifest = json.loads((export / "nledit_manifest.json").read_text())
    manifest["files"][name] = hashlib.sha256((export / name).read_bytes()).hexdigest()
    (export / "nledit_manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(IntegrityError, match=f"{name}: a weight file the manifest's base_weights"):
        check_export(export)


@pytest.mark.parametrize("how", ["file", "set"])
def test_an_integer_too_long_to_read_is_a_yaml_error(
    tmp_path: Path, tiny_data: Path, how: str, capsys
) -> None:
    """``recipe.strict_yaml.StrictLoader.construct_yaml_int``: Python refuses to convert an
    integer of more than 4300 digits; the recipe names its line instead of a traceback."""
    huge = "9" * 5000
    extra = {"top": [f"seed: {huge}"]} if how == "file" else {}
    recipe = write_recipe(tmp_path, tmp_path / "model", tiny_data, extra)
    argv = ["check", str(recipe)] + (["--set", f"seed={huge}"] if how == "set" else [])
    refused(argv, capsys, None, "an integer of 5000 digits is larger than any setting takes")
