"""Table 4 analogue: zero-shot MMLU through lm-eval, base vs range vs neuron masking.

One concept's edit (the recipe's first edit, its first concept, unless named) is fitted alone,
exported twice (``output.method: range`` and ``neuron``) into a scratch folder, and each
checkpoint is scored by lm-eval's ``hf`` model on the offline ``nledit_mmlu`` task; the base is
the range checkpoint loaded with ``nledit_enabled=False``. The checkpoints are deleted after.
"""

from __future__ import annotations

import dataclasses
import math
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from nledit.fitting.recipe_fit import fit
from nledit.lmeval.harness import HarnessOptions, run_lm_eval
from nledit.lmeval.tasks import TASK_MMLU, prepare_tasks
from nledit.pipeline import export_fitted
from nledit.recipe import load_recipe

METHODS = ("base", "range", "neuron")


def mmlu_block(
    path: Path, data_dir: Path, limit: int, concept: str | None = None, batch_size: int = 4
) -> dict[str, Any]:
    """MMLU accuracy per method for one concept's edit of the recipe at ``path``."""
    recipe, _ = load_recipe(path)
    edit = recipe.edits[0]
    concept = concept or edit.concepts[0]
    if concept not in edit.concepts:
        raise ValueError(f"{path}: concept {concept!r} is not in edits.0.concepts {edit.concepts}")
    one = edit.model_dump(mode="json", exclude_defaults=True) | {"concepts": [concept]}
    overrides = {"edits": [one], "eval.baselines": ["neuron"], "eval.enabled": False}
    sub, text = load_recipe(path, overrides)
    t0 = time.perf_counter()
    fitted = fit(sub, text)
    work = Path(tempfile.mkdtemp(prefix="nledit-mmlu-"))
    try:
        include = prepare_tasks(data_dir, work / "tasks", tasks=[TASK_MMLU])
        folders = {}
        for method in ("range", "neuron"):
            output = sub.output.updated(method=method)
            variant = dataclasses.replace(fitted, recipe=sub.updated(output=output))
            folders[method] = export_fitted(variant, work / method, None, False)
        runs = {"base": (folders["range"], {"nledit_enabled": False})}
        runs |= {m: (folders[m], {}) for m in ("range", "neuron")}
        scores: dict[str, Any] = {}
        for method, (folder, extra) in runs.items():
            options = HarnessOptions(
                include_path=include, limit=limit, batch_size=batch_size, extra_model_args=extra
            )
            res = run_lm_eval(folder, [TASK_MMLU], options)
            acc, n = res[TASK_MMLU]["acc"], res["_meta"]["n_samples"].get(TASK_MMLU)
            stderr = res[TASK_MMLU].get("acc_stderr")
            if stderr is None and n:  # lm-eval leaves it out for small groups: binomial
                stderr = math.sqrt(acc * (1 - acc) / n)
            scores[method] = {
                "acc": acc,
                "acc_stderr": stderr,
                "n": n,
                "seconds": res["_meta"]["seconds"],
            }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {
        "edit": sub.edits[0].name or "edit0",
        "concept": concept,
        "operator": sub.edits[0].operator.name,
        "limit_per_subject": limit,
        "scores": scores,
        "seconds": time.perf_counter() - t0,
    }


def mmlu_table(block: dict[str, Any]) -> str:
    """Markdown: accuracy and its change per method."""
    scores = block["scores"]
    base = scores["base"]["acc"]
    rows = ["| method | MMLU acc | ± stderr | questions | Δ vs base |", "|---|---|---|---|---|"]
    for method in METHODS:
        s = scores[method]
        err = "" if s.get("acc_stderr") is None else f"{s['acc_stderr']:.3f}"
        delta = "" if method == "base" else f"{s['acc'] - base:+.3f}"
        rows.append(f"| {method} | {s['acc']:.3f} | {err} | {s['n']} | {delta} |")
    return "\n".join(rows)
