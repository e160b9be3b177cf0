"""Fine-tuning a base so it can do the task (`nledit train-head`): a classification head on a
plain encoder (``head.py``), or a causal LM trained to answer with the label word
(``answer.py``, ``lm.py``); their examples (``splits.py``), the optimiser they share
(``optim.py``), and the fine-tuned base a recipe names as its model, cached (``base_cache.py``).

The names below are the package's public surface, resolved lazily so that importing it loads
neither torch nor transformers.
"""

from __future__ import annotations

from ..lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "HeadResult": "head",
    "planned_base": "base_cache",
    "resolved_recipe": "base_cache",
    "train": "base_cache",
    "train_for_command": "base_cache",
    "trained_base": "base_cache",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
