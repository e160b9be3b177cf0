"""What `nledit check` says about the data without a model: the drawn demonstrations per class
(and classes with none), and a rough time estimate calibrated on a measured throughput."""

from __future__ import annotations

from typing import Any

from .prompting import demo_text
from .recipe import Recipe

# Measured once: SmolLM2-135M-Instruct, fp32, a forward pass over batches of 8 prompts of
# ~100 query tokens after a cached 311-token head, torch.set_num_threads(1), on one core of the
# 2-core x86-64 machine the reference reproduction ran on (docs/reference_protocol.md).
TOKENS_PER_S = 1300.0
BASIS_PARAMS = 135e6
CHARS_PER_TOKEN = 4.5
BASIS = (
    "{rate:,.0f} tokens/s measured for a 135M-parameter fp32 model on one thread, scaled by "
    "parameter count; every condition counted as a full pass"
)


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


def estimate_seconds(recipe: Recipe, data: Any, n_params: int | None) -> tuple[float, str] | None:
    """Rough seconds for fit + evaluation + perplexity, and the basis of the estimate."""
    if not n_params:
        return None
    rate = TOKENS_PER_S * BASIS_PARAMS / n_params
    if recipe.threads is None:
        rate /= 2  # torch's default threading on a shared machine measured slower

    def tokens(texts: list[str]) -> float:
        return sum(len(t) for t in texts) / CHARS_PER_TOKEN + 8 * len(texts)

    n_cond = 1 + 2 * sum(len(e.concepts) for e in recipe.edits)
    total = tokens(data.fit.texts) + tokens(data.eval.texts) * n_cond
    if recipe.data.fit_curate or recipe.data.eval_curate:
        total += tokens(data.fit.texts) + tokens(data.eval.texts)
    ev = recipe.eval
    if ev.enabled and ev.perplexity_source:
        total += ev.perplexity_windows * ev.perplexity_window * n_cond
    return total / rate, BASIS.format(rate=rate)
