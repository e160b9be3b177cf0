"""What `nledit check` says about the data without a model: the drawn demonstrations per class
(and classes with none), and a rough time estimate from the throughput measured at the nearest
sizes (``cost_basis``)."""

from __future__ import annotations

from typing import Any

from ..models.cost_basis import estimate
from ..recipe import Recipe
from .prompting import demo_text

CHARS_PER_TOKEN = 3.7  # AG News under the SmolLM2 tokenizer
BASIS = "{rate:,.0f} tokens/s, measured on one thread of a shared 2-core machine, {basis}"


def demonstration_lines(recipe: Recipe, shots: Any, names: list[str]) -> list[str]:
    """One line per class: how many demonstrations it got and the first one as prompted."""
    out = []
    for c, name in enumerate(names):
        texts = [t for t, y in zip(shots.texts, shots.labels) if y == c]
        if texts:
            first = demo_text(texts[0], recipe.prompt)
            shown = first if len(first) <= 60 else first[:57] + "..."
            out.append(f"{name}: {len(texts)} — {shown!r}")
        else:
            out.append(f"{name}: none")
    return out


def demonstration_warnings(shots: Any, names: list[str], is_lm: bool = True) -> list[str]:
    """A warning per class that no demonstration shows (decoder prompts only)."""
    if not is_lm or not len(shots.texts):
        return []
    return [
        f"class {name!r} has no demonstration in the prompt (prompt.shot_sampling: per_class or "
        "prompt.demonstrations can change which classes appear)"
        for c, name in enumerate(names)
        if c not in shots.labels
    ]


def estimate_seconds(
    recipe: Recipe, data: Any, n_params: int | None, n_layers: int | None = None
) -> tuple[float, str] | None:
    """Rough seconds for curation, fit, evaluation and perplexity, and the estimate's basis."""
    cost = estimate(n_params, recipe.model.dtype) if n_params else None
    if cost is None:
        return None
    rate = cost.fit_tokens_per_s

    def tokens(texts: list[str]) -> float:
        return sum(len(t) for t in texts) / CHARS_PER_TOKEN + 8 * len(texts)

    # each gated condition reruns the layers after its edit (the last layer: 1/n of a pass)
    share = 0.0
    for edit in recipe.edits:
        layer = edit.layer if isinstance(edit.layer, int) else -1
        after = -layer if layer < 0 else (n_layers or layer + 1) - layer
        conds = 1 + (1 if "neuron" in recipe.eval.baselines else 0)
        share += len(edit.concepts) * conds * after / (n_layers or max(after, 1))
    fit, ev = tokens(data.fit.texts), tokens(data.eval.texts)
    total = fit + ev * (1 + share)
    if recipe.data.fit_curate or recipe.data.eval_curate:
        total += fit + ev
    spec = recipe.eval
    if spec.enabled and spec.perplexity_source:
        total += spec.perplexity_windows * spec.perplexity_window * (2 + share)  # + firing rates
    return total / rate, BASIS.format(rate=rate, basis=cost.basis)
