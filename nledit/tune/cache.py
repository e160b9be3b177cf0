"""Cheap trials for `nledit tune`: the base model's work on the validation data, done once.

The base pass records, for every candidate layer, the layer's output on each validation batch
and each perplexity window, and the base model's label probabilities and token losses. A trial
then installs its gates and runs only the layers after its own (``fastpath.replay_from``): on
the last decoder layer that is the final norm and the LM head.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from ..data.concept import Batch, ConceptModel
from ..data.dataset import Examples
from ..evaluation.erasure import applied, condition_metrics, with_prefix
from ..evaluation.perplexity import as_generated
from ..fitting.collect import ConceptStats, capture
from ..fitting.reservoir import Reservoir
from ..models.compat import cache_kwarg
from ..models.fastpath import replay_from
from ..runtime.gate import RangeGate

METRICS = ("d_acc", "d_conf", "d_cacc", "d_cconf")


@dataclass
class _Cached:
    inputs: dict[str, Any]  # model inputs without a key/value cache
    batch: Batch | None  # the classification batch (read positions), None for text windows
    states: dict[int, tuple[torch.Tensor, bool]] = field(default_factory=dict)


def _state(raw: Any) -> tuple[torch.Tensor, bool]:
    return (raw[0], True) if isinstance(raw, tuple) else (raw, False)


def _nll(logits: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    return -logp.gather(-1, ids[:, 1:].to(logp.device).unsqueeze(-1)).sum()


class ValidationCache:
    """Base outputs on the validation split (and perplexity windows) for several layers."""

    @torch.no_grad()
    def __init__(
        self,
        cm: ConceptModel,
        layers: list[int],
        examples: Examples,
        batch_size: int,
        curate: bool = False,
        ppl_ids: torch.Tensor | None = None,
    ) -> None:
        self.cm, self.layers = cm, sorted(set(layers))
        model, layout = cm.model, cm.layout
        paths = {layer: layout.layer_path(layer) for layer in self.layers}
        self.base_prefix = cm.prefix_cache() if cm.use_prefix_cache else None
        self.batches: list[_Cached] = []
        probs = []
        bar = tqdm(total=len(examples), desc="base (validation)", unit="ex", leave=False)
        for b in cm.batches(examples.texts, batch_size, prefix=self.base_prefix):
            with capture(model, paths, stop=False) as seen:
                res = model(**b.inputs)
            probs.append(cm.label_probs(cm.read_logits(res, b)).cpu())
            inputs = {k: v for k, v in b.inputs.items() if k != cache_kwarg(cm.model)}
            states = {layer: _state(seen[layer]) for layer in self.layers}
            self.batches.append(_Cached(inputs, replace(b, inputs=inputs), states))
            bar.update(len(b.read))
        bar.close()
        self.gold = torch.tensor(examples.labels)
        self.base_probs = torch.cat(probs)
        self.base_pred = cm.predict(self.base_probs)
        keep = self.base_pred == self.gold if curate else torch.ones_like(self.gold, dtype=bool)
        self.keep = keep
        self.windows: list[_Cached] = []
        self.base_ppl: float | None = None
        self.tokens = 0
        if ppl_ids is not None and len(ppl_ids):
            device = cm.device
            total = 0.0
            for start in range(0, len(ppl_ids), batch_size):
                ids = ppl_ids[start : start + batch_size]
                inputs = {"input_ids": ids.to(device), "use_cache": False}
                with capture(model, paths, stop=False) as seen:
                    res = model(**inputs)
                total += float(_nll(res.logits, ids))
                states = {layer: _state(seen[layer]) for layer in self.layers}
                self.windows.append(_Cached(inputs, None, states))
            self.tokens = ppl_ids.shape[0] * (ppl_ids.shape[1] - 1)
            self.base_ppl = math.exp(total / self.tokens)

    @torch.no_grad()
    def _prefix(self, gates: list[RangeGate], layer: int) -> Any:
        cm = self.cm
        if not cm.use_prefix_cache:
            return None
        if layer == cm.layout.n_layers - 1:  # the last layer's output changes no key/value
            return self.base_prefix
        for g in gates:  # the head holds no read token
            g.read_at(torch.empty(0, dtype=torch.long))
        try:
            with applied(cm.model, cm.layout.layers_path, gates):
                return cm.prefix_cache()
        finally:
            for g in gates:
                g.read_at(None)

    @torch.no_grad()
    def run(self, gates: list[RangeGate]) -> tuple[torch.Tensor, float | None]:
        """Label probabilities (N, C) and perplexity with ``gates`` (all at one cached layer)."""
        cm = self.cm
        layer = min(int(g.spec.layer) for g in gates)
        if layer not in self.layers:
            raise ValueError(f"layer {layer} was not cached; cached: {self.layers}")
        prefix = self._prefix(gates, layer)
        probs = []
        with applied(cm.model, cm.layout.layers_path, gates):
            for cached in self.batches:
                batch = cached.batch
                assert batch is not None
                for g in gates:
                    g.read_at(batch.read)
                inputs = with_prefix(cm.model, cached.inputs, prefix)
                with replay_from(cm.model, cm.layout, layer, *cached.states[layer]):
                    res = cm.model(**inputs)
                probs.append(cm.label_probs(cm.read_logits(res, batch)).cpu())
            for g in gates:
                g.read_at(None)
            ppl = None
            if self.windows:
                total = 0.0
                with as_generated(gates):
                    for cached in self.windows:
                        with replay_from(cm.model, cm.layout, layer, *cached.states[layer]):
                            res = cm.model(**cached.inputs)
                        total += float(_nll(res.logits, cached.inputs["input_ids"]))
                ppl = math.exp(total / self.tokens)
        return torch.cat(probs), ppl

    def metrics(self, probs: torch.Tensor, concepts: list[int]) -> dict[str, float]:
        """Deltas against the base model, averaged over the edit's concepts (same as the
        erasure table: Acc/Conf on the concept, CAcc/CConf averaged over the others)."""
        n = len(self.cm.label_names)
        k = self.keep
        pred = self.cm.predict(probs)
        sums = dict.fromkeys(("acc", "conf", "cacc", "cconf", *METRICS), 0.0)
        for c in concepts:
            base = condition_metrics(self.base_probs[k], self.base_pred[k], self.gold[k], c, n)
            edit = condition_metrics(probs[k], pred[k], self.gold[k], c, n)
            for i, name in enumerate(("acc", "conf", "cacc", "cconf")):
                sums[name] += edit[i] / len(concepts)
                sums[f"d_{name}"] += (edit[i] - base[i]) / len(concepts)
        return sums


# ---- on disk: a rerun or `--pick` starts at the first new trial ------------------------------


def save_base(cache: ValidationCache, path: Path) -> None:
    """The base outputs (states per batch and window, probabilities, perplexity) as
    safetensors; ``load_base`` rebuilds the cache from it without running the model."""
    tensors: dict[str, torch.Tensor] = {"base_probs": cache.base_probs}
    flags: dict[str, bool] = {}
    for kind, items in (("b", cache.batches), ("w", cache.windows)):
        for i, cached in enumerate(items):
            for layer, (h, tup) in cached.states.items():
                tensors[f"{kind}{i}.{layer}"] = h.detach().cpu().contiguous()
                flags[f"{kind}{i}.{layer}"] = tup
    meta = {"flags": flags, "base_ppl": cache.base_ppl, "tokens": cache.tokens}
    tmp = path.with_suffix(".tmp")
    save_file(tensors, str(tmp), {"nledit": json.dumps(meta)})
    tmp.replace(path)


@torch.no_grad()
def load_base(
    path: Path,
    cm: ConceptModel,
    layers: list[int],
    examples: Examples,
    batch_size: int,
    curate: bool = False,
    ppl_ids: torch.Tensor | None = None,
) -> ValidationCache:
    """A ``ValidationCache`` from ``save_base``'s file: the same batches (tokenised again),
    the stored states; the model runs only the shared prompt head."""
    with safe_open(str(path), framework="pt") as f:
        meta = json.loads((f.metadata() or {})["nledit"])
    tensors = load_file(str(path))
    flags = meta["flags"]
    cache = ValidationCache.__new__(ValidationCache)
    cache.cm, cache.layers = cm, sorted(set(layers))
    cache.base_prefix = cm.prefix_cache() if cm.use_prefix_cache else None
    cache.batches = []
    for i, b in enumerate(cm.batches(examples.texts, batch_size, prefix=cache.base_prefix)):
        inputs = {k: v for k, v in b.inputs.items() if k != cache_kwarg(cm.model)}
        states = {
            layer: (tensors[f"b{i}.{layer}"].to(cm.device), flags[f"b{i}.{layer}"])
            for layer in cache.layers
        }
        cache.batches.append(_Cached(inputs, replace(b, inputs=inputs), states))
    cache.gold = torch.tensor(examples.labels)
    cache.base_probs = tensors["base_probs"]
    cache.base_pred = cm.predict(cache.base_probs)
    ones = torch.ones_like(cache.gold, dtype=torch.bool)
    cache.keep = cache.base_pred == cache.gold if curate else ones
    cache.windows, cache.base_ppl, cache.tokens = [], meta["base_ppl"], meta["tokens"]
    if ppl_ids is not None and len(ppl_ids):
        for i, start in enumerate(range(0, len(ppl_ids), batch_size)):
            ids = ppl_ids[start : start + batch_size]
            states = {
                layer: (tensors[f"w{i}.{layer}"].to(cm.device), flags[f"w{i}.{layer}"])
                for layer in cache.layers
            }
            inputs = {"input_ids": ids.to(cm.device), "use_cache": False}
            cache.windows.append(_Cached(inputs, None, states))
    return cache


def save_stats(stats: ConceptStats, reservoir: Reservoir | None, path: Path) -> None:
    """The statistics pass (and its reservoir sample, if any) as safetensors."""
    tensors = {f"stats.{k}": v.contiguous() for k, v in stats.to_tensors().items()}
    seen: dict[str, int] = {}
    if reservoir is not None:
        sample, seen = reservoir.to_tensors()
        tensors.update({f"res.{k}": v for k, v in sample.items()})
    meta = {"reservoir": reservoir is not None, "capacity": getattr(reservoir, "capacity", 0)}
    tmp = path.with_suffix(".tmp")
    save_file(tensors, str(tmp), {"nledit": json.dumps({**meta, "seen": seen})})
    tmp.replace(path)


def load_stats(path: Path, seed: int) -> tuple[ConceptStats, Reservoir | None]:
    """``save_stats``'s file back as statistics and reservoir."""
    with safe_open(str(path), framework="pt") as f:
        meta = json.loads((f.metadata() or {})["nledit"])
    tensors = load_file(str(path))
    stats = ConceptStats.from_tensors(
        {k.removeprefix("stats."): v for k, v in tensors.items() if k.startswith("stats.")}
    )
    if not meta["reservoir"]:
        return stats, None
    sample = {k.removeprefix("res."): v for k, v in tensors.items() if k.startswith("res.")}
    return stats, Reservoir.from_tensors(int(meta["capacity"]), seed, sample, meta["seen"])
