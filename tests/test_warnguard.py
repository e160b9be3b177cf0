"""The deprecation guard: nledit's deprecated calls fail, third-party internals pass."""

from __future__ import annotations

import warnings

import pytest
import torch
from warnguard import PACKAGE, DeprecatedCall


class _Deprecating(torch.nn.Module):
    def forward(self, x: torch.Tensor, old: bool = False) -> torch.Tensor:
        if old:
            warnings.warn("`old` is deprecated", FutureWarning, stacklevel=2)
        return x


def _call_as(path: str, module: torch.nn.Module) -> None:
    """Call ``module(x, old=True)`` from code whose file is ``path``."""
    code = compile("module(torch.zeros(1), old=True)\n", path, "exec")
    exec(code, {"module": module, "torch": torch})


def test_deprecated_argument_passed_by_nledit_fails() -> None:
    with pytest.raises(DeprecatedCall, match="deprecated"):
        _call_as(str(PACKAGE / "concept.py"), _Deprecating())


def test_deprecated_argument_passed_by_other_code_only_warns() -> None:
    with pytest.warns(FutureWarning):
        _call_as("/elsewhere/thirdparty.py", _Deprecating())


def test_prefix_cached_passes_raise_no_deprecation(tiny_models, tiny_data) -> None:
    from conftest import recipe_dict

    from nledit.evaluation.suite import erasure_table
    from nledit.fitting.recipe_fit import fit
    from nledit.pipeline import eval_inputs
    from nledit.recipe import parse_recipe

    recipe = parse_recipe(recipe_dict(tiny_models["llama"], tiny_data), "recipe")
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        warnings.simplefilter("error", DeprecationWarning)
        fitted = fit(recipe, "")
        assert fitted.cm.use_prefix_cache
        erasure_table(fitted.edit, fitted.cm, eval_inputs(fitted), fitted.recipe.eval)


def test_guard_catches_the_real_cache_deprecation(tiny_models) -> None:
    from transformers import AutoModelForCausalLM, DynamicCache

    from nledit.models.compat import cache_kwarg

    model = AutoModelForCausalLM.from_pretrained(tiny_models["llama"])
    if cache_kwarg(model) != "cache":
        pytest.skip("this transformers still takes past_key_values without deprecation")
    code = compile(
        "model(input_ids=ids, past_key_values=DynamicCache(config=model.config), use_cache=True)\n",
        str(PACKAGE / "collect.py"),
        "exec",
    )
    scope = {"model": model, "ids": torch.tensor([[5, 6]]), "DynamicCache": DynamicCache}
    with pytest.raises(DeprecatedCall, match="past_key_values"):
        exec(code, scope)
