"""The erasure metrics of one target concept: Acc/Conf on its examples, CAcc/CConf on the
others' examples, macro (mean of per-concept means) or pooled (mean over all examples)."""

from __future__ import annotations

import math

import torch


def condition_metrics(
    probs: torch.Tensor,
    pred: torch.Tensor,
    gold: torch.Tensor,
    concept: int,
    n: int,
    collateral: str = "macro",
) -> tuple[float, float, float, float]:
    """(acc, conf) on the concept's examples; (cacc, cconf) on the other concepts' examples,
    ``macro`` (mean of the per-concept means) or ``pooled`` (mean over all their examples)."""
    conf_all = probs[torch.arange(len(gold)), gold]
    hit = (pred == gold).float()
    target = gold == concept
    acc = hit[target].mean().item() if target.any() else math.nan
    conf = conf_all[target].mean().item() if target.any() else math.nan
    if collateral == "pooled":
        other = ~target
        cacc = hit[other].mean().item() if other.any() else math.nan
        cconf = conf_all[other].mean().item() if other.any() else math.nan
        return acc, conf, cacc, cconf
    accs, confs = [], []
    for c in range(n):
        sel = gold == c
        if c != concept and sel.any():
            accs.append(hit[sel].mean().item())
            confs.append(conf_all[sel].mean().item())
    cacc = sum(accs) / len(accs) if accs else math.nan
    cconf = sum(confs) / len(confs) if confs else math.nan
    return acc, conf, cacc, cconf


def collateral_both(
    base: tuple[torch.Tensor, torch.Tensor],
    edit: tuple[torch.Tensor, torch.Tensor],
    gold: torch.Tensor,
    concept: int,
    n: int,
) -> dict[str, float | None]:
    """CAcc/CConf under both definitions: ``cacc_macro``, ``base_cacc_pooled``,
    ``d_cconf_pooled``, ... from (probs, pred) of the base and the edited model; and where a
    change in CAcc comes from: ``cacc_broken`` (share of the other concepts' examples the base
    model got right that the edit gets wrong) and ``cacc_fixed`` (share of those it got wrong
    that the edit gets right)."""
    out: dict[str, float | None] = {}
    for way in ("macro", "pooled"):
        b = condition_metrics(*base, gold, concept, n, way)[2:]
        e = condition_metrics(*edit, gold, concept, n, way)[2:]
        for name, bv, ev in zip(("cacc", "cconf"), b, e):
            out[f"{name}_{way}"], out[f"base_{name}_{way}"] = ev, bv
            out[f"d_{name}_{way}"] = ev - bv
    other = gold != concept
    right, now = (base[1] == gold)[other], (edit[1] == gold)[other]
    # None where undefined (the base got none right / none wrong): an export holds no NaN
    out["cacc_broken"] = (~now[right]).float().mean().item() if right.any() else None
    out["cacc_fixed"] = now[~right].float().mean().item() if (~right).any() else None
    return out
