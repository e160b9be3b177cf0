"""Token-level concepts (App. K): examples cut from running text right before a class word."""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import pytest
import torch
import yaml
from conftest import COMMON, TOPIC_WORDS

from nledit import pipeline
from nledit.data.dataset import load_concept_data
from nledit.data.tokens import UNIT, scan
from nledit.fitting.recipe_fit import load_for_recipe
from nledit.recipe import RecipeError, parse_recipe

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[1]
PRONOUNS = {"he": ["he"], "she": ["she"], "they": ["they"]}
TINY_CLASSES = {"sport": ["match", "goal"], "money": ["shares"], "tech": ["software"]}


def running_text(n_words: int = 4000, seed: int = 0) -> str:
    """Random words from the tiny vocabulary, as lines of running text."""
    rng = random.Random(seed)
    words = COMMON.split() + " ".join(TOPIC_WORDS.values()).split()
    lines, line = [], []
    for _ in range(n_words):
        line.append(rng.choice(words))
        if len(line) >= rng.randint(8, 30):
            lines.append(" ".join(line))
            line = []
    return "\n".join([*lines, " ".join(line)]) + "\n"


def check_example(text, ex, classes, label_words, window) -> None:
    """The context is the text right before the target, which is a word of the labelled class."""
    word = label_words[ex.label]
    gap = word[: len(word) - len(word.lstrip())]
    assert text[ex.start : ex.cut] == ex.context
    assert text[ex.cut : ex.cut + len(gap)] == gap  # the target token carries its whitespace
    target = text[ex.cut + len(gap) : ex.end]
    assert target in list(classes.values())[ex.label]
    assert ex.end == len(text) or not text[ex.end].isalnum()  # a whole word
    assert ex.context == ex.context.strip()  # starts at a unit, ends right before the gap
    assert len(UNIT.findall(ex.context)) == window


def found_as(text: str, found) -> list[tuple[str, str, int]]:
    return [(e.context, text[e.cut : e.end], e.label) for e in found]


def test_scan_cuts_right_before_the_target() -> None:
    text = (
        "one two three four he said so . Then she went home and they left ( he came ) "
        "He smiled ; then(he) and .he stop\nhe new line she she"
    )
    found = scan(text, PRONOUNS, window=3)
    # "He" (case), "then" (not a whole word), "(he", ".he" and "\nhe" (no single space in
    # front) never count; "( he" overlaps the " they" example and "she she" overlaps itself
    assert found_as(text, found) == [
        ("two three four", " he", 0),
        ("so . Then", " she", 1),
        ("went home and", " they", 2),
        ("he new line", " she", 1),
    ]
    for e in found:
        check_example(text, e, PRONOUNS, [" he", " she", " they"], 3)
    spans = sorted((e.start, e.end) for e in found)
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans))  # no shared text


def test_rarer_class_wins_overlaps() -> None:
    text = "a b c d he went . she said ( x ) they ran and then he"
    # " she" (rarest, with " they") takes "d he went . she"; both "he"s overlap a rarer span
    assert found_as(text, scan(text, PRONOUNS, window=4)) == [
        ("d he went .", " she", 1),
        ("said ( x )", " they", 2),
    ]
    text = "w1 w2 w3 he w4 she w5 he w6 he w7 he"
    found = scan(text, PRONOUNS, window=2)
    assert found_as(text, found) == [("he w4", " she", 1), ("he w6", " he", 0)]
    for e in found:
        check_example(text, e, PRONOUNS, [" he", " she", " they"], 2)


def test_label_word_form_selects_the_spacing() -> None:
    prose = "It ended. Did it end ? Yes it did! Wow . ok"
    classes = {"stop": ["."], "ask": ["?"], "shout": ["!"]}
    attached = scan(prose, classes, [".", "?", "!"], window=2)
    assert found_as(prose, attached) == [("It ended", ".", 0), ("it did", "!", 2)]
    spaced = scan(prose, classes, [" .", " ?", " !"], window=2)
    assert found_as(prose, spaced) == [("it end", " ?", 1), ("! Wow", " .", 0)]


def token_recipe(source: Path, model: Path | str = "m", **data) -> dict:
    return {
        "model": {"id": str(model)},
        "data": {
            "source": str(source),
            "token_classes": TINY_CLASSES,
            "context_words": 6,
            "fit_per_class": 10,
            "eval_per_class": 6,
            "max_length": 32,
            **data,
        },
        "edits": [{"concepts": ["sport", "tech"], "layer": "last", "top_p": 0.25}],
        "eval": {"perplexity_windows": 0},
        "batch_size": 4,
    }


@pytest.fixture(scope="module")
def text_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tokens") / "running.txt"
    path.write_text(running_text())
    return path


def test_recipe_defaults_for_token_concepts(text_file: Path) -> None:
    recipe = parse_recipe(token_recipe(text_file))
    assert recipe.prompt.shots == 0
    assert recipe.prompt.label_words == [" match", " shares", " software"]
    assert recipe.prompt.template == "{text}"
    one = token_recipe(text_file)
    one["data"]["token_classes"] = {"sport": "match", "tech": "chip"}  # one word: a string
    assert parse_recipe(one).data.token_classes == {"sport": ["match"], "tech": ["chip"]}


def test_recipe_errors_for_token_concepts(text_file: Path) -> None:
    d = token_recipe(text_file)
    d["data"]["token_classes"] = {"sport": ["match", "two words"], "money": ["match"], "x": []}
    d["data"]["label_names"] = ["a", "b", "c"]
    d["prompt"] = {"shots": 2, "template": "Q: {text}", "answer_prefix": " A:"}
    d["edits"][0]["concepts"] = ["sports"]
    with pytest.raises(RecipeError) as err:
        parse_recipe(d)
    assert err.value.problems == [
        "data.token_classes.sport: 'two words' is not a single word or punctuation mark",
        "data.token_classes.money: 'match' is also a word of 'sport'",
        "data.token_classes.x: must list at least one word",
        "data.label_names: token concepts are named by the keys of data.token_classes "
        "(['sport', 'money', 'x']); leave label_names out",
        "prompt.shots: token concepts read running text and take no shots; use 0",
        "prompt.answer_prefix: token concepts read running text as it is; leave it empty",
        "prompt.template: token concepts read running text as it is; use '{text}'",
        "edits.0.concepts: 'sports' is not a label; labels are ['a', 'b', 'c']",
    ]
    d = token_recipe(text_file)
    d["data"]["token_classes"] = {"only": ["match"]}
    d["edits"][0]["concepts"] = ["only"]
    d["prompt"] = {"label_words": [" match", " shares"]}
    with pytest.raises(RecipeError) as err:
        parse_recipe(d)
    assert err.value.problems == [
        "data.token_classes: needs at least two classes, got 1",
        "prompt.label_words: 2 words for 1 labels in data.label_names",
    ]


def test_concept_data_from_running_text(text_file: Path) -> None:
    recipe = parse_recipe(token_recipe(text_file))
    data = load_concept_data(recipe.data, recipe.prompt.shots, 0, recipe.prompt.label_words)
    assert data.label_names == ["sport", "money", "tech"]
    assert len(data.shots) == 0
    assert [data.fit.labels.count(c) for c in range(3)] == [10, 10, 10]
    assert [data.eval.labels.count(c) for c in range(3)] == [6, 6, 6]
    assert not set(data.fit.texts) & set(data.eval.texts)
    text = text_file.read_text()
    truth = {e.context: e for e in scan(text, TINY_CLASSES, recipe.prompt.label_words, 6)}
    for ctx, y in zip(data.fit.texts + data.eval.texts, data.fit.labels + data.eval.labels):
        ex = truth[ctx]
        assert ex.label == y
        check_example(text, ex, TINY_CLASSES, recipe.prompt.label_words, 6)
    spans = sorted((truth[t].start, truth[t].end) for t in data.fit.texts + data.eval.texts)
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans))  # no example shares text
    again = load_concept_data(recipe.data, 0, 0, recipe.prompt.label_words)
    assert again.fit.texts == data.fit.texts and again.eval.texts == data.eval.texts
    other = load_concept_data(recipe.data, 0, 1, recipe.prompt.label_words)
    assert other.fit.texts != data.fit.texts


def test_separate_eval_text_and_missing_file(text_file: Path, tmp_path: Path) -> None:
    held = tmp_path / "held.raw"
    held.write_text(running_text(seed=5))
    recipe = parse_recipe(token_recipe(text_file, eval_source=str(held)))
    data = load_concept_data(recipe.data, 0, 0, recipe.prompt.label_words)
    held_contexts = {e.context for e in scan(held.read_text(), TINY_CLASSES, None, 6)}
    assert set(data.eval.texts) <= held_contexts
    assert not set(data.fit.texts) & set(data.eval.texts)
    from nledit.data.dataset import DataError

    bad = parse_recipe(token_recipe(tmp_path / "nope.raw"))
    with pytest.raises(DataError, match=r"data\.source: no such file"):
        load_concept_data(bad.data, 0, 0, None)


def test_tiny_model_reads_the_token_before_the_target(tiny_models, text_file: Path) -> None:
    recipe = parse_recipe(token_recipe(text_file, tiny_models["llama"]))
    _, data, _, cm, _, _ = load_for_recipe(recipe)
    tok = cm.tokenizer
    assert cm.head_ids == [] or cm.head == ""
    for ctx, y in zip(data.eval.texts[:6], data.eval.labels[:6]):
        ids = cm._encode([ctx])[0]
        assert ids == tok(ctx, add_special_tokens=False)["input_ids"]
        word = recipe.prompt.label_words[y]
        # the label word is exactly the next token after the context
        assert tok(ctx + word, add_special_tokens=False)["input_ids"] == [
            *ids,
            int(cm.label_ids[y]),
        ]


def test_tiny_model_token_concept_run(tiny_models, text_file: Path, tmp_path: Path) -> None:
    d = token_recipe(text_file, tiny_models["llama"])
    run = pipeline.run(
        parse_recipe(d), yaml.safe_dump(d), tmp_path / "out", False, log=lambda *_: None
    )
    rows = run.result.rows
    assert {(r.concept, r.method) for r in rows} == {
        (c, m) for c in ("sport", "tech") for m in ("range", "neuron")
    }
    assert all(r.n_target == 6 and r.n_other == 12 for r in rows)
    assert run.fitted.data.label_names == ["sport", "money", "tech"]


def test_shipped_pronoun_recipe() -> None:
    from nledit.cli import main
    from nledit.recipe import load_recipe

    path = ROOT / "recipes" / "pronouns.yaml"
    recipe, _ = load_recipe(path)
    assert recipe.data.token_classes == PRONOUNS
    assert recipe.prompt.label_words == [" he", " she", " they"] and recipe.prompt.shots == 0
    data = load_concept_data(recipe.data, 0, recipe.seed, recipe.prompt.label_words)
    assert [data.fit.labels.count(c) for c in range(3)] == [recipe.data.fit_per_class] * 3
    assert main(["check", str(path)]) in (0, 2)  # 2 only when the SmolLM2 wheel is absent
