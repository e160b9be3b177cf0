"""A prompt head's key/value cache, shared by every row of a batch without copying it.

``DynamicCache`` layers never write into their tensors: each forward pass concatenates the new
keys and values onto the cached ones into fresh tensors. So a batch can start from the head's
single-row tensors expanded along the batch dimension (a view), instead of a deep copy repeated
row by row. Other cache types fall back to that copy.
"""

from __future__ import annotations

import copy
from typing import Any

from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer, DynamicSlidingWindowLayer

_VIEWABLE = (DynamicLayer, DynamicSlidingWindowLayer)


def batch_cache(prefix: Any, rows: int) -> Any:
    """A cache for ``rows`` rows that all start from the one-row cache ``prefix`` (which stays
    untouched)."""
    layers = getattr(prefix, "layers", None)
    viewable = bool(layers) and all(type(x) in _VIEWABLE for x in layers)
    if type(prefix) is not DynamicCache or not viewable:
        cache = copy.deepcopy(prefix)
        cache.batch_repeat_interleave(rows)
        return cache
    cache = copy.copy(prefix)
    cache.layers = [_expanded(layer, rows) for layer in layers]
    return cache


def _expanded(layer: Any, rows: int) -> Any:
    out = copy.copy(layer)
    keys = getattr(layer, "keys", None)
    if getattr(layer, "is_initialized", False) and keys is not None and keys.numel():
        out.keys = keys.expand(rows, *keys.shape[1:])
        out.values = layer.values.expand(rows, *layer.values.shape[1:])
    return out
