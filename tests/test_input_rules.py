"""The input rules: one validated boundary for every input (the Python API, saved edits, state,
CLI flags), no field accepted and ignored, counts met exactly, export never refits, and texts
with nothing to read, prompts past the context or label words scored by a bare space refused.

Each test checks a class through several members of it, not one named case.
"""

from __future__ import annotations

import argparse
import ast
import json
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import make_tokenizer, recipe_dict
from pydantic import BaseModel
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

import nledit
from nledit.cli import build_parser, main
from nledit.commands.args import FLAG_FIELDS
from nledit.commands.run import RefitError, refuse_refit
from nledit.data.blank import blank
from nledit.data.dataset import load_concept_data
from nledit.data.labelwords import LabelWordError, label_tokens
from nledit.data.text import windows
from nledit.errors import EditError, NleditError
from nledit.models.context import ContextError
from nledit.recipe import DataSpec, Recipe, RecipeError, parse_recipe
from nledit.recipe.flags import FLAGS
from nledit.recipe.ignored import ignored_fields

ROOT = Path(__file__).resolve().parents[1]
EDIT = {"concepts": ["Sports"], "layer": "last", "top_p": 0.25}
INVISIBLE = [
    "\u200b",
    "\ufeff",
    "\u200b\u200c\u200d",
    " \u2060 ",
    "\u0301",
    "\u3164",
    "\x07",
    "\u2028",
]


@pytest.fixture(scope="module")
def llama(tiny_models: dict[str, Path]) -> tuple[Any, Any]:
    path = str(tiny_models["llama"])
    return AutoModelForCausalLM.from_pretrained(path), AutoTokenizer.from_pretrained(path)


def _pairs(tiny_data: Path, every: int = 2) -> list[tuple[str, str]]:
    names = json.loads((tiny_data.parent / "labels.json").read_text())
    rows = [json.loads(line) for line in tiny_data.read_text().splitlines()]
    return [(r["text"], names[int(r["label"])]) for r in rows][::every]


# ---- rule 3: the Python API validates its arguments as recipe fields -----------------------


@pytest.mark.parametrize(
    ("labels", "named"),
    [
        ([None, "Sports"], r"data\[0\]: label None"),
        (["World", 1], r"mix names and ids"),
        ([["Sports"], "World"], r"data\[0\]: label \['Sports'\]"),
        ([{"a": 1}, "World"], r"data\[0\]: label"),
        ([1.0, "World"], r"data\[0\]: label 1.0"),
        ([True, 0], r"data\[0\]: label True"),
        (["", "World"], r"data\[0\]: label '' has no visible character"),
        (["\u200b", "World"], r"data\[0\]: label .* has no visible character"),
        ([0, 10**9], r"label ids run up to 1000000000"),
        ([-1, 0], r"data\[0\]: label -1 outside"),
    ],
)
def test_api_labels_of_any_wrong_kind_are_refused_naming_the_row(llama, labels, named) -> None:
    model, tok = llama
    data = [("the match goal", labels[0]), ("the market trade", labels[1])] * 3
    with pytest.raises(EditError, match=named):
        nledit.fit(model, tok, data, [EDIT])


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"label_names": "World"}, r"label_names: Input should be a valid list"),
        ({"label_names": []}, r"label_names: "),
        ({"label_names": ["World", "World"]}, r"label_names: 'World' is listed twice"),
        ({"seed": "1"}, r"seed: Input should be a valid integer"),
        ({"seed": True}, r"seed: Input should be a valid integer"),
        ({"batch_size": 0}, r"batch_size"),
        ({"batch_size": "auto"}, r"batch_size: auto is for recipes"),
        ({"max_length": 4}, r"max_length: Input should be greater than or equal to 8"),
        ({"steer_strength": float("nan")}, r"steer_strength: Input should be a finite"),
        ({"baselines": ("nope",)}, r"baselines.0: Input should be"),
        ({"model_id": ""}, r"model_id: must not be empty"),
        ({"model_id": 3}, r"model_id: Input should be a valid string"),
        ({"shots": "x"}, r"shots: expected a list of \(text, label\) pairs"),
        ({"prompt": "x"}, r"prompt: Input should be a valid dictionary"),
        ({"prompt": {"label_words": [" a", "\u200b"]}}, r"prompt.label_words.1"),
    ],
)
def test_api_arguments_are_validated_as_the_recipe_fields(llama, tiny_data, kwargs, named) -> None:
    model, tok = llama
    args: dict[str, Any] = {"prompt": None, **kwargs}
    prompt = args.pop("prompt")
    with pytest.raises(EditError, match=named):
        nledit.fit(model, tok, _pairs(tiny_data), [EDIT], prompt, **args)


def test_api_refuses_arguments_a_data_spec_states_itself(llama, tiny_data) -> None:
    model, tok = llama
    spec = {"source": str(tiny_data), "fit_per_class": 6, "eval_per_class": 2}
    for kwargs in ({"label_names": ["a"]}, {"shots": []}, {"max_length": 64}):
        with pytest.raises(EditError, match=f"{next(iter(kwargs))}: a recipe data spec"):
            nledit.fit(model, tok, spec, [EDIT], **kwargs)
    with pytest.raises(EditError, match=r"data.split: only a Hub data set"):
        nledit.fit(model, tok, {**spec, "split": "test"}, [EDIT])


def test_a_model_built_from_a_config_fits_and_exports_with_model_id(
    tiny_models, tiny_data, tmp_path
) -> None:
    path = tiny_models["llama"]
    config = AutoConfig.from_pretrained(path)
    config._name_or_path = ""  # as a model built in memory from a fresh config
    model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(AutoModelForCausalLM.from_pretrained(path).state_dict())
    tok = AutoTokenizer.from_pretrained(path)
    assert not model.name_or_path
    edit = nledit.fit(model, tok, _pairs(tiny_data), [EDIT])  # no model_id needed to fit
    assert edit.definition["model"] == {"id": None}
    with pytest.raises(EditError, match="model_id="):
        nledit.export(model, tok, edit, tmp_path / "a")
    out = nledit.export(model, tok, edit, tmp_path / "b", model_id=str(path))
    assert main(["verify", str(out)]) == 0


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"label_names": "Sports"}, "label_names"),
        ({"label_names": ["Sports", "Sports"]}, "label_names"),
        ({"prompt": {"shots": -1}}, "prompt.shots"),
        ({"prompt": "x"}, "prompt"),
        ({"definition": {"edits": [{"concepts": []}]}}, "definition.edits.0.concepts"),
        ({"definition": {"model": {"id": 5}}}, "definition.model.id"),
        ({"definition": []}, "definition"),
    ],
)
def test_a_saved_edit_is_validated_by_the_recipe_models(trusted_folders, tmp_path, change, named):
    import shutil

    folder = tmp_path / "edit"
    shutil.copytree(trusted_folders["edit"], folder)
    meta = json.loads((folder / "edit.json").read_text())
    meta.update(change)
    (folder / "edit.json").write_text(json.dumps(meta))
    with pytest.raises(EditError, match=named.replace(".", r"\.")):
        nledit.Edit.load(folder)


# ---- rule 3: state misuse is a plain NleditError -------------------------------------------


def test_state_misuse_is_refused_plainly(llama, tiny_data, tmp_path) -> None:
    model, tok = llama
    edit = nledit.fit(model, tok, _pairs(tiny_data), [EDIT])
    other = nledit.fit(model, tok, _pairs(tiny_data), [{**EDIT, "name": "o"}])
    with edit.applied(model):
        with pytest.raises(EditError, match="already applied"), edit.applied(model):
            pass
        with pytest.raises(EditError, match="already applied"):
            nledit.generate(model, tok, edit, ["the match"])
        with pytest.raises(EditError, match="export: the model has nledit gates installed"):
            nledit.export(model, tok, other, tmp_path / "x", model_id=str(model.name_or_path))
        with pytest.raises(EditError, match="fit: the model has nledit gates installed"):
            nledit.fit(model, tok, _pairs(tiny_data), [EDIT])
        with pytest.raises(EditError, match="outside applied"):
            nledit.evaluate(model, tok, edit, _pairs(tiny_data, 5))
    with other.applied(model), pytest.raises(EditError, match="evaluate: the model has"):
        nledit.evaluate(model, tok, edit, _pairs(tiny_data, 5))
    with pytest.raises(EditError, match="not applied"), edit.disabled(model):
        pass
    assert not (tmp_path / "x").exists()
    with pytest.raises(EditError, match="method: expected"), edit.applied(model, "rnage"):
        pass
    with pytest.raises(EditError, match=r"edit: expected what nledit.fit"):
        nledit.export(model, tok, "edit", tmp_path / "y")
    with pytest.raises(EditError, match="model: expected"):
        nledit.fit("model", tok, _pairs(tiny_data), [EDIT])


# ---- rule 3: every CLI flag is a recipe field or validated the same way ---------------------

RECIPE_COMMAND_DESTS = {"recipe", "set", "overwrite", "threads", "strict", "fit_dir", "no_eval"}
RECIPE_COMMAND_DESTS |= {"report", "all_layers", "over", "values", "sweep_out"}  # sweep.*, inspect
RECIPE_COMMAND_DESTS |= {"trials", "pick", "keep", "tune_out", "storage", "sampler"}  # tune.*
TRAIN_HEAD = {"base", "data", "eval_data", "train_examples", "eval_examples", "epochs", "lr"}
TRAIN_HEAD |= {"batch_size", "max_length", "seed", "out", "overwrite", "set", "recipe", "threads"}
TRAIN_HEAD |= {"mode", "train_layers"}


def _dests(command: str) -> set[str]:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    parser = sub.choices[command]
    return {a.dest for a in parser._actions if a.dest != "help"}


def test_every_flag_of_every_command_has_a_schema() -> None:
    """A flag is a recipe field (FLAG_FIELDS, or a command's section), a train_head field, or
    a field of the command's flag schema (flags.FLAGS): nothing goes to a job unchecked."""
    from nledit.recipe import TrainHeadSpec

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    recipe_flags = {flag for flag, _ in FLAG_FIELDS} | RECIPE_COMMAND_DESTS
    for command in sub.choices:
        dests = _dests(command)
        if command in FLAGS:
            assert dests - {"threads"} <= set(FLAGS[command].model_fields), command
        elif command == "train-head":
            assert dests <= TRAIN_HEAD and TRAIN_HEAD - {"recipe", "set", "threads"} <= (
                set(TrainHeadSpec.model_fields) | {"data", "base", "eval_data"}
            )
        else:
            assert dests <= recipe_flags, (command, dests - recipe_flags)


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["eval", "X", "--limit", "0"], "--limit"),
        (["eval", "X", "--limit", "-1"], "--limit"),
        (["eval", "X", "--limit", "nan"], "--limit"),
        (["eval", "X", "--limit", "2.5"], "--limit"),
        (["eval", "X", "--tasks", ","], "--tasks"),
        (["eval", "X", "--tasks", "mmlu,,wikitext"], "--tasks"),
        (["eval", "X", "--tasks", " "], "--tasks"),
        (["eval", "X", "--tasks", "a b"], "--tasks"),
        (["eval", "X", "--num-fewshot", "-1"], "--num-fewshot"),
        (["eval", "X", "--batch-size", "0"], "--batch-size"),
        (["eval", "X", "--batch-size", "many"], "--batch-size"),
        (["eval", "X", "--dtype", "int8"], "--dtype"),
        (["eval", "X", "--device", "gpu"], "--device"),
        (["eval", "X", "--device", "cuda"], "--device"),
        (["generate", "X", "--prompt", "hi", "--device", "cuda:0"], "--device"),
        (["generate", "X", "--prompt", "hi", "--device", "mps"], "--device"),
        (["generate", "X", "--prompt", "hi", "--device", "cpu:1"], "--device"),
        (["generate", "X", "--prompt", "\u200b\u200b"], "--prompt"),
        (["generate", "X", "--prompt", "hi", "--max-new-tokens", "0"], "--max-new-tokens"),
        (["generate", "X", "--prompt", "hi", "--top-p", "0"], "--top-p"),
        (["generate", "X", "--prompt", "hi", "--temperature", "-1"], "--temperature"),
        (["verify", "X", "--device", "cuda"], "--device"),
        (["push", "X", "--repo", "no-slash"], "--repo"),
        (["push", "X", "--repo", "a/b", "--revision", ""], "--revision"),
    ],
)
def test_bad_flags_are_refused_naming_the_flag(argv, named, tmp_path, capsys) -> None:
    argv = [str(tmp_path / "missing") if a == "X" else a for a in argv]
    if not torch.cuda.is_available() or "cuda" not in " ".join(argv):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert named in err and "Traceback" not in err


def test_a_recipe_device_this_machine_lacks_is_refused_before_loading(
    tiny_models, tiny_data, make_recipe, capsys
) -> None:
    if torch.cuda.is_available():
        pytest.skip("the machine has CUDA")
    path = make_recipe(tiny_models["llama"], tiny_data)
    assert main(["fit", str(path), "--device", "cuda", "--out", str(path.parent / "f")]) == 2
    assert "model.device: cannot use 'cuda' here: this machine has no" in capsys.readouterr().err
    assert not (path.parent / "f").exists()


# ---- rule 4: no field accepted and ignored ---------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value", "named"),
    [
        ("data.split", "test", "data.split: only a Hub data set"),
        ("data.config", "en", "data.config: only a Hub data set"),
        ("data.eval_split", "test", "data.eval_split: only used with data.eval_source"),
        ("data.context_words", 12, "data.context_words: only used with data.token_classes"),
        ("model.revision", "main", "model.revision: only a Hub model"),
        ("model.max_memory", {"cpu": "1GB"}, "model.max_memory: only used with model.device_map"),
        ("eval.steer_strength", 2.0, "eval.steer_strength: only used with the steer baseline"),
        ("eval.generate_tokens", 5, "eval.generate_tokens: only used with"),
        ("eval.perplexity_window", 64, "eval.perplexity_window: only used with"),
    ],
)
def test_a_field_set_where_nothing_reads_it_is_refused(
    tiny_models, tiny_data, key, value, named, make_recipe, capsys
) -> None:
    from nledit.recipe import set_dotted

    d = recipe_dict(tiny_models["llama"], tiny_data)
    set_dotted(d, key, value)
    problems = ignored_fields(parse_recipe(d))
    assert len(problems) == 1 and problems[0].startswith(key.split(".operator")[0])
    if named:
        assert named in problems[0]
    path = make_recipe(tiny_models["llama"], tiny_data, extra={key: value})
    assert main(["check", str(path)]) == 2
    assert problems[0] in capsys.readouterr().out


@pytest.mark.parametrize(
    ("value", "named"),
    [
        ({"name": "zero", "alpha": 0.1}, "edits.0.operator.alpha: not used by the zero operator"),
        ({"name": "dampen", "beta": 0.1}, "edits.0.operator.beta: not used by the dampen operator"),
        ({"name": "zero", "mean_source": "x.txt"}, "edits.0.operator.mean_source: not used by"),
    ],
)
def test_an_operator_section_takes_only_its_operators_fields(
    tiny_models, tiny_data, value, named, make_recipe, capsys
) -> None:
    d = recipe_dict(tiny_models["llama"], tiny_data)
    d["edits"][0]["operator"] = value
    with pytest.raises(RecipeError) as err:
        parse_recipe(d)
    assert len(err.value.problems) == 1 and err.value.problems[0].startswith(named)
    path = make_recipe(tiny_models["llama"], tiny_data, extra={"edits.0.operator": value})
    assert main(["check", str(path)]) == 2
    shown = capsys.readouterr()
    assert named in shown.out + shown.err


def test_a_hub_id_with_gguf_file_or_revision_is_read_as_given(tiny_models, tiny_data) -> None:
    d = recipe_dict(tiny_models["llama"], tiny_data)
    d["model"] = {"id": "org/model", "revision": "abc123"}  # a Hub id: revision applies
    assert ignored_fields(parse_recipe(d)) == []
    d["model"] = {"id": "org/model", "gguf_file": "m.gguf"}
    assert "model.gguf_file" in ignored_fields(parse_recipe(d))[0]


def _models(model: type[BaseModel], seen: set[type[BaseModel]]) -> None:
    """Every pydantic model reachable from ``model``'s fields."""
    import typing

    if model in seen:
        return
    seen.add(model)
    stack = [f.annotation for f in model.model_fields.values()]
    while stack:
        t = stack.pop()
        if isinstance(t, type) and issubclass(t, BaseModel):
            _models(t, seen)
        stack += list(typing.get_args(t))


def _reads() -> set[str]:
    """Names the code outside the schema reads: attributes loaded (not called) and strings
    that are a bare name (``getattr`` and ``include`` keys), never words in prose."""
    names: set[str] = set()
    for path in (ROOT / "nledit").rglob("*.py"):
        if path.parent.name == "recipe":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        called = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and id(node) not in called:
                names.add(node.attr)
            elif isinstance(node, ast.Constant) and str(node.value).isidentifier():
                names.add(str(node.value))  # a key (getattr, dumps, mappings), not prose
    return names


# Fields read through the recipe package itself (a cross-check or a preset uses them).
READ_IN_SCHEMA = {"preset"}


def test_every_recipe_field_is_read_by_some_code() -> None:
    """Structurally: each field of each recipe model is read outside the schema (an attribute
    access that is not a method call, or a field name in a string such as a dump's
    ``include``). A field nothing reads is accepted and ignored: implement it or remove it."""
    models: set[type[BaseModel]] = set()
    _models(Recipe, models)
    reads = _reads() | READ_IN_SCHEMA
    unread = sorted(
        f"{m.__name__}.{name}" for m in models for name in m.model_fields if name not in reads
    )
    assert unread == []


# ---- rule 4: counts are met exactly -----------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"fit_per_class": 1000}, "data.fit_per_class: 1000 fitting example"),
        ({"eval_per_class": 500}, "data.eval_per_class: 500 evaluation example"),
        ({"fit_per_class": 25, "eval_per_class": 6}, "data.fit_per_class: 25"),
    ],
)
def test_a_count_larger_than_the_data_names_the_field_and_what_is_there(tiny_data, change, named):
    spec = DataSpec(source=str(tiny_data), **{"fit_per_class": 12, "eval_per_class": 6, **change})
    with pytest.raises(NleditError, match=named) as err:
        load_concept_data(spec, 2, 0)
    assert "hold" in str(err.value) and "ask for at most" in str(err.value)
    small = DataSpec(source=str(tiny_data), fit_per_class=12, eval_per_class=6)
    data = load_concept_data(small, 2, 0)
    assert len(data.fit) == 12 * 4 and len(data.eval) == 6 * 4  # the counts asked, exactly
    with pytest.raises(NleditError, match=r"prompt.shots: 50 shot example"):
        load_concept_data(small.updated(fit_per_class=2), 200, 0)
    with pytest.raises(NleditError, match=r"tune.val_per_class: 90 validation"):
        load_concept_data(small, 2, 0, val_per_class=90)


def test_more_perplexity_windows_than_the_text_holds_is_an_error() -> None:
    tok = make_tokenizer()
    text = " ".join(["the match goal"] * 40)  # 120 tokens
    assert windows(tok, text, 16, 7, count_field="eval.perplexity_windows").shape == (7, 16)
    with pytest.raises(NleditError, match=r"eval.perplexity_windows: 500 windows of 16 tokens"):
        windows(tok, text, 16, 500, count_field="eval.perplexity_windows")


# ---- rule 4: export never refits -------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        "edits.0.tau",
        "edits.0.top_p",
        "edits.0.operator",
        "data.fit_per_class",
        "prompt.shots",
        "seed",
        "model.task",
    ],
)
def test_export_refuses_overrides_of_what_defines_the_gates(tiny_models, tiny_data, key) -> None:
    from nledit.recipe import set_dotted

    d = recipe_dict(tiny_models["llama"], tiny_data)
    values = {"edits.0.operator": "dampen", "model.task": "causal-lm", "seed": 3}
    changed = json.loads(json.dumps(d))
    set_dotted(changed, key, values.get(key, 0.5 if "edits" in key else 3))
    with pytest.raises(RefitError, match=key.replace(".", r"\.")):
        refuse_refit(parse_recipe(d), parse_recipe(changed))
    allowed = json.loads(json.dumps(d))
    set_dotted(allowed, "eval.perplexity_windows", 2)
    set_dotted(allowed, "output.dir", "elsewhere")
    refuse_refit(parse_recipe(d), parse_recipe(allowed))


def test_export_with_a_gate_override_exits_2_and_writes_nothing(trusted_folders, tmp_path, capsys):
    fit = trusted_folders["fit"]
    for flag in (["--set", "edits.0.tau=0.5"], ["--seed", "7"]):
        argv = ["export", str(fit), "--out", str(tmp_path / "x"), "--no-eval", *flag]
        assert main(argv) == 2
        assert "define(s) the fitted gates" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


# ---- rule 4: texts with nothing to read, prompts past the context, label words -------------


@pytest.mark.parametrize("text", INVISIBLE)
def test_texts_of_invisible_characters_are_refused_naming_file_and_line(tmp_path, text) -> None:
    assert blank(text)
    rows = [{"text": f"the match goal {i}", "label": i % 2} for i in range(12)]
    rows[4]["text"] = text
    path = tmp_path / "d.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    (tmp_path / "labels.json").write_text('["a", "b"]')
    with pytest.raises(NleditError, match=rf"{path}, line 5: empty or non-text 'text'"):
        load_concept_data(DataSpec(source=str(path), fit_per_class=2, eval_per_class=1), 0, 0)


def test_blank_is_about_visibility_not_about_words() -> None:
    for text in ("a", "\u200bx", "é", "e\u0301", "日本", "😀", "-", "\u00a0.\u00a0"):
        assert not blank(text), text


@pytest.mark.parametrize("text", INVISIBLE[:4])
def test_invisible_texts_are_refused_wherever_a_text_is_read(llama, tiny_data, text) -> None:
    model, tok = llama
    with pytest.raises(EditError, match=r"data\[0\]: the text is empty"):
        nledit.fit(model, tok, [(text, "Sports"), *_pairs(tiny_data)], [EDIT])
    d = recipe_dict(Path("m"), tiny_data)
    for key in ("data.label_names", "prompt.label_words", "eval.generate_prompts"):
        from nledit.recipe import RecipeError, set_dotted

        bad = json.loads(json.dumps(d))
        set_dotted(bad, key, [text, " b", " c", " d"])
        with pytest.raises(RecipeError, match=rf"{key}.0: .* has no visible character"):
            parse_recipe(bad)
    bad = json.loads(json.dumps(d))
    bad["prompt"]["demonstrations"] = [{"text": text, "label": 0}]
    with pytest.raises(RecipeError, match=r"prompt.demonstrations.0"):
        parse_recipe(bad)


def test_a_prompt_past_the_context_length_is_refused(llama, tiny_data) -> None:
    model, tok = llama
    long = " ".join(["match goal coach"] * 300)  # ~900 tokens > 512 positions
    with pytest.raises(ContextError, match="past the model's context length of 512"):
        nledit.fit(model, tok, _pairs(tiny_data), [EDIT], {"instruction": long})
    edit = nledit.fit(model, tok, _pairs(tiny_data), [EDIT])
    with pytest.raises(ContextError, match="--max-new-tokens"):
        nledit.generate(model, tok, edit, [long])
    dec = nledit.Decoding(max_new_tokens=500)
    with pytest.raises(ContextError, match="with 500 new tokens"):
        nledit.generate(model, tok, edit, ["the match goal " * 10], decoding=dec)


@pytest.mark.parametrize(
    ("words", "named"),
    [
        (["  Sports", " World"], r"label_words.0: the first token of '  Sports' is ' '"),
        ([" World", "\tWorld"], r"label_words.1"),
        ([" Sports", " Sports"], "share a first token"),
    ],
)
def test_a_label_word_must_start_with_a_token_of_its_own(words, named) -> None:
    tok = make_tokenizer("bpe")
    if named is None:  # distinct first tokens or shared: either scored apart or refused
        try:
            first = label_tokens(tok, words)
        except LabelWordError as err:
            assert "share a first token" in str(err)
        else:
            assert len(set(first)) == len(first)
        return
    with pytest.raises(LabelWordError, match=named):
        label_tokens(tok, words)


def test_api_labels_of_the_right_kinds_are_read_as_given() -> None:
    import numpy as np

    from nledit.data.api_inputs import examples

    ex, names = examples([("a b", np.int64(1)), ("c", 0), ("d", 1)])
    assert names == ["0", "1"] and ex.labels == [1, 0, 1] and type(ex.labels[0]) is int
    ex, names = examples([("a", "y"), ("b", "x")])
    assert names == ["x", "y"] and ex.labels == [1, 0]
    ex, names = examples([("a", "y"), ("b", 0)], ["x", "y"])  # names given: both kinds mean one
    assert ex.labels == [1, 0]
