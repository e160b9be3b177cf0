"""Full erasure table + perplexity deltas vs one plain evaluation pass of the base model.

    .venv/bin/python bench/bench_eval.py [--recipe recipes/agnews_fewshot.yaml] [--eval 20]

The recipe's first edit is applied to all four AG News concepts (range masking and neuron
masking each), so the naive cost is 1 + 2C = 9 passes. Reported: fast-path time / one plain base
pass (target <= 2.0) and the naive (one full pass per condition) time / one plain base pass, over
the same examples and perplexity windows, in one run; each split into the label table (read
token only) and perplexity (every window position is projected onto the vocabulary, once per
condition).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine

from nledit.evaluation.erasure import Condition, conditions_for, label_probs
from nledit.evaluation.perplexity import load_text, perplexity
from nledit.fitting.recipe_fit import fit
from nledit.recipe import load_recipe

CONCEPTS = ["World", "Sports", "Business", "Sci/Tech"]


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--recipe", default="recipes/agnews_fewshot.yaml")
    ap.add_argument("--eval", type=int, default=20, help="eval examples per concept")
    ap.add_argument("--windows", type=int, default=4)
    ap.add_argument("--json")
    args = ap.parse_args()
    first = load_recipe(args.recipe)[0].edits[0].model_dump(mode="json", exclude_defaults=True)
    recipe, text = load_recipe(
        args.recipe,
        {
            "edits": [first | {"concepts": CONCEPTS}],
            "data.eval_per_class": args.eval,
            "data.fit_per_class": 20,
            "eval.perplexity_windows": args.windows,
        },
    )
    fitted = fit(recipe, text)
    cm, ev = fitted.cm, recipe.eval
    texts = fitted.data.eval.texts
    corpus = load_text(ev.perplexity_source)
    conds = conditions_for(fitted.edit)
    base = [Condition("base", None, [])]

    def table(conditions, fast: bool) -> tuple[float, float]:
        """Seconds for the label table and for perplexity."""
        t0 = time.perf_counter()
        label_probs(cm, texts, conditions, recipe.batch_size, fast=fast)
        t1 = time.perf_counter()
        perplexity(
            cm.model,
            fitted.layout,
            cm.tokenizer,
            corpus,
            conditions,
            ev.perplexity_window,
            ev.perplexity_windows,
            recipe.batch_size,
            fast=fast,
        )
        return t1 - t0, time.perf_counter() - t1

    table(base, True)  # warm-up
    plain_parts = min((table(base, False) for _ in range(2)), key=sum)
    fast_parts, naive_parts = table(conds, True), table(conds, False)
    plain, fast, naive = sum(plain_parts), sum(fast_parts), sum(naive_parts)
    res = {
        "machine": machine(),
        "conditions": len(conds),
        "examples": len(texts),
        "windows": ev.perplexity_windows,
        "plain_base_pass_s": plain,
        "fast_table_s": fast,
        "naive_table_s": naive,
        "fast_ratio": fast / plain,
        "naive_ratio": naive / plain,
        "labels_s": {"plain": plain_parts[0], "fast": fast_parts[0], "naive": naive_parts[0]},
        "perplexity_s": {"plain": plain_parts[1], "fast": fast_parts[1], "naive": naive_parts[1]},
    }
    print(json.dumps(res, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2) + "\n")


if __name__ == "__main__":
    main()
