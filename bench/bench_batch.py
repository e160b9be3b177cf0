"""Throughput against batch size: the basis of ``batch_size: auto`` (``nledit.models.batching``).

    PYTHONPATH=. .venv/bin/python bench/bench_batch.py [--sizes 2 4 8 16 32] [--repeat 3]
        [--json docs/benchmarks/quickstart.batch.json]

On recipes/agnews_fewshot.yaml: the fit pass (examples/s) and a perplexity pass of the base model
(tokens/s), each batch size timed interleaved with the others, medians over ``--repeat``.
Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine

from nledit.data.text import load_text
from nledit.evaluation.erasure import Condition
from nledit.evaluation.perplexity import perplexity
from nledit.fitting.collect import collect
from nledit.fitting.recipe_fit import load_for_recipe
from nledit.recipe import load_recipe

WIKI = "/work/shared/data/wikitext2/wiki.test.raw"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--recipe", default="recipes/agnews_fewshot.yaml")
    ap.add_argument("--sizes", type=int, nargs="*", default=[2, 4, 8, 16, 32])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--fit-per-class", type=int, default=16)
    ap.add_argument("--windows", type=int, default=16)
    ap.add_argument("--window", type=int, default=128)
    ap.add_argument("--json", default="docs/benchmarks/quickstart.batch.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    recipe, _ = load_recipe(args.recipe, {"data.fit_per_class": args.fit_per_class})
    data, _source, cm, layout, layers = load_for_recipe(recipe)
    text = load_text(WIKI)[: 8 * args.window * args.windows]
    base = [Condition("base", None, [])]
    fed = [len(q) for q in cm._encode(data.fit.texts)]

    def fit_job(size: int) -> float:
        t0 = time.perf_counter()
        collect(cm, data.fit, layers[:1], size, desc="fit")
        return len(data.fit.texts) / (time.perf_counter() - t0)

    def ppl_job(size: int) -> float:
        t0 = time.perf_counter()
        perplexity(cm.model, layout, cm.tokenizer, text, base, args.window, args.windows, size)
        return args.windows * args.window / (time.perf_counter() - t0)

    jobs = {(kind, s): fn for s in args.sizes for kind, fn in (("fit", fit_job), ("ppl", ppl_job))}
    for (_kind, s), fn in jobs.items():  # warm-up
        fn(s)
    runs: dict[tuple[str, int], list[float]] = {k: [] for k in jobs}
    for _ in range(args.repeat):
        for (kind, s), fn in jobs.items():
            runs[kind, s].append(fn(s))
    med = {k: sorted(v)[len(v) // 2] for k, v in runs.items()}
    result = {
        "command": "PYTHONPATH=. .venv/bin/python bench/bench_batch.py " + " ".join(sys.argv[1:]),
        "machine": machine(),
        "fit_examples": len(data.fit.texts),
        "fit_mean_query_tokens": sum(fed) / len(fed),
        "ppl_window": args.window,
        "fit_examples_per_s": {str(s): med["fit", s] for s in args.sizes},
        "ppl_tokens_per_s": {str(s): med["ppl", s] for s in args.sizes},
    }
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
