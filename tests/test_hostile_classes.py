"""Hostile inputs by class: each test is one rule, parametrised over several inputs of its class.

- an export holds no reference to code besides nledit's own ``auto_map`` and no file of a
  permitted name with content nledit never writes, even with a re-hashed manifest
  (``checkpoint.code_refs``, ``schema.tokenizer_problems``, ``schema.weight_dtype_problems``);
- a data file's label column is one kind, its texts are text (``data.dataset.to_examples``);
- an output never is, lies inside or holds an input, nor lies inside an nledit output
  (``folders.preflight.check_apart``; ``recipe.flags`` for generate's files);
- YAML 1.1 booleans are refused like YAML 1.1 numbers (``strict_yaml.ambiguous_scalars``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import yaml
from conftest import recipe_dict
from hostile import refused

from nledit.checkpoint.integrity import IntegrityError, check_export
from nledit.cli import main

torch.set_num_threads(1)


def _rehash(folder: Path) -> None:
    """What an attacker does after editing: list every file with its new sha256."""
    path = folder / "nledit_manifest.json"
    doc = json.loads(path.read_text())
    doc["files"] = {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != "nledit_manifest.json"
    }
    path.write_text(json.dumps(doc, indent=2))


def _edit_json(path: Path, change: Callable[[dict], None]) -> None:
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc))


def _f64_weights(e: Path) -> None:
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(e / "model.safetensors"))
    save_file({k: v.double() for k, v in tensors.items()}, str(e / "model.safetensors"))


TOKCFG, CONFIG, GENCFG = "tokenizer_config.json", "config.json", "generation_config.json"
# (id, tampering, fragment of the refusal)
CODE_REFERENCES: list[tuple[str, Callable[[Path], None], str]] = [
    (
        "custom_pipelines",
        lambda e: _edit_json(
            e / CONFIG, lambda d: d.update(custom_pipelines={"x": {"impl": "a/b--p.P"}})
        ),
        "config.json: custom_pipelines",
    ),
    (
        "custom_generate",
        lambda e: _edit_json(e / GENCFG, lambda d: d.update(custom_generate="evil/repo")),
        "generation_config.json: custom_generate",
    ),
    (
        "tokenizer_class_remote",
        lambda e: _edit_json(e / TOKCFG, lambda d: d.update(tokenizer_class="a/b--tok.Tok")),
        "tokenizer_class: 'a/b--tok.Tok' is not a class transformers ships",
    ),
    (
        "processor_class_unknown",
        lambda e: _edit_json(e / TOKCFG, lambda d: d.update(processor_class="EvilProcessor")),
        "processor_class",
    ),
    (
        "remote_value_nested",
        lambda e: _edit_json(e / GENCFG, lambda d: d.update(extra={"hook": ["me/x--m.Hook"]})),
        "names code in another repository",
    ),
]
FOREIGN_CONTENT: list[tuple[str, Callable[[Path], None], str]] = [
    (
        "merges_txt",
        lambda e: (e / "merges.txt").write_text("import os\n"),
        "merges.txt: not a file",
    ),
    ("vocab_txt", lambda e: (e / "vocab.txt").write_text("secret\n"), "vocab.txt: not a file"),
    (
        "special_tokens_map",
        lambda e: (e / "special_tokens_map.json").write_text('{"note": "x"}'),
        "special_tokens_map.json: not a file",
    ),
    ("card_binary", lambda e: (e / "README.md").write_bytes(b"\x00\xff\xfe"), "README.md: not"),
    (
        "recipe_python_tag",
        lambda e: (e / "nledit_recipe.yaml").write_text(
            "x: !!python/object/apply:os.system [id]\n"
        ),
        "nledit_recipe.yaml: not a recipe nledit writes",
    ),
    ("weights_float64", _f64_weights, "model.safetensors: tensors stored as F64"),
]


@pytest.mark.parametrize(
    "tamper, fragment",
    [c[1:] for c in CODE_REFERENCES + FOREIGN_CONTENT],
    ids=[c[0] for c in CODE_REFERENCES + FOREIGN_CONTENT],
)
def test_a_rehashed_export_with_code_or_foreign_content_is_refused(
    trusted_folders: dict[str, Path], tmp_path: Path, tamper: Callable[[Path], None], fragment: str
) -> None:
    export = tmp_path / "export"
    shutil.copytree(trusted_folders["export"], export)
    tamper(export)
    _rehash(export)
    with pytest.raises(IntegrityError) as err:
        check_export(export)
    assert fragment in str(err.value), str(err.value)


@pytest.mark.parametrize("command", ["verify", "push", "generate"])
def test_every_reader_refuses_a_code_reference(
    trusted_folders: dict[str, Path], tmp_path: Path, command: str, capsys
) -> None:
    export = tmp_path / "export"
    shutil.copytree(trusted_folders["export"], export)
    CODE_REFERENCES[0][1](export)
    _rehash(export)
    argv = {
        "verify": ["verify", str(export)],
        "push": ["push", str(export), "--repo", "me/x", "--dry-run"],
        "generate": ["generate", str(export), "--prompt", "hello", "--max-new-tokens", "1"],
    }[command]
    code = main(argv)
    shown = "".join(capsys.readouterr())
    assert code == (1 if command == "verify" else 2), shown
    assert "custom_pipelines" in shown and "Traceback" not in shown


def test_a_fresh_export_passes_the_new_checks(trusted_folders: dict[str, Path]) -> None:
    assert check_export(trusted_folders["export"]).findings.ok


def _rows(data: Path) -> list[dict]:
    return [json.loads(line) for line in data.read_text().splitlines()]


# (id, row put first, row put last, fragments); the refusal names the file and the bad line
BAD_ROWS: list[tuple[str, dict | None, dict | None, list[str]]] = [
    ("name_after_ids", None, {"text": "hello world", "label": "Sports"}, ["label 'Sports'"]),
    (
        "id_after_names",
        {"text": "hello world", "label": "World"},
        None,
        ["label names (first at line 1)"],
    ),
    ("nul_escaped", None, {"text": "foo\u0000bar", "label": 1}, ["NUL character"]),
    ("lone_surrogate", None, {"text": "bad \ud800 x", "label": 1}, ["lone surrogate U+D800"]),
    # a label id is read as written, never coerced: no decimal point, spaces or leading zero
    ("decimal_id", None, {"text": "hello world", "label": 1.0}, ["label 1.0", "no decimal point"]),
    ("spaced_id", None, {"text": "hello world", "label": " 1"}, ["spaces around"]),
    ("leading_zero_id", None, {"text": "hello world", "label": "01"}, ["leading zero"]),
]


@pytest.mark.parametrize(
    "first, last, fragments", [c[1:] for c in BAD_ROWS], ids=[c[0] for c in BAD_ROWS]
)
def test_a_bad_data_row_is_refused_naming_file_and_line(
    tiny_models: dict[str, Path],
    tiny_data: Path,
    tmp_path: Path,
    first: dict | None,
    last: dict | None,
    fragments: list[str],
    capsys,
) -> None:
    data = tmp_path / "d.jsonl"
    rows = [r for r in [first, *_rows(tiny_data), last] if r is not None]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    shutil.copy(tiny_data.parent / "labels.json", tmp_path / "labels.json")
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(recipe_dict(tiny_models["llama"], data)))
    out = tmp_path / "out"
    line = f"line {len(rows)}:" if last is not None else "line 2:"
    refused(["fit", str(recipe), "--out", str(out)], capsys, out, str(data), line, *fragments)


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst) if src.is_dir() else shutil.copy(src, dst)
    return dst


# (id, how to place the output given (tmp, model copy, data copy, fit copy, export copy))
OVERLAPS: list[tuple[str, str, Callable[[Path, Path, Path, Path, Path], list[str]], str]] = [
    (
        "fit_inside_model",
        "fit",
        lambda t, m, d, f, e: ["--out", str(m / "sub")],
        "inside the model.id",
    ),
    (
        "fit_is_data",
        "fit",
        lambda t, m, d, f, e: ["--out", str(d), "--overwrite"],
        "data.source input",
    ),
    ("fit_holds_data", "fit", lambda t, m, d, f, e: ["--out", str(t), "--overwrite"], "holds the"),
    ("fit_inside_export", "fit", lambda t, m, d, f, e: ["--out", str(e / "x")], "nledit output"),
    ("fit_inside_fit", "fit", lambda t, m, d, f, e: ["--out", str(f / "x")], "nledit output"),
    ("run_inside_model", "run", lambda t, m, d, f, e: ["--out", str(m / "x")], "model.id"),
    (
        "export_inside_fit",
        "export",
        lambda t, m, d, f, e: ["--out", str(f / "x"), "--no-eval"],
        "fit folder input",
    ),
    ("sweep_into_fit", "sweep", lambda t, m, d, f, e: ["--out", str(f), "--overwrite"], "is the"),
    ("inspect_into_export", "inspect", lambda t, m, d, f, e: ["--report", str(e)], "is the"),
]


@pytest.mark.parametrize(
    "command, place, fragment", [c[1:] for c in OVERLAPS], ids=[c[0] for c in OVERLAPS]
)
def test_an_output_never_overlaps_an_input_or_an_nledit_output(
    trusted_folders: dict[str, Path],
    tiny_models: dict[str, Path],
    tiny_data: Path,
    tmp_path: Path,
    command: str,
    place: Callable[..., list[str]],
    fragment: str,
    capsys,
) -> None:
    model = _copy(tiny_models["llama"], tmp_path / "model")
    data = _copy(tiny_data, tmp_path / "d.jsonl")
    shutil.copy(tiny_data.parent / "labels.json", tmp_path / "labels.json")
    fit = _copy(trusted_folders["fit"], tmp_path / "fit")
    export = _copy(trusted_folders["export"], tmp_path / "export")
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(recipe_dict(model, data)))
    before = sorted((p.as_posix(), p.stat().st_size) for p in tmp_path.rglob("*") if p.is_file())
    source = str(fit) if command == "export" else str(recipe)
    refused([command, source, *place(tmp_path, model, data, fit, export)], capsys, None, fragment)
    after = sorted((p.as_posix(), p.stat().st_size) for p in tmp_path.rglob("*") if p.is_file())
    assert after == before


@pytest.mark.parametrize("case", ["json_inside_export", "json_is_export", "prompts_fifo"])
def test_generate_files_are_checked_before_loading(
    trusted_folders: dict[str, Path], tmp_path: Path, case: str, capsys
) -> None:
    export = _copy(trusted_folders["export"], tmp_path / "export")
    argv = ["generate", str(export), "--prompt", "hello", "--max-new-tokens", "1"]
    if case == "prompts_fifo":
        os.mkfifo(tmp_path / "p.txt")
        argv += ["--prompts-file", str(tmp_path / "p.txt")]
        fragment = "is not a regular file"
    else:
        argv += ["--json", str(export / "g.json" if case == "json_inside_export" else export)]
        fragment = "is inside the export"
    refused(argv, capsys, None, fragment)
    assert check_export(export).findings.ok


@pytest.mark.parametrize(
    "key, value",
    [
        ("eval.enabled", "yes"),
        ("eval.enabled", "Off"),
        ("output.overwrite", "on"),
        ("edits.0.top_p", "NO"),
        ("data.fit_per_class", "yes"),
    ],
)
def test_yaml_11_booleans_are_refused(
    tiny_models: dict[str, Path], tiny_data: Path, tmp_path: Path, key: str, value: str, capsys
) -> None:
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(recipe_dict(tiny_models["llama"], tiny_data)))
    refused(
        ["check", str(recipe), "--set", f"{key}={value}"],
        capsys,
        None,
        key,
        "is a boolean in YAML 1.1 but text in YAML 1.2",
    )


@pytest.mark.parametrize(
    "field, value", [("hidden_size", "64"), ("num_hidden_layers", 2.5), ("rms_norm_eps", "small")]
)
def test_a_base_config_field_of_the_wrong_type_is_named(
    tiny_models: dict[str, Path],
    tiny_data: Path,
    tmp_path: Path,
    field: str,
    value: object,
    capsys,
) -> None:
    model = _copy(tiny_models["llama"], tmp_path / "model")
    _edit_json(model / "config.json", lambda d: d.update({field: value}))
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(recipe_dict(model, tiny_data)))
    out = tmp_path / "out"
    refused(["fit", str(recipe), "--out", str(out)], capsys, out, "model.id: cannot load", field)


@pytest.mark.parametrize("setting", ["seed=-1", "seed=4294967296", "prompt.shot_seed=-5"])
def test_a_seed_no_generator_takes_as_it_is_is_refused(
    tiny_models: dict[str, Path], tiny_data: Path, tmp_path: Path, setting: str, capsys
) -> None:
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(recipe_dict(tiny_models["llama"], tiny_data)))
    refused(["check", str(recipe), "--set", setting], capsys, None, setting.split("=")[0])


@pytest.mark.parametrize("setting", ["batch_size=65537", f"batch_size={10**40}"])
def test_a_batch_larger_than_any_batch_is_refused(
    tiny_models: dict[str, Path], tiny_data: Path, tmp_path: Path, setting: str, capsys
) -> None:
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(recipe_dict(tiny_models["llama"], tiny_data)))
    refused(["check", str(recipe), "--set", setting], capsys, None, "batch_size", "65536")


@pytest.mark.parametrize("header", ["text,label,text", "text,label,label", "a,a,text,label"])
def test_a_csv_column_named_twice_is_refused(
    tiny_models: dict[str, Path], tiny_data: Path, tmp_path: Path, header: str, capsys
) -> None:
    data = tmp_path / "d.csv"
    width = len(header.split(","))
    body = "".join(
        ",".join([json.dumps(r["text"]), str(r["label"])] + ["x"] * (width - 2)) + "\n"
        for r in _rows(tiny_data)
    )
    data.write_text(header + "\n" + body)
    shutil.copy(tiny_data.parent / "labels.json", tmp_path / "labels.json")
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(recipe_dict(tiny_models["llama"], data)))
    out = tmp_path / "out"
    refused(["fit", str(recipe), "--out", str(out)], capsys, out, str(data), "named twice")


@pytest.mark.parametrize("where", ["flag", "recipe"])
def test_more_threads_than_cpus_is_refused(
    tiny_models: dict[str, Path], tiny_data: Path, tmp_path: Path, where: str, capsys
) -> None:
    from nledit.models.threads import usable_cpus

    too_many = usable_cpus() + 1
    data = recipe_dict(tiny_models["llama"], tiny_data)
    extra: list[str] = []
    if where == "flag":
        extra, field = ["--threads", str(too_many)], "--threads"
    else:
        data["threads"], field = too_many, "threads"
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(data))
    out = tmp_path / "out"
    refused(["fit", str(recipe), "--out", str(out), *extra], capsys, out, field, str(too_many))


def test_a_base_naming_its_own_code_is_loaded_without_it_and_says_so(
    tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    from nledit.models.config_facts import IgnoredCodeWarning
    from nledit.models.loading import load_on_meta

    base = tmp_path / "base"
    shutil.copytree(tiny_models["llama"], base)
    config = json.loads((base / "config.json").read_text())
    config["auto_map"] = {"AutoModelForCausalLM": "modeling_evil.EvilForCausalLM"}
    (base / "config.json").write_text(json.dumps(config))
    canary = tmp_path / "ran"
    (base / "modeling_evil.py").write_text(f"open({str(canary)!r}, 'w').write('x')\n")
    with pytest.warns(IgnoredCodeWarning, match="auto_map"):
        load_on_meta(base, "auto")
    assert not canary.exists()


@pytest.mark.parametrize("kind", ["folder", "fifo"])
def test_a_data_source_that_is_not_a_regular_file_says_what_it_is(
    tiny_models: dict[str, Path], tmp_path: Path, kind: str, capsys
) -> None:
    source = tmp_path / "rows.jsonl"
    if kind == "folder":
        source.mkdir()
    else:
        os.mkfifo(source)
    data = recipe_dict(tiny_models["llama"], source)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(data))
    out = tmp_path / "out"
    expected = "is a folder, not a file" if kind == "folder" else "not a regular file"
    refused(["fit", str(recipe), "--out", str(out)], capsys, out, "data.source", expected)
