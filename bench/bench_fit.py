"""Fit pass vs a plain full forward pass, and peak memory of fitting N vs 8N examples.

    .venv/bin/python bench/bench_fit.py [--recipe recipes/agnews_fewshot.yaml] [--n 32]

(a) the fit pass stops after the edited layer and never computes the LM head; the ratio of its
time to a plain full forward pass over the same batches (with the same prompt-head cache) is
reported (target <= 0.8). Interleaved repetitions, median.
(b) peak resident memory of a fit on N and on 8N examples, each in a fresh process (target:
within +5%).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, timed

from nledit.data.dataset import Examples
from nledit.fitting.collect import collect
from nledit.fitting.recipe_fit import load_for_recipe
from nledit.recipe import load_recipe


def speed(recipe_path: str, n: int, repeat: int) -> dict[str, float]:
    recipe, _ = load_recipe(recipe_path, {"data.fit_per_class": max(2, n // 4)})
    data, _, cm, _, layers = load_for_recipe(recipe)
    ex = Examples(data.fit.texts[:n], data.fit.labels[:n])

    def fit_pass() -> None:
        collect(cm, ex, sorted(set(layers)), recipe.batch_size)

    @torch.no_grad()
    def full_pass(keep_read_only: bool = False) -> None:
        for batch in cm.batches(ex.texts, recipe.batch_size):
            inputs = dict(batch.inputs)
            if not keep_read_only:  # a plain forward: logits at every position
                inputs.pop("logits_to_keep", None)
            cm.model(**inputs)

    fit_pass(), full_pass()  # warm-up
    fits, fulls, reads = [], [], []
    for _ in range(repeat):  # interleaved so drift hits all alike
        fits.append(timed(fit_pass))
        fulls.append(timed(full_pass))
        reads.append(timed(lambda: full_pass(True)))
    med = lambda xs: sorted(xs)[len(xs) // 2]  # noqa: E731
    fit_t, full_t, read_t = med(fits), med(fulls), med(reads)
    return {
        "examples": n,
        "layer": layers[0],
        "fit_s": fit_t,
        "full_forward_s": full_t,
        "read_token_forward_s": read_t,
        "ratio": fit_t / full_t,
        "ratio_vs_read_token_forward": fit_t / read_t,
    }


def peak_rss_child(recipe_path: str, n: int) -> float:
    code = f"""
import resource, sys
sys.path.insert(0, {str(Path(__file__).resolve().parent)!r})
from nledit.recipe import load_recipe
from nledit.fit import load_for_recipe
from nledit.fitting.collect import collect
from nledit.data.dataset import Examples
recipe, _ = load_recipe({recipe_path!r}, {{"data.fit_per_class": {max(2, n // 4)}}})
data, _, cm, _, layers = load_for_recipe(recipe)
ex = Examples(data.fit.texts[:{n}], data.fit.labels[:{n}])
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
collect(cm, ex, sorted(set(layers)), recipe.batch_size)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(out.stdout.strip().splitlines()[-1]) / 1024  # MiB


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--recipe", default="recipes/agnews_fewshot.yaml")
    ap.add_argument("--n", type=int, default=32, help="examples for the timing and N for memory")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args()
    res = {"machine": machine(), "speed": speed(args.recipe, args.n, args.repeat)}
    m1 = peak_rss_child(args.recipe, args.n)
    m8 = peak_rss_child(args.recipe, 8 * args.n)
    res["memory"] = {"n": args.n, "peak_mib_n": m1, "peak_mib_8n": m8, "increase": m8 / m1 - 1}
    print(json.dumps(res, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2) + "\n")


if __name__ == "__main__":
    main()
