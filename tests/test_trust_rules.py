"""One example of each class the trust rules close, each re-hashed as an attacker would.

(``test_fuzz_trust`` checks the same rules on random mutations.)
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from test_fuzz_trust import CANARY, PAYLOAD, _rehash_ranges, rehash_manifest

from nledit.checkpoint.integrity import IntegrityError, check_export, inspect_export
from nledit.cli import main
from nledit.errors import NleditError
from nledit.runtime import gate


@pytest.fixture
def export(trusted_folders: dict[str, Path], tmp_path: Path) -> Path:
    out = tmp_path / "out"
    shutil.copytree(trusted_folders["export"], out)
    return out


@pytest.fixture(autouse=True)
def _no_canary():
    CANARY.unlink(missing_ok=True)
    yield
    assert not CANARY.exists(), "foreign code ran"


def cli(argv: list[str], capsys) -> tuple[int, str]:
    code = main(argv)
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert "Traceback" not in text
    return code, text


def set_tensor(folder: Path, name: str, key_end: str, fn) -> None:
    path = folder / name
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    key = next(k for k in sorted(tensors) if k.endswith(key_end))
    tensors[key] = fn(tensors[key].clone()).contiguous()
    save_file(tensors, str(path), metadata=meta)
    _rehash_ranges(folder, name, tensors)


def set_specs(folder: Path, name: str, **fields) -> None:
    path = folder / name
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    doc = json.loads(meta["nledit"])
    for spec in doc["edits"]:
        spec.update(fields)
    meta["nledit"] = json.dumps(doc, sort_keys=True)
    save_file(tensors, str(path), metadata=meta)
    config = folder / "config.json"
    cfg = json.loads(config.read_text())
    for spec in cfg["nledit"]["edits"]:
        spec.update(fields)
    config.write_text(json.dumps(cfg))


@pytest.mark.parametrize("target", ["tokenizer_config.json", "generation_config.json"])
def test_auto_map_to_new_code_in_any_json_is_refused_everywhere(
    export: Path, target: str, capsys
) -> None:
    (export / "tokenization_evil.py").write_text(PAYLOAD)
    doc = json.loads((export / target).read_text())
    doc["auto_map"] = {"AutoTokenizer": ["tokenization_evil.Evil", None]}
    (export / target).write_text(json.dumps(doc))
    rehash_manifest(export)
    code, text = cli(["verify", str(export)], capsys)
    assert code == 1 and "tokenization_evil.py" in text and f"auto_map in {target}" in text
    for argv in (
        ["generate", str(export), "--prompt", "hi"],
        ["push", str(export), "--repo", "a/b", "--dry-run"],
    ):
        code, text = cli(argv, capsys)
        assert code == 2 and "tokenization_evil.py" in text, text
    from transformers import AutoModelForCausalLM

    # the run-time itself refuses (its own copy of NleditLoadError, loaded from the export)
    with pytest.raises(RuntimeError, match="auto_map in") as err:
        AutoModelForCausalLM.from_pretrained(export, trust_remote_code=True)
    assert type(err.value).__name__ == "NleditLoadError"


def test_a_file_of_no_known_kind_is_refused_though_listed(export: Path) -> None:
    (export / "notes.bin").write_bytes(b"x")
    rehash_manifest(export)
    with pytest.raises(IntegrityError, match=r"only files nledit writes: notes\.bin"):
        check_export(export)


@pytest.mark.parametrize(
    ("key", "fn", "says"),
    [
        ("lo", lambda t: t.fill_(float("nan")), "not finite"),
        ("sigma", lambda t: t - 10, "negative sigma"),
        ("index", lambda t: t + 10_000, "hidden size"),
        ("index", lambda t: t[:-1], "do not have k"),
    ],
)
def test_bad_range_tensors_are_refused_naming_the_file(export: Path, key, fn, says) -> None:
    set_tensor(export, gate.RANGES_FILE, f".{key}", fn)
    rehash_manifest(export)
    failures = "\n".join(inspect_export(export).failures())
    assert gate.RANGES_FILE in failures and says in failures, failures


@pytest.mark.parametrize(
    ("fields", "says"), [({"layer": 99}, "layers"), ({"operator": "explode"}, "operator")]
)
def test_bad_gate_settings_are_refused_naming_the_file(export: Path, fields, says, capsys) -> None:
    set_specs(export, gate.RANGES_FILE, **fields)
    rehash_manifest(export)
    code, text = cli(["verify", str(export)], capsys)
    assert code == 1 and gate.RANGES_FILE in text and says in text, text


def test_a_fresh_export_verifies_and_passes_every_reader(export: Path, capsys) -> None:
    code, text = cli(["verify", str(export)], capsys)
    assert code == 0 and "\nverified\n" in text, text
    report = check_export(export, logits=True)
    assert report.manifest["files"] and report.config["model_type"] == "nledit"


@pytest.mark.parametrize(
    ("key", "fn", "says"),
    [
        ("lo", lambda t: t.fill_(float("nan")), "not finite"),
        ("index", lambda t: t + 10_000, "hidden size"),
    ],
)
def test_a_fit_folder_with_bad_ranges_is_refused(
    trusted_folders, tmp_path: Path, key, fn, says, capsys
) -> None:
    folder = tmp_path / "fit"
    shutil.copytree(trusted_folders["fit"], folder)
    set_tensor(folder, "nledit_fit_ranges.safetensors", f".{key}", fn)
    out = tmp_path / "out"
    code, text = cli(
        ["export", str(folder), "--out", str(out), "--set", "eval.enabled=false"], capsys
    )
    assert code == 2 and "nledit_fit_ranges.safetensors" in text and says in text, text
    assert not out.exists()


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("label_names", "World", "label_names"),
        ("n_range", 99, "n_range"),
        ("layers_path", "model..layers", "layers_path"),
        ("task", "nope", "task"),
    ],
)
def test_a_saved_edit_with_bad_contents_is_refused(
    trusted_folders, tmp_path, field, value, says
) -> None:
    import nledit

    folder = tmp_path / "edit"
    shutil.copytree(trusted_folders["edit"], folder)
    meta = json.loads((folder / "edit.json").read_text())
    meta[field] = value
    (folder / "edit.json").write_text(json.dumps(meta))
    with pytest.raises(NleditError, match=says) as err:
        nledit.Edit.load(folder)
    assert "edit.json" in str(err.value)


def test_a_saved_edit_at_a_layer_the_model_lacks_is_refused_when_applied(
    trusted_folders, tiny_models, tmp_path
) -> None:
    from transformers import AutoModelForCausalLM

    import nledit

    folder = tmp_path / "edit"
    shutil.copytree(trusted_folders["edit"], folder)
    with safe_open(str(folder / "edit.safetensors"), framework="pt") as f:
        meta = f.metadata() or {}
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    doc = json.loads(meta["nledit"])
    for spec in doc["edits"]:
        spec["layer"] = 99
    meta["nledit"] = json.dumps(doc, sort_keys=True)
    save_file(tensors, str(folder / "edit.safetensors"), metadata=meta)
    edit_json = json.loads((folder / "edit.json").read_text())
    edit_json["block"]["edits"] = doc["edits"]
    (folder / "edit.json").write_text(json.dumps(edit_json))
    edit = nledit.Edit.load(folder)
    model = AutoModelForCausalLM.from_pretrained(str(tiny_models["llama"]))
    with pytest.raises(NleditError, match="layer 99"), edit.applied(model):
        model(input_ids=torch.tensor([[1, 2]]))


def test_fit_never_touches_a_users_folders_beside_its_output(
    tiny_models, tiny_data, make_recipe, tmp_path: Path, capsys
) -> None:
    tmp_like = tmp_path / ".out.tmp-12345-mine"
    old_like = tmp_path / ".out.old-1-mine"
    tmp_like.mkdir()
    (tmp_like / "notes.txt").write_text("mine")
    (old_like / "out").mkdir(parents=True)
    (old_like / "out" / "thesis.txt").write_text("mine")
    recipe = make_recipe(tiny_models["llama"], tiny_data)
    code, _ = cli(["fit", str(recipe), "--out", str(tmp_path / "out")], capsys)
    assert code == 0 and (tmp_path / "out" / "nledit_fit.json").is_file()
    assert (tmp_like / "notes.txt").read_text() == "mine"
    assert (old_like / "out" / "thesis.txt").read_text() == "mine"


def test_eval_with_an_unknown_task_leaves_temp_folders_of_others(export: Path, capsys) -> None:
    import tempfile

    mine = Path(tempfile.mkdtemp(prefix="nledit-lmeval-1-"))
    (mine / "keep.txt").write_text("mine")
    try:
        argv = ["eval", str(export), "--tasks", "no_such_task", "--data-dir", str(export)]
        code, text = cli(argv, capsys)
        assert code == 2 and "no_such_task" in text, text
        assert (mine / "keep.txt").read_text() == "mine"
    finally:
        shutil.rmtree(mine)


def test_a_fit_folder_with_gates_moved_to_another_layer_is_refused(
    trusted_folders, tmp_path: Path, capsys
) -> None:
    folder = tmp_path / "fit"
    shutil.copytree(trusted_folders["fit"], folder)
    name = "nledit_fit_ranges.safetensors"
    with safe_open(str(folder / name), framework="pt") as f:
        meta = f.metadata() or {}
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    doc = json.loads(meta["nledit"])
    for spec in doc["edits"]:
        spec["layer"] = 0  # a layer the model has, not the one the recipe resolves
    meta["nledit"] = json.dumps(doc, sort_keys=True)
    save_file(tensors, str(folder / name), metadata=meta)
    fit_meta = json.loads((folder / "nledit_fit.json").read_text())
    fit_meta["gates"] = doc["edits"]
    (folder / "nledit_fit.json").write_text(json.dumps(fit_meta))
    out = tmp_path / "out"
    argv = ["export", str(folder), "--out", str(out), "--set", "eval.enabled=false"]
    code, text = cli(argv, capsys)
    assert code == 2 and name in text and "not where the recipe puts" in text, text
    assert not out.exists()
