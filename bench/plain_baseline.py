"""A plain, single-file implementation of the protocol, for comparison (transformers only).

What a careful script would do by hand on a Llama-style causal LM: the shared prompt head's
key/value cache computed once and copied per batch, right-padded batches in data order, a
forward hook at the edited layer that records the hidden state (and ends the pass there), and,
for a gate on the last layer, each condition applied to the recorded state followed by the
final norm and the LM head. Gates: the ``zero`` operator on ``index``, inside ``[lo, hi]``
(range mode) or everywhere (neuron mode).
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer


class _Stop(Exception):
    pass


@dataclass
class PlainGate:
    index: torch.Tensor
    lo: torch.Tensor
    hi: torch.Tensor
    neuron: bool  # neuron masking: the whole neuron, whatever its value

    def __call__(self, h: torch.Tensor) -> torch.Tensor:
        x = h[..., self.index]
        inside = torch.ones_like(x, dtype=torch.bool)
        if not self.neuron:
            inside = (x >= self.lo) & (x <= self.hi)
        out = h.clone()
        out[..., self.index] = torch.where(inside, torch.zeros_like(x), x)
        return out


class Plain:
    """The model, the prompt head's cache and a hook at ``layer`` (the last one here)."""

    def __init__(self, folder: str, head: str, layer: int) -> None:
        self.tok = AutoTokenizer.from_pretrained(folder)
        self.model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
        self.block = self.model.model.layers[layer]
        self.head_ids = self.tok(head, return_tensors="pt").input_ids
        self.prefix = None
        self.pad = self.tok.pad_token_id if self.tok.pad_token_id is not None else 0

    def _hidden(self, **inputs: object) -> torch.Tensor:
        """The hooked layer's output for ``inputs``; the pass stops there."""
        seen: list[torch.Tensor] = []

        def hook(_m: object, _a: object, out: object) -> None:
            seen.append(out[0] if isinstance(out, tuple) else out)
            raise _Stop

        handle = self.block.register_forward_hook(hook)
        try:
            self.model(**inputs)
        except _Stop:
            pass
        finally:
            handle.remove()
        return seen[0]

    def _batch(self, rows: list[list[int]]) -> tuple[dict[str, object], torch.Tensor]:
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), self.pad, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r)
            mask[i, : len(r)] = 1
        head = torch.ones((len(rows), self.head_ids.shape[1]), dtype=torch.long)
        cache = copy.deepcopy(self.prefix)
        cache.batch_repeat_interleave(len(rows))
        inputs = {
            "input_ids": ids,
            "attention_mask": torch.cat([head, mask], dim=1),
            "past_key_values": cache,
            "use_cache": True,
        }
        return inputs, mask.sum(1) - 1

    @torch.no_grad()
    def read_states(self, queries: list[list[int]], batch: int) -> torch.Tensor:
        """The hooked layer's output at each query's last token (N, d); the prompt head's
        cache is computed first, once for the pass."""
        self.prefix = self.model(input_ids=self.head_ids, use_cache=True).past_key_values
        out = []
        for s in range(0, len(queries), batch):
            inputs, read = self._batch(queries[s : s + batch])
            h = self._hidden(**inputs)
            out.append(h[torch.arange(h.shape[0]), read])
        return torch.cat(out)

    @torch.no_grad()
    def fit(self, queries: list[list[int]], labels: list[int], n: int, batch: int):
        """Per-class mean and population std of the read-token states (float64)."""
        h = self.read_states(queries, batch).double()
        y = torch.tensor(labels)
        mean = torch.stack([h[y == c].mean(0) for c in range(n)])
        std = torch.stack([h[y == c].std(0, correction=0) for c in range(n)])
        return mean, std

    def _head(self, h: torch.Tensor) -> torch.Tensor:
        return self.model.lm_head(self.model.model.norm(h))

    @torch.no_grad()
    def label_probs(
        self,
        queries: list[list[int]],
        label_ids: list[int],
        gates: dict[str, PlainGate | None],
        batch: int,
    ) -> dict[str, torch.Tensor]:
        """Label-word probabilities per condition (None: the base model)."""
        h = self.read_states(queries, batch)
        out = {}
        for key, gate in gates.items():
            probs = torch.softmax(self._head(gate(h) if gate else h), dim=-1)
            out[key] = probs[:, label_ids]
        return out

    @torch.no_grad()
    def perplexity(
        self, windows: torch.Tensor, gates: dict[str, PlainGate | None], batch: int
    ) -> tuple[dict[str, float], dict[str, float]]:
        """Perplexity per condition over the windows (n, T), and seconds per condition (the
        base pass under the base condition's key)."""
        nll = dict.fromkeys(gates, 0.0)
        seconds = dict.fromkeys(gates, 0.0)
        for s in range(0, len(windows), batch):
            ids = windows[s : s + batch]
            t0 = time.perf_counter()
            h = self._hidden(input_ids=ids, use_cache=False)
            target = ids[:, 1:]
            for key, gate in gates.items():
                logits = self._head((gate(h) if gate else h)[:, :-1])
                logp = torch.log_softmax(logits, dim=-1).gather(-1, target.unsqueeze(-1))
                nll[key] -= logp.sum().item()
                now = time.perf_counter()
                seconds[key] += now - t0
                t0 = now
        n = windows.shape[0] * (windows.shape[1] - 1)
        return {key: math.exp(v / n) for key, v in nll.items()}, seconds
