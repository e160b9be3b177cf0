"""The key/value cache under the name the installed transformers uses.

transformers 5.x renamed the ``past_key_values`` argument and output field to ``cache`` and
announced the removal of the old name; older 5.x releases know only the old one. nledit asks
the model which name its ``forward`` takes, so its calls raise no deprecation warning today and
keep working after the removal.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any


@functools.lru_cache(maxsize=64)
def _cache_name(forward_owner: type) -> str:
    params = inspect.signature(forward_owner.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def cache_kwarg(model: Any) -> str:
    """The keyword under which ``model.forward`` takes a key/value cache."""
    return _cache_name(type(model))


def with_cache(model: Any, inputs: dict[str, Any], cache: Any) -> dict[str, Any]:
    """``inputs`` plus ``cache`` under the model's keyword."""
    return {**inputs, cache_kwarg(model): cache}


def returned_cache(output: Any) -> Any:
    """The key/value cache a forward pass returned (``output.cache`` or the older field)."""
    keys = output.keys() if hasattr(output, "keys") else ()
    if "cache" in keys:
        return output["cache"]
    return output["past_key_values"] if "past_key_values" in keys else None
