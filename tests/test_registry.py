"""The operator and saliency registries agree with the code that runs them."""

from __future__ import annotations

import typing

import pytest
import torch

from nledit import recipe
from nledit.fitting import saliency
from nledit.fitting import saliency_registry as saliencies
from nledit.runtime import gate, operators
from nledit.runtime.operators import OPERATORS

K = 3
BASE = {"alpha": 0.5, "beta": 0.7, "tau": 2.0, "strength": 1.5}


def _gate(op: str, **change: object) -> gate.RangeGate:
    tensors = {
        "index": torch.arange(K),
        "lo": torch.full((K,), -10.0),
        "hi": torch.full((K,), 10.0),
        "mu": torch.tensor([0.1, -0.2, 0.3]),
        "sigma": torch.tensor([0.5, 0.8, 1.1]),
        "value": torch.tensor([0.4, -0.6, 0.9]),
        # the LEACE eraser, rank one: h - L R (h - value)
        "proj_left": torch.tensor([[0.3], [-0.5], [0.8]]),
        "proj_right": torch.tensor([[0.6, 0.2, -0.4]]),
    }
    params = dict(BASE)
    for key, v in change.items():
        if key in tensors:
            tensors[key] = tensors[key] + float(v)  # type: ignore[arg-type]
        else:
            params[key] = v
    spec = {"name": "t", "layer": 0, "operator": op, "mode": "neuron", "k": K, "params": params}
    return gate.RangeGate(spec, tensors)


def _reads(op: str, what: str) -> bool:
    """Whether phi's output changes when ``what`` (a parameter or tensor) changes."""
    x = torch.tensor([[0.7, -1.3, 2.1]])
    return not torch.allclose(_gate(op).phi(x), _gate(op, **{what: 0.37}).phi(x))


def test_registry_is_the_run_time_operator_classes() -> None:
    assert OPERATORS is gate.OPERATOR_CLASSES
    assert all(issubclass(op, gate.Operator) and op.name == name for name, op in OPERATORS.items())
    assert operators.tuned_params() == ("alpha", "beta")


@pytest.mark.parametrize("op", list(OPERATORS))
def test_registry_says_what_each_operator_reads(op: str) -> None:
    entry = OPERATORS[op]
    for param in BASE:
        assert _reads(op, param) == (param in entry.params), f"{op} and parameter {param}"
    assert _reads(op, "value") == (entry.value != "none"), f"{op} and its value vector"
    for t in ("mu", "sigma"):
        assert _reads(op, t) == entry.mu_sigma, f"{op} and {t}"


def test_registry_params_are_known_to_the_recipe() -> None:
    for op in OPERATORS.values():
        if op.in_recipe:  # its section takes exactly its parameters and options
            fields = set(recipe.section_model(op.name).model_fields) - {"name"}
            assert fields == set(operators.recipe_options(op.name)), op.name
        for name in op.tuned:  # each tuned parameter has a search interval
            assert name in recipe.SearchSpace.model_fields, (op.name, name)


def test_operator_defaults_and_bounds_come_from_the_classes() -> None:
    """The recipe's operator section and tuner space are generated from the classes."""
    for op in OPERATORS.values():
        if not op.in_recipe:
            continue
        fields = recipe.section_model(op.name).model_fields
        for name, declared in op.params.items():
            if not declared.edit_field:
                assert fields[name].default == declared.default, (op.name, name)
                assert recipe.operator_section(op.name).param(name) == declared.default
    for name in operators.tuned_params():
        declared = operators.param_spec(name)
        assert recipe.SearchSpace.model_fields[name].default == list(declared.search or ()), name
        low = (declared.ge if declared.ge is not None else 0.0) - 1.0
        space = recipe.SearchSpace.model_validate({name: [low, low + 2.0]})
        assert any(p.startswith(f"tune.space.{name}:") for p in space.problems()), name
    tau = recipe.EditSpec.model_fields["tau"]
    assert tau.default == gate.TAU.default == operators.param_spec("tau").default


def test_recipe_reads_the_registries() -> None:
    edit = {"concepts": ["a"]}
    for name in operators.names(in_recipe=True):
        assert recipe.EditSpec.model_validate({**edit, "operator": name}).operator.name == name
    with pytest.raises(ValueError, match="Input should be"):
        recipe.EditSpec.model_validate({**edit, "operator": "ablate"})
    space = {"operators": list(operators.names(in_recipe=True, tunable=True))}
    assert recipe.SearchSpace.model_validate(space).operators == space["operators"]
    with pytest.raises(ValueError, match="Input should be"):
        recipe.SearchSpace.model_validate({"operators": ["steer"]})
    assert typing.get_args(recipe.Saliency) == saliencies.names()
    with pytest.raises(recipe.RecipeError, match=r"operator\.name: Input should be"):
        recipe.parse_recipe(
            {
                "model": {"id": "m"},
                "data": {"source": "d.jsonl"},
                "edits": [{"concepts": ["a"], "operator": "ablate"}],
            }
        )


def test_every_saliency_method_has_a_scorer() -> None:
    assert list(saliency.SCORERS) == list(saliencies.SALIENCIES)


@pytest.mark.parametrize(("p", "d", "k"), [(0.3, 384, 115), (0.3, 10, 3), (1e-6, 10, 1), (1, 7, 7)])
def test_one_top_p_rule(p: float, d: int, k: int) -> None:
    from nledit.analysis.stats import top_count

    assert saliencies.top_count(p, d) == k
    assert top_count(p, d) == k
    assert saliency.top_fraction(torch.arange(d, dtype=torch.float64), p).numel() == k
