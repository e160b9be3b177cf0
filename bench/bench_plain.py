"""nledit against a plain single-file script (``plain_baseline.py``) on one protocol, one run.

    PYTHONPATH=. .venv/bin/python bench/bench_plain.py [--repeat 5] [--threads 1]
        [--json docs/benchmarks/plain.json] [--plot docs/benchmarks/ppl_vs_firing.png]

Protocol: recipes/agnews_fewshot.yaml (SmolLM2-135M-Instruct fp32, the 8-shot AG News prompt, a
selective last-layer edit of Sports with its neuron and paper baselines), the baseline loading
the converted folder nledit resolves. Measured, interleaved, medians over ``--repeat``:
fit examples/s; perplexity seconds per condition (WikiText-2 windows; per condition = time with
the conditions minus time of the base pass alone, divided by their number); the erasure table
(label probabilities of every condition on the evaluation examples). Ratios, not seconds, are
what carry from one machine to another. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine
from plain_baseline import Plain, PlainGate

from nledit.data.text import load_text, windows
from nledit.evaluation.erasure import Condition, conditions_for, label_probs
from nledit.evaluation.localhead import Firing
from nledit.evaluation.perplexity import perplexity
from nledit.fitting.collect import collect
from nledit.fitting.recipe_fit import fit
from nledit.recipe import load_recipe

WIKI = "/work/shared/data/wikitext2/wiki.test.raw"


def _median(xs: list[float]) -> float:
    return sorted(xs)[len(xs) // 2]


def _ratio(med: dict[str, float], num: str, den: str) -> float:
    """``med[num] / med[den]``; NaN when a job did not run (``--only``)."""
    return med.get(num, math.nan) / med.get(den, math.nan)


def _timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _plain_gate(cond: Condition) -> PlainGate | None:
    if not cond.gates:
        return None
    (g,) = cond.gates
    assert g.spec.operator == "zero", "the plain script implements the zero operator"
    return PlainGate(g.index, g.lo, g.hi, g.spec.mode == "neuron")


SCALES = (0.01, 0.02, 0.05, 0.1, 0.25, 0.5)


def _scaled(cond: Condition, factor: float) -> Condition:
    """``cond``'s gate with each range scaled by ``factor`` about its centre."""
    gate = copy.deepcopy(cond.gates[0])
    mid, half = (gate.hi + gate.lo) / 2, (gate.hi - gate.lo) / 2
    gate.lo, gate.hi = mid - factor * half, mid + factor * half
    return Condition(cond.method, cond.concept, [gate], f"x{factor:g}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--recipe", default="recipes/agnews_fewshot.yaml")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--fit-per-class", type=int, default=12)
    ap.add_argument("--eval-per-class", type=int, default=10)
    ap.add_argument("--windows", type=int, default=8)
    ap.add_argument("--window", type=int, default=256)
    ap.add_argument("--json", default="docs/benchmarks/quickstart.plain.json")
    ap.add_argument("--plot", default="docs/benchmarks/ppl_vs_firing.png")
    ap.add_argument("--scales", type=float, nargs="*", default=list(SCALES))
    ap.add_argument("--only", nargs="*", default=None, help="run only these timed jobs")
    ap.add_argument("--plot-only", action="store_true", help="redraw the plot from --json")
    args = ap.parse_args()
    if args.plot_only:
        plot(json.loads(Path(args.json).read_text()), args.plot)
        return
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
    conds = conditions_for(fitted.edit)
    plain_gates = {c.key: _plain_gate(c) for c in conds}
    text_of = load_text(WIKI)[: 8 * args.window * args.windows]  # enough characters
    wins = windows(cm.tokenizer, text_of, args.window, args.windows)
    n_labels = len(fitted.data.label_names)
    bs = args.batch

    selective = next(c for c in conds if c.method == "range")
    full_head = next(c for c in conds if c.method == "neuron")

    def nl_ppl(extra: list[Condition], local: bool = True) -> Firing:
        firing = Firing()
        perplexity(
            model, layout, cm.tokenizer, text_of, [conds[0], *extra],
            args.window, args.windows, bs, local=local, firing=firing,
        )  # fmt: skip
        return firing

    # equality of the two implementations on this protocol (sanity, not timed)
    nl = perplexity(model, layout, cm.tokenizer, text_of, conds, args.window, args.windows, bs)
    pl = plain.perplexity(wins, plain_gates, bs)[0]
    ppl_check = {key: (nl[key], pl[key]) for key in nl}
    nl_probs = label_probs(cm, ev.texts, conds, bs)
    pl_probs = plain.label_probs(ev_q, label_ids, plain_gates, bs)
    probs_gap = max((nl_probs[key] - pl_probs[key]).abs().max().item() for key in nl_probs)

    sweep = [_scaled(selective, f) for f in args.scales]  # the edit's ranges, narrower and wider
    ppl_conds = [full_head, selective, *sweep]
    plain_ppl = {"base": None, full_head.key: plain_gates[full_head.key]}
    times: dict[str, list[float]] = {}
    firing_rates: dict[str, float] = {}

    def ppl_local() -> None:
        f = nl_ppl(ppl_conds)
        for key in f.seconds:
            times.setdefault(f"nledit {key}", []).append(f.seconds[key])
        firing_rates.update({key: f.rate(key) for key in f.seen})

    def ppl_full() -> None:
        f = nl_ppl([full_head], local=False)
        times.setdefault("nledit full head, replayed", []).append(f.seconds[full_head.key])

    def ppl_plain() -> None:
        for key, t in plain.perplexity(wins, plain_ppl, bs)[1].items():
            times.setdefault(f"plain {key}", []).append(t)

    jobs = {
        "fit_nledit": lambda: collect(cm, fit_ex, [layer], bs, desc="fit"),
        "fit_plain": lambda: plain.fit(fit_q, fit_ex.labels, n_labels, bs),
        "ppl_nledit": ppl_local,
        "ppl_nledit_replayed": ppl_full,
        "ppl_plain": ppl_plain,
        "table_nledit": lambda: label_probs(cm, ev.texts, conds, bs),
        "table_plain": lambda: plain.label_probs(ev_q, label_ids, plain_gates, bs),
    }
    jobs = {name: fn for name, fn in jobs.items() if args.only is None or name in args.only}
    for fn in jobs.values():  # warm-up
        fn()
    times.clear()
    runs: dict[str, list[float]] = {}
    for _ in range(args.repeat):  # interleaved: drift on a shared machine hits all alike
        for name, fn in jobs.items():
            runs.setdefault(name, []).append(_timed(fn))
    med = {name: _median(ts) for name, ts in runs.items()}
    per = {name: _median(ts) for name, ts in times.items()}
    full_s = per[f"nledit {full_head.key}"]
    plain_s = per[f"plain {full_head.key}"]
    n_fit = len(fit_ex.texts)
    result = {
        "command": "PYTHONPATH=. .venv/bin/python bench/bench_plain.py " + " ".join(sys.argv[1:]),
        "machine": machine(),
        "threads": args.threads,
        "batch_size": bs,
        "repeat": args.repeat,
        "fit_examples": n_fit,
        "eval_examples": len(ev.texts),
        "ppl_tokens": int(wins.numel()),
        "conditions": [c.key for c in conds],
        "ppl_check": ppl_check,
        "label_probs_max_gap": probs_gap,
        "median_s": med,
        "ppl_condition_s": per,
        "ppl_points": [
            {
                "condition": c.key,
                "firing": firing_rates[c.key],
                "cost_over_full_head": per[f"nledit {c.key}"] / full_s,
            }
            for c in ppl_conds
        ],
        "ratios": {
            "fit_examples_per_s_nledit_over_plain": _ratio(med, "fit_plain", "fit_nledit"),
            "ppl_full_head_condition_speed_nledit_over_plain": plain_s / full_s,
            "ppl_full_head_replayed_speed_over_plain": plain_s
            / per.get("nledit full head, replayed", math.nan),
            "ppl_selective_cost_over_full_head": per[f"nledit {selective.key}"] / full_s,
            "selective_firing": firing_rates[selective.key],
            "table_speed_nledit_over_plain": _ratio(med, "table_plain", "table_nledit"),
        },
    }
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=2))
    plot(result, args.plot)
    print(json.dumps(result, indent=2))


def plot(result: dict, path: str) -> None:
    """Perplexity cost per condition (over a full-head condition) against the firing rate."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = sorted(result["ppl_points"], key=lambda p: p["firing"])
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    xs = [100 * p["firing"] for p in points]
    ax.plot(xs, [p["cost_over_full_head"] for p in points], "o-", label="nledit, changed positions")
    low = sorted(result.get("low_firing_run", {}).get("ppl_points", []), key=lambda p: p["firing"])
    if low:
        ax.plot(
            [100 * p["firing"] for p in low],
            [p["cost_over_full_head"] for p in low],
            "s--",
            color="tab:blue",
            alpha=0.6,
            label="nledit, narrower ranges (second run)",
        )
    ax.plot([0, 100], [0, 1], ":", color="grey", label="proportional")
    ratios = result["ratios"]
    plain = ratios["ppl_full_head_condition_speed_nledit_over_plain"]  # plain s / nledit s
    ax.axhline(plain, color="tab:red", ls="--", label="plain script, full head")
    ax.hlines(0.3, 0, 10, color="tab:green", lw=2, label="target: <= 0.3 at <= 10 % firing")
    ax.set_xlabel("positions where the gate changed the state (%)")
    ax.set_ylabel("seconds per condition / full head")
    ax.set_xlim(0, 100)
    ax.set_ylim(0, max(1.2, plain + 0.1))
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
