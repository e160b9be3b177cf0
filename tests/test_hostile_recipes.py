"""Hostile recipes: no coercion, finite numbers only, canonical layers, no key given twice.

Each case writes a recipe as YAML text and runs ``nledit run`` through ``nledit.cli.main``: the
run must stop with exit code 2, a message naming the field, no traceback, and no output folder.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hostile import recipe_text, refused, write_recipe

from nledit.recipe import load_recipe

NUMBER = "Input should be a valid number, got a boolean"
INTEGER = "Input should be a valid integer"
FINITE = "must be a finite number"
LAYER = "must be a layer index"
BOOL11 = "is a boolean in YAML 1.1 but text in YAML 1.2"

# (id, section, YAML lines, fragments the message must hold)
TYPING: list[tuple[str, str, list[str], list[str]]] = [
    # booleans are not numbers
    ("top_p_yes", "edit", ["top_p: yes"], ["edits.0.top_p", BOOL11]),
    ("top_p_true", "edit", ["top_p: true"], ["edits.0.top_p", NUMBER]),
    ("top_p_on", "edit", ["top_p: on"], ["edits.0.top_p", BOOL11]),
    ("tau_yes", "edit", ["tau: yes"], ["edits.0.tau", BOOL11]),
    ("alpha_true", "operator", ["name: dampen", "alpha: true"], ["edits.0.operator.alpha", NUMBER]),
    ("strength_no", "operator", ["name: steer", "strength: no"], ["operator.strength", BOOL11]),
    ("batch_size_true", "top", ["batch_size: true"], ["batch_size", "got a boolean (true)"]),
    ("seed_false", "top", ["seed: false"], ["seed", "got a boolean (false)"]),
    ("fit_per_class_yes", "data", ["fit_per_class: yes"], ["data.fit_per_class", BOOL11]),
    ("eval_per_class_true", "data", ["eval_per_class: true"], ["data.eval_per_class", INTEGER]),
    ("max_length_on", "data", ["max_length: on"], ["data.max_length", BOOL11]),
    ("shots_true", "prompt", ["shots: true"], ["prompt.shots", INTEGER]),
    ("ppl_windows_yes", "eval", ["perplexity_windows: yes"], ["eval.perplexity_windows"]),
    ("steer_strength_true", "eval", ["steer_strength: true"], ["eval.steer_strength", NUMBER]),
    ("trials_true", "tune", ["trials: true"], ["tune.trials", INTEGER]),
    ("tune_keep_yes", "tune", ["keep: yes"], ["tune.keep", BOOL11]),
    ("tune_pick_false", "tune", ["pick: false"], ["tune.pick"]),
    ("space_top_p_bool", "tune", ["space: {top_p: [true, 0.5]}"], ["tune.space.top_p.0"]),
    ("space_layers_bool", "tune", ["space: {layers: [true]}"], ["tune.space.layers.0"]),
    ("sweep_values_bool", "sweep", ["values: [true, 0.5]"], ["sweep.values.0"]),
    (
        "head_batch_yes",
        "train_head",
        ["base: x", "data: y.jsonl", "batch_size: yes"],
        ["train_head.batch_size", BOOL11],
    ),
    (
        "head_epochs_true",
        "train_head",
        ["base: x", "data: y.jsonl", "epochs: true"],
        ["train_head.epochs", INTEGER],
    ),
    # only finite numbers
    ("tau_inf", "edit", ["tau: .inf"], ["edits.0.tau", FINITE, ".inf"]),
    ("tau_1e400", "edit", ["tau: 1e400"], ["edits.0.tau", FINITE, ".inf"]),
    ("tau_nan", "edit", ["tau: .nan"], ["edits.0.tau", FINITE, ".nan"]),
    ("tau_upper_inf", "edit", ["tau: .Inf"], ["edits.0.tau", FINITE]),
    ("top_p_nan", "edit", ["top_p: .nan"], ["edits.0.top_p", FINITE]),
    ("alpha_inf", "operator", ["name: dampen", "alpha: .inf"], ["operator.alpha", FINITE]),
    ("alpha_1e999", "operator", ["name: dampen", "alpha: 1e999"], ["operator.alpha", FINITE]),
    ("alpha_nan", "operator", ["name: dampen", "alpha: .nan"], ["operator.alpha", FINITE]),
    ("beta_inf", "operator", ["name: adaptive", "beta: .inf"], ["operator.beta", FINITE]),
    ("strength_inf", "operator", ["name: steer", "strength: .inf"], ["strength", FINITE]),
    ("strength_minus_inf", "operator", ["name: steer", "strength: -.inf"], ["-.inf", FINITE]),
    ("strength_nan", "operator", ["name: steer", "strength: .NaN"], ["strength", FINITE]),
    ("strength_minus_1e400", "operator", ["name: steer", "strength: -1e400"], [FINITE]),
    (
        "magnitude_weight_inf",
        "edit",
        ["saliency: selective", "magnitude_weight: .inf"],
        ["edits.0.magnitude_weight", FINITE],
    ),
    (
        "quantile_nan",
        "edit",
        ["range: quantile", "quantiles: [0.1, .nan]"],
        ["edits.0.quantiles.1", FINITE],
    ),
    ("steer_strength_nan", "eval", ["steer_strength: .nan"], ["eval.steer_strength", FINITE]),
    ("tune_keep_inf", "tune", ["keep: .inf"], ["tune.keep", FINITE]),
    ("space_tau_inf", "tune", ["space: {tau: [0.5, .inf]}"], ["tune.space.tau.1", FINITE]),
    ("space_alpha_nan", "tune", ["space: {alpha: [.nan, 1.0]}"], ["tune.space.alpha.0", FINITE]),
    ("sweep_values_inf", "sweep", ["over: tau", "values: [1.0, .inf]"], ["sweep.values.1", FINITE]),
    ("sweep_values_nan", "sweep", ["over: top_p", "values: [.nan]"], ["sweep.values.0", FINITE]),
    (
        "head_lr_inf",
        "train_head",
        ["base: x", "data: y.jsonl", "lr: .inf"],
        ["train_head.lr", FINITE],
    ),
    (
        "head_warmup_nan",
        "train_head",
        ["base: x", "data: y.jsonl", "warmup: .nan"],
        ["train_head.warmup", FINITE],
    ),
    ("batch_size_1e400", "top", ["batch_size: 1e400"], ["batch_size", INTEGER]),
    ("tau_beyond_float32", "edit", ["tau: 1e39"], ["edits.0.tau: 1e+39 does not fit a 32-bit"]),
    ("tau_huge_finite", "edit", ["tau: 1e30"], ["edits.0.tau", "less than or equal to 100"]),
    ("alpha_1e300", "operator", ["name: dampen", "alpha: 1e300"], ["operator.alpha", "32-bit"]),
    ("strength_minus_1e50", "operator", ["name: steer", "strength: -1e50"], ["32-bit float"]),
    # no silent conversion between kinds
    ("tau_quoted", "edit", ["tau: '2.5'"], ["edits.0.tau", "got a string ('2.5')"]),
    ("batch_size_float", "top", ["batch_size: 4.0"], ["batch_size", INTEGER, "4.0"]),
    ("seed_fraction", "top", ["seed: 1.5"], ["seed", INTEGER]),
    ("shots_quoted", "prompt", ["shots: '2'"], ["prompt.shots", INTEGER]),
    ("calibrate_one", "prompt", ["calibrate: 1"], ["prompt.calibrate", "valid boolean"]),
    ("chat_word", "prompt", ["chat: 'yes'"], ["prompt.chat", "valid boolean"]),
    ("overwrite_zero", "output", ["overwrite: 0"], ["output.overwrite", "valid boolean"]),
    ("curate_string", "eval", ["curate: 'true'"], ["eval.curate", "valid boolean"]),
    ("label_words_numbers", "prompt", ["label_words: [1, 2, 3, 4]"], ["prompt.label_words.0"]),
    # layers: last or a canonical integer
    ("layer_minus_zero", "edit", ["layer: '-0'"], ["edits.0.layer", LAYER, "'-0'"]),
    ("layer_plus_one", "edit", ["layer: '+1'"], ["edits.0.layer", LAYER]),
    ("layer_leading_zero", "edit", ["layer: '01'"], ["edits.0.layer", LAYER]),
    ("layer_spaces", "edit", ["layer: ' 1'"], ["edits.0.layer", LAYER]),
    ("layer_decimal_text", "edit", ["layer: '1.0'"], ["edits.0.layer", LAYER]),
    ("layer_superscript", "edit", ["layer: '²'"], ["edits.0.layer", LAYER]),
    ("layer_arabic_digit", "edit", ["layer: '٣'"], ["edits.0.layer", LAYER]),
    ("layer_no", "edit", ["layer: no"], ["edits.0.layer", BOOL11]),
    ("layer_inf", "edit", ["layer: .inf"], ["edits.0.layer", LAYER]),
    ("layer_whole_float", "edit", ["layer: 2.0"], ["edits.0.layer", LAYER]),
]


@pytest.mark.parametrize(
    "section, lines, fragments", [c[1:] for c in TYPING], ids=[c[0] for c in TYPING]
)
def test_lax_typing_is_refused(
    tmp_path: Path, section: str, lines: list[str], fragments: list[str], capsys
) -> None:
    recipe = write_recipe(tmp_path, tmp_path / "model", tmp_path / "d.jsonl", {section: lines})
    out = tmp_path / "out"
    refused(["run", str(recipe), "--out", str(out)], capsys, out, str(recipe), *fragments)


# (id, section, the line given a second time, its dotted path)
DUPLICATES: list[tuple[str, str, str, str]] = [
    ("edit_tau", "edit", "tau: 0.5", "edits.0.tau"),
    ("edit_layer", "edit", "layer: 0", "edits.0.layer"),
    ("operator_name", "operator", "name: dampen", "edits.0.operator.name"),
    ("data_source", "data", "source: other.jsonl", "data.source"),
    ("model_id", "model", "id: gpt2", "model.id"),
    ("prompt_shots", "prompt", "shots: 0", "prompt.shots"),
    ("eval_windows", "eval", "perplexity_windows: 4", "eval.perplexity_windows"),
    ("top_batch_size", "top", "batch_size: 2", "batch_size"),
]


@pytest.mark.parametrize(
    "section, line, dotted", [c[1:] for c in DUPLICATES], ids=[c[0] for c in DUPLICATES]
)
def test_key_given_twice_names_both_lines(
    tmp_path: Path, section: str, line: str, dotted: str, capsys
) -> None:
    recipe = write_recipe(
        tmp_path, tmp_path / "model", tmp_path / "d.jsonl", {section: [line]}, replace=False
    )
    key = line.split(":")[0]
    numbers = [
        n
        for n, text in enumerate(recipe.read_text().splitlines(), 1)
        if text.strip().removeprefix("- ").startswith(f"{key}:")
    ]
    if section == "top":  # the key is at the top level only
        numbers = [n for n in numbers if not recipe.read_text().splitlines()[n - 1][0].isspace()]
    assert len(numbers) == 2
    out = tmp_path / "out"
    fragment = f"{dotted}: given twice, at lines {numbers[0]} and {numbers[1]}"
    refused(["run", str(recipe), "--out", str(out)], capsys, out, fragment)


SECTIONS = {
    # a whole section twice is reported under its own name, not a field of the other one
    "section_model": ("model:\n  id: gpt2\n", "model: given twice"),
    "section_edits": ("edits:\n  - concepts: [World]\n", "edits: given twice"),
    "section_data": ("data:\n  source: x.jsonl\n", "data: given twice"),
    "flow_mapping": ("eval: {enabled: true, enabled: false}\n", "eval.enabled: given twice"),
    "second_edit": (
        "extra:\n  - {concepts: [World], tau: 1.0, tau: 2.0}\n",
        "extra.0.tau: given twice",
    ),
}


@pytest.mark.parametrize("tail, fragment", SECTIONS.values(), ids=list(SECTIONS))
def test_section_given_twice(tmp_path: Path, tail: str, fragment: str, capsys) -> None:
    text = recipe_text(tmp_path / "model", tmp_path / "d.jsonl", {}) + tail
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(text, encoding="utf-8")
    out = tmp_path / "out"
    refused(["run", str(recipe), "--out", str(out)], capsys, out, fragment, "at lines")


SETS = {
    "unclosed_list": ("edits.0.tau=[1, 2", ["edits.0.tau: --set value is not valid YAML"]),
    "unclosed_mapping": ("edits.0.operator={name: zero", ["not valid YAML"]),
    "undefined_alias": ("model.id=*base", ["not valid YAML", "alias"]),
    "python_tag": ("seed=!!python/object/apply:os.system [ls]", ["not valid YAML"]),
    "nested_colons": ("edits.0.tau=a: b: c", ["not valid YAML"]),
    "tab_indent": ("edits.0.operator=name: zero\n\talpha: 1", ["not valid YAML"]),
    "two_documents": ("seed=1\n---\n2", ["not valid YAML"]),
    "duplicate_in_value": ("edits.0.operator={name: zero, name: mean}", ["name: given twice"]),
    "empty_key": ("=3", ["expected key=value"]),
    "blank_key": ("  =3", ["expected key=value"]),
    "bool_for_number": ("edits.0.top_p=yes", ["edits.0.top_p", BOOL11]),
    "inf_for_tau": ("edits.0.tau=.inf", ["edits.0.tau", FINITE]),
    "exp_overflow": ("edits.0.tau=1e400", ["edits.0.tau", FINITE]),
    "layer_minus_zero": ("edits.0.layer='-0'", ["edits.0.layer", LAYER]),
}


@pytest.mark.parametrize("item, fragments", SETS.values(), ids=list(SETS))
def test_bad_set_value(tmp_path: Path, item: str, fragments: list[str], capsys) -> None:
    recipe = write_recipe(tmp_path, tmp_path / "model", tmp_path / "d.jsonl", {})
    out = tmp_path / "out"
    argv = ["run", str(recipe), "--out", str(out), "--set", item]
    refused(argv, capsys, out, *fragments)


# ---- what must keep working ------------------------------------------------------------------


@pytest.mark.parametrize(
    "line, value",
    [("tau: 1e-1", 0.1), ("tau: 2", 2.0), ("tau: 1.5e+0", 1.5), ("layer: '-1'", -1)],
)
def test_plain_numbers_still_read(tmp_path: Path, line: str, value: float) -> None:
    recipe = write_recipe(tmp_path, tmp_path / "model", tmp_path / "d.jsonl", {"edit": [line]})
    edit = load_recipe(recipe)[0].edits[0]
    assert getattr(edit, line.split(":")[0]) == value


def test_exponent_without_dot_is_a_number(tmp_path: Path) -> None:
    lines = ["base: x", "data: y.jsonl", "lr: 5e-5"]
    recipe = write_recipe(tmp_path, tmp_path / "m", tmp_path / "d.jsonl", {"train_head": lines})
    spec = load_recipe(recipe)[0].train_head
    assert spec is not None and spec.lr == 5e-5


BOMB = "".join(
    f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]\n" if i else "l0: &l0 [x, x, x, x, x, x]\n"
    for i in range(7)
)
STRUCTURES = {
    # (text appended to a valid recipe, fragment)
    "alias_bomb": (BOMB, "aliases expand to more than"),
    "recursive_alias": ("loop: &loop [*loop]\n", "an alias refers to a value holding it"),
    "deep_nesting": ("deep: " + "[" * 3000 + "]" * 3000 + "\n", "nested too deeply"),
    "nul_in_path": ('sweep: {out: "runs/a\\0b"}\n', "sweep.out: contains a NUL character"),
    "two_documents": ("---\nseed: 1\n", "YAML syntax error"),
    "storage_not_url": ("tune: {storage: my-study.db}\n", "tune.storage: 'my-study.db' is not"),
}


@pytest.mark.parametrize("tail, fragment", STRUCTURES.values(), ids=list(STRUCTURES))
def test_hostile_yaml_structure(tmp_path: Path, tail: str, fragment: str, capsys) -> None:
    text = recipe_text(tmp_path / "model", tmp_path / "d.jsonl", {}) + tail
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(text, encoding="utf-8")
    out = tmp_path / "out"
    refused(["run", str(recipe), "--out", str(out)], capsys, out, fragment)


def test_recipe_that_is_a_folder(tmp_path: Path, capsys) -> None:
    refused(["check", str(tmp_path)], capsys, None, "is a folder, not a recipe file")


def test_empty_data_source(tmp_path: Path, capsys) -> None:
    recipe = write_recipe(tmp_path, tmp_path / "m", tmp_path / "d.jsonl", {"data": ["source: ''"]})
    refused(["check", str(recipe)], capsys, None, "data.source: String should have at least 1")
