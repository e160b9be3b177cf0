"""Exported checkpoint vs base: throughput and export cost.

    .venv/bin/python bench/bench_export.py [--recipe recipes/agnews_fewshot.yaml]

(d) tokens/s of the exported checkpoint (loaded with trust_remote_code) / tokens/s of the base
model, interleaved runs, >= 5 repetitions, median (target >= 0.97);
(e) time of nledit's export / time of the base model's save_pretrained.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine

from nledit.fitting.recipe_fit import fit
from nledit.pipeline import export_fitted
from nledit.recipe import load_recipe


def throughput(model: torch.nn.Module, ids: torch.Tensor) -> float:
    with torch.no_grad():
        t0 = time.perf_counter()
        model(input_ids=ids)
        return ids.numel() / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--recipe", default="recipes/agnews_fewshot.yaml")
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--tokens", type=int, default=256)
    ap.add_argument("--json")
    args = ap.parse_args()
    from transformers import AutoModelForCausalLM

    recipe, text = load_recipe(args.recipe, {"data.fit_per_class": 8, "eval.enabled": False})
    fitted = fit(recipe, text)
    work = Path(tempfile.mkdtemp(prefix="nledit-bench-"))
    try:
        t0 = time.perf_counter()
        export_fitted(fitted, work / "out", None, overwrite=False)
        export_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        fitted.model.save_pretrained(work / "saved")
        save_s = time.perf_counter() - t0

        edited = AutoModelForCausalLM.from_pretrained(work / "out", trust_remote_code=True).eval()
        base = AutoModelForCausalLM.from_pretrained(fitted.source.location).eval()
        g = torch.Generator().manual_seed(0)
        ids = torch.randint(0, base.config.vocab_size, (1, args.tokens), generator=g)
        throughput(edited, ids), throughput(base, ids)  # warm-up
        ratios, e_tps, b_tps = [], [], []
        for _ in range(args.repeat):  # interleaved
            e, b = throughput(edited, ids), throughput(base, ids)
            e_tps.append(e), b_tps.append(b), ratios.append(e / b)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    res = {
        "machine": machine(),
        "model": recipe.model.id,
        "tokens_per_s_edited": statistics.median(e_tps),
        "tokens_per_s_base": statistics.median(b_tps),
        "throughput_ratio": statistics.median(ratios),
        "export_s": export_s,
        "save_pretrained_s": save_s,
        "export_ratio": export_s / save_s,
    }
    print(json.dumps(res, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2) + "\n")


if __name__ == "__main__":
    main()
