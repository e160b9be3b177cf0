"""Hostile output paths and base models: refused at the start, named, nothing written.

Output folders are checked before data or weights are read, so those cases name a model and
data that do not exist. Model cases use the tiny models of ``conftest``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from hostile import refused, write_recipe

torch.set_num_threads(1)

UNDER_FILE = "is a file, not a folder"


def _recipe(tmp_path: Path, extra: dict[str, list[str]] | None = None) -> Path:
    return write_recipe(tmp_path, tmp_path / "model", tmp_path / "d.jsonl", extra or {})


def _file(tmp_path: Path) -> Path:
    path = tmp_path / "notes.txt"
    path.write_text("my notes\n")
    return path


# (id, command line after the recipe (OUT: a path under a regular file), fragments)
COMMANDS: list[tuple[str, list[str], list[str]]] = [
    ("run_out", ["run", "R", "--out", "OUT"], ["output.dir: cannot create", UNDER_FILE]),
    ("run_deep", ["run", "R", "--out", "OUT/a/b"], ["output.dir: cannot create", UNDER_FILE]),
    ("run_set", ["run", "R", "--set", "output.dir=OUT"], ["output.dir: cannot create"]),
    ("fit_out", ["fit", "R", "--out", "OUT"], ["--out: cannot create", UNDER_FILE]),
    ("fit_default", ["fit", "R", "--set", "output.dir=OUT"], ["output.dir (+ -fit)", UNDER_FILE]),
    ("sweep_out", ["sweep", "R", "--out", "OUT"], ["sweep.out: cannot create", UNDER_FILE]),
    ("sweep_set", ["sweep", "R", "--set", "sweep.out=OUT"], ["sweep.out: cannot create"]),
    ("tune_out", ["tune", "R", "--out", "OUT"], ["tune.dir: cannot create", UNDER_FILE]),
    ("inspect_report", ["inspect", "R", "--report", "OUT"], ["--report: cannot create"]),
    ("check_output", ["check", "R", "--set", "output.dir=OUT"], ["output.dir: cannot create"]),
]


@pytest.mark.parametrize("argv, fragments", [c[1:] for c in COMMANDS], ids=[c[0] for c in COMMANDS])
def test_output_under_a_regular_file(
    tmp_path: Path, argv: list[str], fragments: list[str], capsys
) -> None:
    recipe, out = _recipe(tmp_path), _file(tmp_path) / "out"
    filled = [a.replace("R", str(recipe)) if a == "R" else a.replace("OUT", str(out)) for a in argv]
    refused(filled, capsys, out, *fragments)
    assert (tmp_path / "notes.txt").read_text() == "my notes\n"


SYSTEM = {
    "proc": ("/proc/nledit-out", "inside /proc, a system folder"),
    "proc_self": ("/proc/self/nledit", "inside /proc"),
    "sys": ("/sys/nledit-out", "inside /sys"),
    "dev": ("/dev/null/out", "inside /dev"),
}


@pytest.mark.parametrize("out, fragment", SYSTEM.values(), ids=list(SYSTEM))
@pytest.mark.parametrize("command", ["run", "fit", "inspect"])
def test_output_in_a_system_folder(
    tmp_path: Path, command: str, out: str, fragment: str, capsys
) -> None:
    flag = "--report" if command == "inspect" else "--out"
    refused([command, str(_recipe(tmp_path)), flag, out], capsys, Path(out), fragment)


def test_output_through_a_link_into_proc(tmp_path: Path, capsys) -> None:
    (tmp_path / "link").symlink_to("/proc/self")
    out = tmp_path / "link" / "out"
    refused(["run", str(_recipe(tmp_path)), "--out", str(out)], capsys, None, "inside /proc")


def test_tune_storage_under_a_file(tmp_path: Path, capsys) -> None:
    db = _file(tmp_path) / "study.db"
    argv = ["tune", str(_recipe(tmp_path)), "--storage", f"sqlite:///{db}"]
    refused(argv, capsys, None, "tune.storage: ", "notes.txt exists and is a file, not a folder")


def test_output_that_is_a_regular_file(tmp_path: Path, capsys) -> None:
    notes = _file(tmp_path)
    argv = ["run", str(_recipe(tmp_path)), "--out", str(notes), "--overwrite"]
    refused(argv, capsys, None, "output.dir", "exists and is a file, not a folder")
    assert notes.read_text() == "my notes\n"


def test_output_name_too_long(tmp_path: Path, capsys) -> None:
    out = tmp_path / ("x" * 300)
    refused(["run", str(_recipe(tmp_path)), "--out", str(out)], capsys, None, "longer than 255")


def test_empty_output_dir(tmp_path: Path, capsys) -> None:
    recipe = _recipe(tmp_path, {"output": ["dir: ''"]})
    refused(["run", str(recipe)], capsys, None, "output.dir: must not be empty")


def test_export_to_a_path_under_a_file(tmp_path: Path, capsys) -> None:
    fit_dir = tmp_path / "fit"
    fit_dir.mkdir()
    shutil.copy(_recipe(tmp_path), fit_dir / "nledit_recipe.yaml")
    (fit_dir / "nledit_fit.json").write_text("{}")
    out = _file(tmp_path) / "out"
    refused(["export", str(fit_dir), "--out", str(out)], capsys, out, "output.dir: cannot create")


def test_train_head_out_under_a_file(tmp_path: Path, capsys) -> None:
    out = _file(tmp_path) / "clf"
    argv = ["train-head", "--base", "x", "--data", "y.jsonl", "--out", str(out)]
    refused(argv, capsys, out, "train_head.out: cannot create", UNDER_FILE)


# ---- base models ------------------------------------------------------------------------------


def _gguf(path: Path, blocks: int = 3, width: int = 32, vocab: int = 64) -> Path:
    """A small but real GGUF file (header, metadata and one tensor)."""
    import numpy as np
    from gguf import GGUFWriter

    writer = GGUFWriter(str(path), "llama")
    writer.add_block_count(blocks)
    writer.add_embedding_length(width)
    writer.add_tensor("token_embd.weight", np.ones((vocab, width), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def _bad_gguf(kind: str, path: Path) -> Path:
    if kind == "garbage":
        path.write_bytes(bytes(range(256)) * 16)
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "magic_only":
        path.write_bytes(b"GGUF\x03\x00")
    else:  # a real file cut short
        raw = _gguf(path).read_bytes()
        path.write_bytes(raw[: {"half": len(raw) // 2, "header": 40}[kind]])
    return path


GGUF_KINDS = {
    "garbage": "is not a GGUF file",
    "empty": "is not a GGUF file",
    "magic_only": "damaged or truncated GGUF file",
    "half": "damaged or truncated GGUF file",
    "header": "damaged or truncated GGUF file",
}


def test_the_real_gguf_is_read(tmp_path: Path) -> None:
    from nledit.models.loading import gguf_shape

    assert gguf_shape(_gguf(tmp_path / "ok.gguf"))[:2] == (3, 32)


def test_a_gguf_header_is_read_again_when_the_file_changes(tmp_path: Path) -> None:
    from nledit.models.loading import ModelLoadError, gguf_shape

    path = _gguf(tmp_path / "m.gguf")
    assert gguf_shape(path)[:2] == (3, 32)
    path.unlink()  # a new file at the same path: another block count and tensor
    assert gguf_shape(_gguf(path, blocks=5, width=16, vocab=8)) == (5, 16, 128)
    _bad_gguf("half", path)  # and a damaged one is refused, not served from the cache
    with pytest.raises(ModelLoadError, match="damaged"):
        gguf_shape(path)


@pytest.mark.parametrize("command", ["check", "run"])
@pytest.mark.parametrize("kind, fragment", GGUF_KINDS.items(), ids=list(GGUF_KINDS))
def test_bad_gguf(tmp_path: Path, tiny_data: Path, kind: str, fragment: str, command, capsys):
    gguf = _bad_gguf(kind, tmp_path / "model.gguf")
    recipe = write_recipe(tmp_path, gguf, tiny_data, {})
    out = tmp_path / "out"
    argv = [command, str(recipe)] + (["--out", str(out)] if command == "run" else [])
    refused(argv, capsys, out, f"model.id: {gguf}", fragment)


def test_bad_gguf_file_in_a_folder(tmp_path: Path, tiny_data: Path, capsys) -> None:
    folder = tmp_path / "repo"
    folder.mkdir()
    _bad_gguf("half", folder / "m.gguf")
    recipe = write_recipe(tmp_path, folder, tiny_data, {"model": ["gguf_file: m.gguf"]})
    refused(["check", str(recipe)], capsys, None, "damaged or truncated GGUF file")


def _export_like(src: Path, folder: Path, manifest: bool) -> Path:
    shutil.copytree(src, folder)
    config = json.loads((folder / "config.json").read_text())
    if manifest:
        (folder / "nledit_manifest.json").write_text("{}")
    else:
        config |= {"model_type": "nledit", "auto_map": {"AutoConfig": "modeling_nledit.C"}}
        config["nledit"] = {"base_model": "HuggingFaceTB/SmolLM2-135M"}
    (folder / "config.json").write_text(json.dumps(config))
    return folder


@pytest.mark.parametrize("command", ["check", "run"])
@pytest.mark.parametrize("manifest", [True, False], ids=["manifest", "config"])
def test_export_as_base_is_refused(
    tmp_path: Path, tiny_models, tiny_data: Path, command: str, manifest: bool, capsys
) -> None:
    model = _export_like(tiny_models["llama"], tmp_path / "export", manifest)
    recipe = write_recipe(tmp_path, model, tiny_data, {})
    out = tmp_path / "out"
    argv = [command, str(recipe)] + (["--out", str(out)] if command == "run" else [])
    refused(argv, capsys, out, "is an nledit export, not a base model")


@pytest.fixture(scope="module")
def plain_encoder(tiny_models, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny BERT without any head (a bare BertModel)."""
    from transformers import AutoModel, AutoTokenizer

    folder = tmp_path_factory.mktemp("plain") / "bert"
    AutoModel.from_pretrained(tiny_models["bert"]).save_pretrained(folder)
    AutoTokenizer.from_pretrained(tiny_models["bert"]).save_pretrained(folder)
    return folder


@pytest.mark.parametrize("command", ["check", "run"])
@pytest.mark.parametrize("task", ["auto", "causal-lm", "sequence-classification"])
def test_plain_encoder_without_a_head(
    tmp_path: Path, plain_encoder: Path, tiny_data: Path, task: str, command: str, capsys
) -> None:
    recipe = write_recipe(tmp_path, plain_encoder, tiny_data, {"model": [f"task: {task}"]})
    out = tmp_path / "out"
    argv = [command, str(recipe)] + (["--out", str(out)] if command == "run" else [])
    refused(argv, capsys, out, "has no weights for", "random")


CONFIGS = {
    "invalid_json": ('{"model_type": "llama",', "cannot load", "config.json cannot be read"),
    "a_list": ("[1, 2]", "cannot load", "config.json is not a JSON object"),
    "unknown_type": ('{"model_type": "no-such-arch"}', "cannot load", "model.id: cannot load"),
}


@pytest.mark.parametrize("command", ["check", "run"])
@pytest.mark.parametrize(
    "config, run_fragment, check_fragment", CONFIGS.values(), ids=list(CONFIGS)
)
def test_broken_config(
    tmp_path: Path,
    tiny_models,
    tiny_data: Path,
    config,
    run_fragment,
    check_fragment,
    command,
    capsys,
) -> None:
    model = tmp_path / "model"
    shutil.copytree(tiny_models["llama"], model)
    (model / "config.json").write_text(config)
    recipe = write_recipe(tmp_path, model, tiny_data, {})
    out = tmp_path / "out"
    argv = [command, str(recipe)] + (["--out", str(out)] if command == "run" else [])
    fragment = run_fragment if command == "run" else check_fragment
    refused(argv, capsys, out, fragment)


def test_truncated_weights(tmp_path: Path, tiny_models, tiny_data: Path, capsys) -> None:
    model = tmp_path / "model"
    shutil.copytree(tiny_models["llama"], model)
    weights = model / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    recipe = write_recipe(tmp_path, model, tiny_data, {})
    out = tmp_path / "out"
    refused(["run", str(recipe), "--out", str(out)], capsys, out, "model.id: cannot load")


def test_folder_without_weights(tmp_path: Path, tiny_models, tiny_data: Path, capsys) -> None:
    model = tmp_path / "model"
    shutil.copytree(tiny_models["llama"], model)
    (model / "model.safetensors").unlink()
    recipe = write_recipe(tmp_path, model, tiny_data, {})
    out = tmp_path / "out"
    refused(["run", str(recipe), "--out", str(out)], capsys, out, "model.id: cannot load")


LATE = {
    # found once the tokenizer or the statistics exist, before anything is written
    "unknown_label_word": (
        {"prompt": ["label_words: [' zzzz', ' Sports', ' Business', ' Tech']"]},
        "prompt.label_words: ' zzzz' is unknown to the tokenizer",
    ),
    "window_longer_than_text": (
        {
            "eval": [
                "perplexity_source: {data}",
                "perplexity_windows: 2",
                "perplexity_window: 99999",
            ]
        },
        "fewer than one window of 99999",
    ),
}


@pytest.mark.parametrize("extra, fragment", LATE.values(), ids=list(LATE))
def test_found_before_writing(
    tmp_path: Path, tiny_models, tiny_data: Path, extra, fragment, capsys
):
    recipe = write_recipe(tmp_path, tiny_models["llama"], tiny_data, extra)
    out = tmp_path / "out"
    shown = refused(["run", str(recipe), "--out", str(out)], capsys, out, fragment)
    if "window" in fragment:  # the text is checked before the fit pass
        assert "fitted" not in shown


EDITED_CONFIGS = {
    # a config.json edited by hand: check finds what run would find, without loading weights
    "wider": ({"intermediate_size": 96}, "shapes do not match config.json", "shapes do not match"),
    "activation_typo": ({"hidden_act": "sylu"}, "does not know: 'sylu'", "does not know"),
    "negative_size": ({"intermediate_size": -4}, "cannot load", "cannot load"),
    "vocab_smaller": ({"vocab_size": 10}, "shapes do not match", "shapes do not match"),
}


@pytest.mark.parametrize("command", ["check", "run"])
@pytest.mark.parametrize(
    "change, check_fragment, run_fragment", EDITED_CONFIGS.values(), ids=list(EDITED_CONFIGS)
)
def test_config_edited_by_hand(
    tmp_path: Path,
    tiny_models,
    tiny_data: Path,
    change,
    check_fragment,
    run_fragment,
    command,
    capsys,
) -> None:
    model = tmp_path / "model"
    shutil.copytree(tiny_models["llama"], model)
    config = json.loads((model / "config.json").read_text()) | change
    (model / "config.json").write_text(json.dumps(config))
    recipe = write_recipe(tmp_path, model, tiny_data, {})
    out = tmp_path / "out"
    argv = [command, str(recipe)] + (["--out", str(out)] if command == "run" else [])
    refused(argv, capsys, out, check_fragment if command == "check" else run_fragment)
