"""Outputs computed only where a last-block edit acts equal the full computation."""

from __future__ import annotations

import copy

import pytest
import torch
import yaml
from conftest import DECODERS, FAMILIES, recipe_dict

from nledit.data.text import windows
from nledit.evaluation.erasure import Condition, conditions_for, label_probs, run_conditions
from nledit.evaluation.localhead import Firing, window_nll
from nledit.evaluation.perplexity import _nll, as_generated
from nledit.fitting.recipe_fit import fit
from nledit.recipe import parse_recipe

TEXT = " ".join(["the match of the season in the league after the coach says"] * 40)


def _fitted(tiny_models, tiny_data, family: str, **edit):
    d = recipe_dict(tiny_models[family], tiny_data, layer="last", **edit)
    return fit(parse_recipe(d), yaml.safe_dump(d))


def _half_gate(cond: Condition) -> Condition:
    """A copy of ``cond``'s gate whose range is ``x <= 0`` on its first neuron only: it fires
    on part of the positions whatever the fitted ranges."""
    gate = copy.deepcopy(cond.gates[0])
    gate.lo = torch.full_like(gate.lo, torch.inf)
    gate.hi = torch.full_like(gate.hi, -torch.inf)
    gate.lo[0], gate.hi[0] = -torch.inf, 0.0
    return Condition(cond.method, cond.concept, [gate], "half")


@pytest.mark.parametrize("family", DECODERS)
def test_window_nll_local_equals_full(tiny_models, tiny_data, family: str) -> None:
    fitted = _fitted(tiny_models, tiny_data, family, operator="zero")
    conds = conditions_for(fitted.edit)
    conds.append(_half_gate(conds[1]))
    ids = windows(fitted.cm.tokenizer, TEXT, 32, 4)

    def run(local):
        firing = Firing()
        batches = [
            ({"input_ids": ids[i : i + 2], "use_cache": False}, ids[i : i + 2]) for i in (0, 2)
        ]
        with as_generated([g for c in conds for g in c.gates]):
            out = run_conditions(
                fitted.model, fitted.layout, batches, conds, _nll, local=local, firing=firing
            )
        return out, firing

    full, _ = run(None)
    part, firing = run(window_nll())
    assert full.keys() == part.keys()
    for key in full:
        assert (full[key] - part[key]).abs().max().item() <= 1e-5, key
    edited = [c.key for c in conds if c.concept is not None]
    assert set(firing.seen) == set(edited)  # every condition took the local path
    rates = [firing.rate(k) for k in edited]
    assert all(0.0 <= r <= 1.0 for r in rates)
    # not vacuous: some edit changes a strict subset of positions, and the values move
    assert any(0.0 < r < 1.0 for r in rates), rates
    assert any((part[k] - part["base"]).abs().max().item() > 1e-6 for k in edited)


@pytest.mark.parametrize("family", FAMILIES)
def test_label_probs_local_equal_full(tiny_models, tiny_data, family: str) -> None:
    fitted = _fitted(tiny_models, tiny_data, family, positions="all")
    conds = conditions_for(fitted.edit)
    texts = fitted.data.eval.texts
    full = label_probs(fitted.cm, texts, conds, 4, local=False)
    firing = Firing()
    part = label_probs(fitted.cm, texts, conds, 4, local=True, firing=firing)
    for key in full:
        assert (full[key] - part[key]).abs().max().item() <= 1e-5, key
    assert any((part[k] - part["base"]).abs().max().item() > 1e-6 for k in part if k != "base")
    assert bool(firing.seen) == fitted.cm.is_lm


def test_firing_counts() -> None:
    firing = Firing()
    firing.add("a", torch.tensor([[True, False], [False, False]]))
    firing.add("a", torch.tensor([[True, True]]))
    assert firing.rate("a") == pytest.approx(3 / 6)
    assert firing.rate("missing") == 0.0
