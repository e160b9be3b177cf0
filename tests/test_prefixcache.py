"""A batch started from an expanded prompt-head cache equals one started from a deep copy."""

from __future__ import annotations

import copy

import pytest
import torch
from conftest import DECODERS
from transformers import AutoModelForCausalLM

from nledit.models.prefixcache import batch_cache


@pytest.mark.parametrize("family", DECODERS)
def test_expanded_prefix_equals_copied_prefix(tiny_models, family: str) -> None:
    model = AutoModelForCausalLM.from_pretrained(tiny_models[family]).eval()
    head = torch.tensor([[2, 7, 9, 11, 13, 5, 8, 21, 4, 6, 10, 12, 14, 15, 16, 17, 18, 19, 20]])
    with torch.no_grad():
        prefix = model(input_ids=head, use_cache=True).past_key_values
        before = [(x.keys.clone(), x.values.clone()) for x in prefix.layers]
        ids = torch.tensor([[30, 31, 32, 0], [33, 34, 35, 36], [37, 38, 0, 0]])
        mask = torch.cat([torch.ones(3, head.shape[1], dtype=torch.long), (ids > 0).long()], 1)
        copied = copy.deepcopy(prefix)
        copied.batch_repeat_interleave(3)
        runs = []
        for cache in (copied, batch_cache(prefix, 3), batch_cache(prefix, 3)):
            out = model(input_ids=ids, attention_mask=mask, past_key_values=cache, use_cache=True)
            runs.append(out.logits)
    assert torch.equal(runs[0], runs[1]) and torch.equal(runs[1], runs[2])
    for (k, v), layer in zip(before, prefix.layers):  # the shared head is left as it was
        assert torch.equal(k, layer.keys) and torch.equal(v, layer.values)
