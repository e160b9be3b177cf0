"""nledit against a plain single-file script (``plain_baseline.py``) on one protocol, one run.

    PYTHONPATH=. .venv/bin/python bench/bench_plain.py [--repeat 5] [--threads 1]
        [--json docs/benchmarks/plain.json] [--plot docs/benchmarks/ppl_vs_firing.png]

Protocol: recipes/quickstart.yaml (SmolLM2-135M-Instruct fp32, the 8-shot AG News prompt, a
selective last-layer edit of Sports with its neuron and paper baselines), the baseline loading
the converted folder nledit resolves. Measured, interleaved, medians over ``--repeat``:
fit examples/s; perplexity seconds per condition (WikiText-2 windows; per condition = time with
the conditions minus time of the base pass alone, divided by their number); the erasure table
(label probabilities of every condition on the evaluation examples). Ratios, not seconds, are
what carry from one machine to another. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from plain_baseline import Plain, PlainGate

from nledit.collect import collect
from nledit.evaluate import Condition, conditions_for, label_probs
from nledit.fit import fit
from nledit.localhead import Firing
from nledit.perplexity import perplexity
from nledit.recipe import load_recipe
from nledit.text import load_text, windows

WIKI = "/work/shared/data/wikitext2/wiki.test.raw"


def _median(xs: list[float]) -> float:
    return sorted(xs)[len(xs) // 2]


def _timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _plain_gate(cond: Condition) -> PlainGate | None:
    if not cond.gates:
        return None
    (g,) = cond.gates
    assert g.spec["operator"] == "zero", "the plain script implements the zero operator"
    return PlainGate(g.index, g.lo, g.hi, g.spec["mode"] == "neuron")


def _copies(cond: Condition, k: int) -> list[Condition]:
    return [Condition(cond.method, cond.concept, cond.gates, f"{cond.tag}{i}") for i in range(k)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--recipe", default="recipes/quickstart.yaml")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--fit-per-class", type=int, default=12)
    ap.add_argument("--eval-per-class", type=int, default=10)
    ap.add_argument("--windows", type=int, default=8)
    ap.add_argument("--window", type=int, default=256)
    ap.add_argument("--k", type=int, default=3, help="copies of each timed ppl condition")
    ap.add_argument("--json", default="docs/benchmarks/plain.json")
    ap.add_argument("--plot", default="docs/benchmarks/ppl_vs_firing.png")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    overrides = {
        "data.fit_per_class": args.fit_per_class,
        "data.eval_per_class": args.eval_per_class,
        "batch_size": args.batch,
    }
    recipe, text = load_recipe(args.recipe, overrides)
    fitted = fit(recipe, text)
    cm, layout, model = fitted.cm, fitted.layout, fitted.model
    layer = fitted.layers[0]
    assert layer == layout.n_layers - 1, "the plain script handles a last-layer edit"
    plain = Plain(fitted.source.location, cm.head, layer)
    fit_ex, ev = fitted.data.fit, fitted.data.eval
    fit_q, ev_q = cm._encode(fit_ex.texts), cm._encode(ev.texts)
    label_ids = cm.label_ids.tolist()
    conds = conditions_for(fitted)
    plain_gates = {c.key: _plain_gate(c) for c in conds}
    text_of = load_text(WIKI)[: 8 * args.window * args.windows]  # enough characters
    wins = windows(cm.tokenizer, text_of, args.window, args.windows)
    n_layers = len(fitted.data.label_names)
    bs = args.batch

    selective = next(c for c in conds if c.method == "range")
    full_head = next(c for c in conds if c.method == "neuron")

    def nl_ppl(extra: list[Condition], local: bool = True, firing: Firing | None = None):
        return perplexity(
            model, layout, cm.tokenizer, text_of, [conds[0], *extra],
            args.window, args.windows, bs, local=local, firing=firing,
        )  # fmt: skip

    def pl_ppl(extra: list[Condition]):
        gates = {"base": None, **{f"c{i}": _plain_gate(c) for i, c in enumerate(extra)}}
        return plain.perplexity(wins, gates, bs)

    # equality of the two implementations on this protocol (sanity, not timed)
    firing = Firing()
    nl = nl_ppl([selective, full_head], firing=firing)
    pl = plain.perplexity(wins, {k: plain_gates[k] for k in nl}, bs)
    ppl_check = {k: (nl[k], pl[k]) for k in nl}
    nl_probs = label_probs(cm, ev.texts, conds, bs)
    pl_probs = plain.label_probs(ev_q, label_ids, plain_gates)
    probs_gap = max((nl_probs[k] - pl_probs[k]).abs().max().item() for k in nl_probs)

    k = args.k
    runs: dict[str, list[float]] = {}
    jobs = {
        "fit_nledit": lambda: collect(cm, fit_ex, [layer], bs, desc="fit"),
        "fit_plain": lambda: plain.fit(fit_q, fit_ex.labels, n_layers, bs),
        "ppl_base_nledit": lambda: nl_ppl([]),
        "ppl_full_nledit": lambda: nl_ppl(_copies(full_head, k)),
        "ppl_full_nledit_nolocal": lambda: nl_ppl(_copies(full_head, k), local=False),
        "ppl_selective_nledit": lambda: nl_ppl(_copies(selective, k)),
        "ppl_base_plain": lambda: pl_ppl([]),
        "ppl_full_plain": lambda: pl_ppl(_copies(full_head, k)),
        "table_nledit": lambda: label_probs(cm, ev.texts, conds, bs),
        "table_plain": lambda: plain.label_probs(ev_q, label_ids, plain_gates),
    }
    for fn in jobs.values():  # warm-up
        fn()
    for _ in range(args.repeat):  # interleaved: drift on a shared machine hits all alike
        for name, fn in jobs.items():
            runs.setdefault(name, []).append(_timed(fn))
    med = {name: _median(ts) for name, ts in runs.items()}
    per = {
        "nledit_full": (med["ppl_full_nledit"] - med["ppl_base_nledit"]) / k,
        "nledit_full_nolocal": (med["ppl_full_nledit_nolocal"] - med["ppl_base_nledit"]) / k,
        "nledit_selective": (med["ppl_selective_nledit"] - med["ppl_base_nledit"]) / k,
        "plain_full": (med["ppl_full_plain"] - med["ppl_base_plain"]) / k,
    }
    n_fit = len(fit_ex.texts)
    result = {
        "threads": args.threads,
        "batch_size": bs,
        "repeat": args.repeat,
        "fit_examples": n_fit,
        "eval_examples": len(ev.texts),
        "ppl_tokens": int(wins.numel()),
        "conditions": [c.key for c in conds],
        "ppl_check": ppl_check,
        "label_probs_max_gap": probs_gap,
        "firing": {c.key: firing.rate(c.key) for c in (selective, full_head)},
        "median_s": med,
        "ppl_per_condition_s": per,
        "ratios": {
            "fit_examples_per_s_nledit_over_plain": med["fit_plain"] / med["fit_nledit"],
            "ppl_full_condition_speed_nledit_over_plain": per["plain_full"] / per["nledit_full"],
            "ppl_full_condition_speed_before_local": per["plain_full"] / per["nledit_full_nolocal"],
            "ppl_selective_cost_over_full": per["nledit_selective"] / per["nledit_full"],
            "table_speed_nledit_over_plain": med["table_plain"] / med["table_nledit"],
        },
    }
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
