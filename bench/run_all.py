"""Run every benchmark and write docs/BENCHMARKS.md from the measured figures.

    .venv/bin/python bench/run_all.py                       # SmolLM2 (quickstart recipe)
    .venv/bin/python bench/run_all.py --recipe recipes/paper/gemma3_agnews.yaml

Each benchmark runs in its own process and reports ratios measured within that one run, so the
figures compare like with like on whatever machine runs them. Results are kept as JSON in
docs/benchmarks/ and the document is rendered from all of them.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scale import gpu_rows, render_rows

ROOT = Path(__file__).resolve().parents[1]
OWN_SECTIONS = {"scale": render_rows, "gpu": gpu_rows}
STORE = ROOT / "docs" / "benchmarks"
DOC = ROOT / "docs" / "BENCHMARKS.md"
BENCHES = {
    "fit": ("bench_fit.py", "fit pass / full forward (target <= 0.8); peak memory N vs 8N (+5%)"),
    "eval": ("bench_eval.py", "erasure table + ΔPPL / one plain pass (target <= 2.0)"),
    "export": ("bench_export.py", "tokens/s edited / base (>= 0.97); export / save_pretrained"),
}


def run(recipe: str, which: list[str], extra: dict[str, list[str]]) -> None:
    STORE.mkdir(parents=True, exist_ok=True)
    stem = Path(recipe).stem
    for name in which:
        script, _ = BENCHES[name]
        out = STORE / f"{stem}.{name}.json"
        cmd = [sys.executable, str(ROOT / "bench" / script), "--recipe", recipe, "--json", str(out)]
        cmd += extra.get(name, [])
        print("+", " ".join(cmd[1:]), flush=True)
        subprocess.run(cmd, check=True, cwd=ROOT)
        doc = json.loads(out.read_text())
        doc["command"] = " ".join(
            [".venv/bin/python", f"bench/{script}", "--recipe", recipe, *extra.get(name, [])]
        )
        out.write_text(json.dumps(doc, indent=2) + "\n")


def _row(label: str, value: float, target: str, ok: bool | None) -> str:
    verdict = "" if ok is None else ("met" if ok else "**missed**")
    return f"| {label} | {value:.3f} | {target} | {verdict} |"


def _plain_rows(doc: dict) -> list[str]:
    """nledit against the plain single-file script (``bench_plain.py``)."""
    r = doc["ratios"]
    fit, full = (
        r["fit_examples_per_s_nledit_over_plain"],
        r["ppl_full_head_condition_speed_nledit_over_plain"],
    )
    sel, firing = r["ppl_selective_cost_over_full_head"], r["selective_firing"]
    rows = [
        _row("fit examples/s, nledit / plain", fit, ">= 1.2", fit >= 1.2),
        _row("perplexity, full-head condition: speed nledit / plain", full, ">= 1.0", full >= 1.0),
        _row(
            "same, replayed from the last block (no changed-position outputs)",
            r["ppl_full_head_replayed_speed_over_plain"],
            "",
            None,
        ),
        _row(
            "erasure table (label probabilities): speed nledit / plain",
            r["table_speed_nledit_over_plain"],
            "",
            None,
        ),
        _row(f"the recipe's edit: cost / full head (firing {100 * firing:.1f} %)", sel, "", None),
    ]
    extra = doc.get("low_firing_run", {})  # a second run of narrower ranges (--only, --scales)
    low = [p for p in doc["ppl_points"] + extra.get("ppl_points", []) if p["firing"] <= 0.10]
    for p in low:
        ok = p["cost_over_full_head"] <= 0.3
        label = f"{p['condition']}: cost / full head (firing {100 * p['firing']:.1f} %)"
        rows.append(_row(label, p["cost_over_full_head"], "<= 0.3", ok))
    rows += [
        "",
        "Perplexity cost per condition against the share of positions its gate changed "
        "(the recipe's edit with its ranges scaled about their centres):",
        "",
        "![perplexity cost against firing rate](benchmarks/ppl_vs_firing.png)",
        "",
        "| condition | firing | cost / full head |",
        "|---|---|---|",
        *(
            f"| {p['condition']} | {100 * p['firing']:.1f} % | {p['cost_over_full_head']:.3f} |"
            for p in sorted(doc["ppl_points"], key=lambda p: p["firing"])
        ),
        "",
        *(
            [
                f"Narrower ranges, second run (`{extra['command']}`; full head there: "
                f"{extra['ppl_full_head_condition_speed_nledit_over_plain']:.3f}× the plain "
                "script):",
                "",
                "| condition | firing | cost / full head |",
                "|---|---|---|",
                *(
                    f"| {p['condition']} | {100 * p['firing']:.1f} % | "
                    f"{p['cost_over_full_head']:.3f} |"
                    for p in sorted(extra["ppl_points"], key=lambda p: p["firing"])
                ),
                "",
            ]
            if extra
            else []
        ),
        f"Examples: {doc['fit_examples']} fit, {doc['eval_examples']} evaluation; "
        f"perplexity tokens: {doc['ppl_tokens']}; medians of {doc['repeat']} interleaved runs; "
        f"batch size {doc['batch_size']} for both.",
    ]
    return rows


def _batch_rows(doc: dict) -> list[str]:
    """Throughput against batch size (``bench_batch.py``), the basis of ``batch_size: auto``."""
    fit, ppl = doc["fit_examples_per_s"], doc["ppl_tokens_per_s"]
    top_fit, top_ppl = max(fit.values()), max(ppl.values())
    rows = [
        f"| batch {s}: fit examples/s, perplexity tokens/s (share of the best) | "
        f"{fit[s]:.2f} ({fit[s] / top_fit:.2f}), {ppl[s]:.0f} ({ppl[s] / top_ppl:.2f}) | | |"
        for s in fit
    ]
    return [
        *rows,
        "",
        f"Fit rows: {doc['fit_examples']} queries of {doc['fit_mean_query_tokens']:.0f} tokens on "
        f"average after the cached prompt head; perplexity windows of {doc['ppl_window']} tokens.",
    ]


def render() -> str:
    parts = [
        "# Benchmarks",
        "",
        "Generated by `bench/run_all.py` from `docs/benchmarks/*.json`.",
        "",
    ]
    for path in sorted(STORE.glob("*.json")):
        doc = json.loads(path.read_text())
        stem, name = path.stem.rsplit(".", 1)
        if name in ("scale", "gpu"):  # sections of their own (bench/scale.py, bench/gpu.py)
            title = "Scale: cost against parameter count" if name == "scale" else ""
            title = title or f"Side by side on {stem} (`bench/gpu.sh`)"
            parts += [f"## {title}", "", *OWN_SECTIONS[name](doc), ""]
            continue
        m = doc.get("machine", {})
        parts += [
            f"## {stem}: {name}",
            "",
            f"    {doc.get('command', '')}",
            "",
            f"Machine: {m.get('cores')} cores, torch {m.get('torch')}, "
            f"transformers {m.get('transformers')}, {m.get('torch_threads')} threads.",
            "",
            "| figure | value | target | |",
            "|---|---|---|---|",
        ]
        if name == "fit":
            s, mem = doc["speed"], doc["memory"]
            parts.append(_row("fit pass / full forward", s["ratio"], "<= 0.8", s["ratio"] <= 0.8))
            if "ratio_vs_read_token_forward" in s:
                parts.append(
                    _row(
                        "fit pass / forward with logits at the read token only",
                        s["ratio_vs_read_token_forward"],
                        "",
                        None,
                    )
                )
            parts.append(
                _row(
                    f"peak RSS 8N / N - 1 (N={mem['n']})",
                    mem["increase"],
                    "<= +0.05",
                    mem["increase"] <= 0.05,
                )
            )
            parts.append(
                f"| fit pass, full forward (s, {s['examples']} examples) | "
                f"{s['fit_s']:.2f}, {s['full_forward_s']:.2f} | | |"
            )
            parts.append(
                f"| peak RSS N, 8N (MiB) | {mem['peak_mib_n']:.0f}, {mem['peak_mib_8n']:.0f} | | |"
            )
        elif name == "eval":
            parts.append(
                _row(
                    "fast table / plain pass", doc["fast_ratio"], "<= 2.0", doc["fast_ratio"] <= 2.0
                )
            )
            parts.append(_row("naive table / plain pass", doc["naive_ratio"], "(1 + 2C)", None))
            parts.append(
                f"| conditions, examples, windows | {doc['conditions']}, "
                f"{doc['examples']}, {doc['windows']} | | |"
            )
            if "labels_s" in doc:  # the split: label table (read token) and perplexity
                lab, ppl = doc["labels_s"], doc["perplexity_s"]
                parts.append(
                    f"| label table: fast / plain (s) | {lab['fast']:.1f} / {lab['plain']:.1f} "
                    f"= {lab['fast'] / lab['plain']:.2f} | | |"
                )
                parts.append(
                    f"| perplexity: fast / plain (s) | {ppl['fast']:.1f} / {ppl['plain']:.1f} "
                    f"= {ppl['fast'] / ppl['plain']:.2f} | | |"
                )
        elif name == "plain":
            parts += _plain_rows(doc)
        elif name == "batch":
            parts += _batch_rows(doc)
        elif name == "export":
            parts.append(
                _row(
                    "tokens/s edited / base (median)",
                    doc["throughput_ratio"],
                    ">= 0.97",
                    doc["throughput_ratio"] >= 0.97,
                )
            )
            parts.append(_row("export time / save_pretrained time", doc["export_ratio"], "", None))
        parts.append("")
    notes = ROOT / "docs" / "benchmark_notes.md"
    if notes.is_file():
        parts.append(notes.read_text())
    return "\n".join(parts) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--recipe", default="recipes/agnews_fewshot.yaml")
    ap.add_argument("--only", nargs="*", choices=sorted(BENCHES), default=sorted(BENCHES))
    ap.add_argument("--render", action="store_true", help="only rewrite the document")
    ap.add_argument("--eval-args", default="", help="extra arguments for bench_eval.py")
    args = ap.parse_args()
    if not args.render:
        run(args.recipe, args.only, {"eval": args.eval_args.split()})
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text(render())
    print(f"wrote {DOC}")


if __name__ == "__main__":
    main()
