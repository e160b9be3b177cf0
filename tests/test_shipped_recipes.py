"""Every shipped recipe passes ``nledit check``, and together they show every method."""

from __future__ import annotations

from pathlib import Path

import pytest

from nledit.fitting import saliency_registry as saliencies
from nledit.plan import make_plan
from nledit.recipe import load_recipe
from nledit.runtime import operators

ROOT = Path(__file__).resolve().parents[1]
RECIPES = sorted((ROOT / "recipes").rglob("*.yaml"))


def _allowed(problem: str) -> bool:
    """Problems a fresh checkout may have: a model ``nledit train-head`` makes, or data kept
    outside the repository (``../``) that this machine lacks."""
    return "train it first" in problem or "no such file: ../" in problem


@pytest.mark.parametrize("path", RECIPES, ids=[str(p.relative_to(ROOT)) for p in RECIPES])
def test_shipped_recipe_passes_check(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)  # recipes name their files from the repository root
    recipe, _ = load_recipe(path)
    plan = make_plan(recipe)
    assert [p for p in plan.problems if not _allowed(p)] == [], plan.render()
    assert len(plan.edits) == len(recipe.edits)


def test_every_saliency_method_and_operator_has_a_shipped_recipe() -> None:
    used_saliency, used_operator = set(), set()
    for path in RECIPES:
        for edit in load_recipe(path)[0].edits:
            used_saliency.add(edit.saliency)
            used_operator.add(edit.operator.name)
    assert set(saliencies.names()) - used_saliency == set()
    assert set(operators.names(in_recipe=True)) - used_operator == set()
