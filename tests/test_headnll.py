"""The blocked per-token NLL equals the log-softmax of the full logits, and perplexity through
the deferred head equals perplexity from the model's own logits on every decoder family."""

from __future__ import annotations

import copy

import pytest
import torch
import yaml
from conftest import DECODERS, recipe_dict
from transformers import AutoModelForCausalLM

from nledit.data.text import windows
from nledit.evaluation.erasure import conditions_for, run_conditions
from nledit.evaluation.headnll import DeferredHead, blocked_nll, direct_head, token_nll
from nledit.evaluation.localhead import Firing, window_nll
from nledit.evaluation.perplexity import as_generated, perplexity
from nledit.fitting.recipe_fit import fit
from nledit.recipe import parse_recipe

TEXT = " ".join(["the match of the season in the league after the coach says"] * 40)


@pytest.mark.parametrize("rows, columns", [(3, 7), (5, 50), (1024, 2048), (1, 1), (11, 49)])
@pytest.mark.parametrize("bias", [False, True])
def test_blocked_nll_equals_log_softmax(rows: int, columns: int, bias: bool) -> None:
    g = torch.Generator().manual_seed(0)
    x, w = torch.randn(11, 8, generator=g) * 3, torch.randn(49, 8, generator=g)
    b = torch.randn(49, generator=g) if bias else None
    # every block edge: first and last entries of the vocabulary and of each block
    targets = torch.tensor([0, 48, 6, 7, 13, 14, 20, 21, 49 - 1, 5, 1])
    want = token_nll(torch.nn.functional.linear(x, w, b), targets)
    got = blocked_nll(x, w, b, targets, rows=rows, columns=columns)
    assert got.shape == want.shape
    assert (got - want).abs().max().item() <= 1e-5


def test_blocked_nll_is_stable_for_large_logits() -> None:
    x = torch.tensor([[100.0, -50.0], [0.0, 0.0]])
    w = torch.tensor([[10.0, 0.0], [0.0, 10.0], [-10.0, 1.0]])
    targets = torch.tensor([2, 1])
    want = token_nll(x @ w.T, targets)
    got = blocked_nll(x, w, None, targets, rows=1, columns=1)
    assert torch.isfinite(got).all()
    assert torch.allclose(got, want, rtol=1e-6, atol=1e-4)


@pytest.mark.parametrize("family", DECODERS)
def test_direct_head_checks_the_model(tiny_models, family: str) -> None:
    model = AutoModelForCausalLM.from_pretrained(tiny_models[family]).eval()
    assert direct_head(model)
    with DeferredHead(model):  # the placeholder is in place only inside the context
        assert model(input_ids=torch.zeros((1, 3), dtype=torch.long)).logits.shape[-1] == 1
    assert model(input_ids=torch.zeros((1, 3), dtype=torch.long)).logits.shape[-1] > 1


def test_direct_head_refuses_a_logit_cap(tiny_models) -> None:
    model = AutoModelForCausalLM.from_pretrained(tiny_models["gemma3"]).eval()
    capped = copy.deepcopy(model)
    capped.config.final_logit_softcapping = 0.5  # the logits are no longer the projection
    assert direct_head(model) and not direct_head(capped)


@pytest.mark.parametrize("family", DECODERS)
def test_deferred_window_nll_equals_logits(tiny_models, tiny_data, family: str) -> None:
    d = recipe_dict(tiny_models[family], tiny_data, layer="last", operator="zero")
    fitted = fit(parse_recipe(d), yaml.safe_dump(d))
    conds = conditions_for(fitted.edit)
    ids = windows(fitted.cm.tokenizer, TEXT, 32, 4)
    batches = [({"input_ids": ids[i : i + 2], "use_cache": False}, ids[i : i + 2]) for i in (0, 2)]
    model, layout = fitted.model, fitted.layout
    assert direct_head(model)

    def run(deferred: DeferredHead | None, local: bool):
        per_token = window_nll(deferred)
        firing = Firing()
        with as_generated([g for c in conds for g in c.gates]):
            return run_conditions(
                model,
                layout,
                batches,
                conds,
                lambda res, x: per_token.tokens(res, x).sum(-1, dtype=torch.float64),
                local=per_token if local else None,
                firing=firing,
            ), firing

    full, _ = run(None, False)
    for local in (False, True):
        with DeferredHead(model) as deferred:
            part, firing = run(deferred, local)
        assert bool(firing.seen) == local
        for key in full:
            assert (full[key] - part[key]).abs().max().item() <= 1e-5, (key, local)
    # the public entry point takes the same path and gives the same perplexities
    text = " ".join([TEXT] * 2)
    fast = perplexity(model, layout, fitted.cm.tokenizer, text, conds, 32, 4, 2)
    slow = perplexity(model, layout, fitted.cm.tokenizer, text, conds, 32, 4, 2, fast=False)
    for key in fast:
        assert fast[key] == pytest.approx(slow[key], rel=1e-5)


def test_deferred_head_restores_a_wrapped_forward(tiny_models) -> None:
    model = AutoModelForCausalLM.from_pretrained(tiny_models["llama"]).eval()
    head = model.get_output_embeddings()
    calls = []

    def wrapped(x: torch.Tensor) -> torch.Tensor:  # as a dispatching library installs one
        calls.append(1)
        return torch.nn.Linear.forward(head, x)

    head.forward = wrapped
    with DeferredHead(model):
        model(input_ids=torch.ones((1, 3), dtype=torch.long))
    assert not calls
    model(input_ids=torch.ones((1, 3), dtype=torch.long))
    assert calls and head.forward is wrapped
