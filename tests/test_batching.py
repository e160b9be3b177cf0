"""``batch_size: auto``: parsed, resolved from the model's size and free memory, shown by
``nledit check``; explicit sizes unchanged."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from conftest import recipe_dict
from test_cli import cli

from nledit.errors import NleditError
from nledit.fitting.recipe_fit import fit
from nledit.models.batching import LARGEST, TOKENS, auto_batch_size, row_tokens
from nledit.recipe import parse_recipe

GIB = 2**30


def _recipe(tiny_models, tiny_data, **top):
    d = recipe_dict(tiny_models["llama"], tiny_data)
    d.update(top)
    return d


def test_auto_and_integers_parse(tiny_models, tiny_data) -> None:
    assert parse_recipe(_recipe(tiny_models, tiny_data, batch_size="auto")).batch_size == "auto"
    assert parse_recipe(_recipe(tiny_models, tiny_data, batch_size=3)).batch_size == 3
    d = _recipe(tiny_models, tiny_data)
    del d["batch_size"]
    assert parse_recipe(d).batch_size == 8  # the default


@pytest.mark.parametrize("bad", [0, -2, "big", 2.5, True, None, [4]])
def test_other_values_name_the_field(tiny_models, tiny_data, bad) -> None:
    with pytest.raises(NleditError, match=r"batch_size: Input should be .*,? or auto") as err:
        parse_recipe(_recipe(tiny_models, tiny_data, batch_size=bad))
    assert "constrained-int" not in str(err.value)  # one message, not one per alternative


def test_auto_aims_at_a_token_budget_and_fits_memory(tiny_models, tiny_data) -> None:
    recipe = parse_recipe(_recipe(tiny_models, tiny_data, batch_size="auto"))
    fed, context = row_tokens(recipe)
    assert fed >= recipe.data.max_length and context >= fed
    shape = (30, 576, 135_000_000)
    roomy = auto_batch_size(recipe, *shape, free=64 * GIB)
    assert roomy.size == min(max(TOKENS // fed, 1), LARGEST)
    assert auto_batch_size(recipe, *shape, free=None).size == roomy.size
    # little memory beside the weights: fewer rows, never fewer than one
    tight = auto_batch_size(recipe, *shape, free=int(135e6 * 4 + 0.01 * GIB))
    assert 1 <= tight.size < roomy.size
    assert auto_batch_size(recipe, *shape, free=0).size == 1
    # a large model holds more per row: never more rows than a small one in the same memory
    big = auto_batch_size(recipe, 32, 4096, 7_000_000_000, free=40 * GIB)
    assert big.size <= auto_batch_size(recipe, *shape, free=40 * GIB).size
    assert "auto = " in roomy.describe()


def test_fit_resolves_auto_on_its_own_copy(tiny_models, tiny_data) -> None:
    d = _recipe(tiny_models, tiny_data, batch_size="auto")
    d["eval"] = {"enabled": False}
    recipe = parse_recipe(d)
    fitted = fit(recipe, yaml.safe_dump(d))
    size = fitted.recipe.batch_size
    assert isinstance(size, int) and 1 <= size <= LARGEST
    assert recipe.batch_size == "auto"  # the caller's recipe is not changed


def test_check_shows_the_resolved_size(tmp_path: Path, tiny_models, tiny_data, make_recipe, capsys):
    extra = {"output.dir": str(tmp_path / "o"), "batch_size": "auto"}
    code, out, _ = cli(["check", str(make_recipe(tiny_models["llama"], tiny_data, extra))], capsys)
    assert code == 0
    line = next(x for x in out.splitlines() if x.startswith("batch"))
    assert "auto = " in line and "tokens a row" in line
    code, out, _ = cli(["check", str(make_recipe(tiny_models["llama"], tiny_data))], capsys)
    assert code == 0 and not any(x.startswith("batch") for x in out.splitlines())


def test_the_flag_takes_auto(tmp_path: Path, tiny_models, tiny_data, make_recipe, capsys) -> None:
    recipe = str(make_recipe(tiny_models["llama"], tiny_data, {"output.dir": str(tmp_path / "o")}))
    code, out, _ = cli(["check", recipe, "--batch-size", "auto"], capsys)
    assert code == 0 and any(x.startswith("batch     auto = ") for x in out.splitlines())
    with pytest.raises(SystemExit) as exit_:
        cli(["check", recipe, "--batch-size", "many"], capsys)
    assert exit_.value.code == 2 and "--batch-size" in capsys.readouterr().err
