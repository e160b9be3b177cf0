"""A concept probe after the edit: how much concept information is still linearly readable.

A multinomial logistic-regression probe is trained on the base model's read-token activations
at the edited layer over the fitting examples, then scored on the held-out evaluation examples:
on their base activations, and on the same activations after each method's gate (range masking,
neuron masking, LEACE, ...). A gate at layer l changes nothing before l's output, so the edited
activation of a row is the gate applied to its base activation: one forward pass per split.

Reported per (method, concept, layer): probe accuracy on the concept's examples (``acc``), on
the other concepts' examples (``cacc``) and on all (``all``), next to the base values.
"""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np
import torch

from ..data.concept import ConceptModel
from ..data.dataset import Examples
from ..fitting.collect import StopForward, capture, read_rows
from ..runtime.gate import RangeGate

PROBE_ITERATIONS = 2000


@torch.no_grad()
def read_activations(
    cm: ConceptModel, texts: list[str], layers: list[int], batch_size: int
) -> dict[int, torch.Tensor]:
    """The base model's read-token hidden state of every text at each layer, (N, d) float32."""
    paths = {layer: cm.layout.layer_path(layer) for layer in layers}
    rows: dict[int, list[torch.Tensor]] = {layer: [] for layer in layers}
    for batch in cm.batches(texts, batch_size):
        with capture(cm.model, paths, stop=True) as seen, contextlib.suppress(StopForward):
            cm.model(**batch.inputs)
        for layer in layers:
            rows[layer].append(read_rows(seen[layer], batch.read).float().cpu())
    return {layer: torch.cat(parts) for layer, parts in rows.items()}


def _accuracies(pred: np.ndarray, gold: np.ndarray, concept: int) -> dict[str, float]:
    hit = pred == gold
    target = gold == concept
    return {
        "acc": float(hit[target].mean()) if target.any() else float("nan"),
        "cacc": float(hit[~target].mean()) if (~target).any() else float("nan"),
        "all": float(hit.mean()),
    }


@torch.no_grad()
def probe_rows(
    cm: ConceptModel,
    train: Examples,
    test: Examples,
    gates: list[RangeGate],
    batch_size: int,
    seed: int,
) -> list[dict[str, Any]]:
    """One row per gate: the probe's accuracies on edited held-out activations, with the base."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    layers = sorted({int(g.spec.layer) for g in gates})
    if not layers:
        return []
    h_train = read_activations(cm, train.texts, layers, batch_size)
    h_test = read_activations(cm, test.texts, layers, batch_size)
    y_train, gold = np.asarray(train.labels), np.asarray(test.labels)
    out = []
    for layer in layers:
        scaler = StandardScaler().fit(h_train[layer].double().numpy())
        probe = LogisticRegression(max_iter=PROBE_ITERATIONS, random_state=seed)
        probe.fit(scaler.transform(h_train[layer].double().numpy()), y_train)
        base_pred = probe.predict(scaler.transform(h_test[layer].double().numpy()))
        for g in (g for g in gates if int(g.spec.layer) == layer):
            concept = cm.label_names.index(g.spec.concept)
            g.read_at(None)
            edited = g(h_test[layer].to(g.index.device)).double().cpu().numpy()
            pred = probe.predict(scaler.transform(edited))
            base = _accuracies(base_pred, gold, concept)
            out.append(
                {
                    "concept": g.spec.concept,
                    "method": str(g.spec.row),
                    "edit": str(g.spec.edit or ""),
                    "layer": layer,
                    **_accuracies(pred, gold, concept),
                    **{f"base_{k}": v for k, v in base.items()},
                    "n_train": len(y_train),
                    "n_test": len(gold),
                }
            )
    return out


def probe_markdown(rows: list[dict[str, Any]]) -> str:
    """The probe table (markdown): accuracy on the concept, on the others, on all examples."""
    lines = [
        "| concept | method | layer | probe Acc | base | probe CAcc | base | probe all | base |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['concept']} | {r['method']} | {r['layer']} | {r['acc']:.3f} | "
            f"{r['base_acc']:.3f} | {r['cacc']:.3f} | {r['base_cacc']:.3f} | "
            f"{r['all']:.3f} | {r['base_all']:.3f} |"
        )
    return "\n".join(lines)


def probe_summary(rows: list[dict[str, Any]]) -> str:
    """One terminal line per row: the probe's accuracy on the concept, base -> edited."""
    out = ["Linear concept probe (accuracy on the concept's held-out examples, base -> edited):"]
    for r in rows:
        out.append(
            f"  {r['concept'][:11]:<12}{r['method']:<8} {r['base_acc']:.3f} -> {r['acc']:.3f}"
            f"   (others {r['base_cacc']:.3f} -> {r['cacc']:.3f})"
        )
    return "\n".join(out)
