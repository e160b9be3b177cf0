"""Training time and held-out accuracy of the fine-tuned bases of the shipped recipes
(``train_head`` mode answer), one torch thread.

    OMP_NUM_THREADS=1 python bench/bench_finetune.py                  # every finetuned_*.yaml
    OMP_NUM_THREADS=1 python bench/bench_finetune.py recipes/finetuned_agnews.yaml --json r.json

Each recipe's base is trained into a scratch folder (never nledit's cache), so the figures are
those of a first run on a fresh machine. Prints wall and CPU seconds of loading and training,
and the held-out balanced accuracy with its bootstrap 95 % interval after the last epoch.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import torch

from nledit.models.loading import HEAD_RECORD
from nledit.recipe import load_recipe
from nledit.training.answer import check_answer_settings
from nledit.training.base_cache import train

ROOT = Path(__file__).resolve().parents[1]


def cpu_seconds() -> float:
    """CPU time this process has used (user + system)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def measure(path: Path, scratch: Path) -> dict[str, object]:
    """Train ``path``'s base into ``scratch``; its timings and held-out figures."""
    recipe, _ = load_recipe(path)
    spec = recipe.train_head
    if spec is None or spec.mode != "answer":
        raise SystemExit(f"{path}: no train_head section in mode answer")
    prompt = check_answer_settings(spec, recipe.prompt)
    out = scratch / path.stem
    wall, cpu = time.perf_counter(), cpu_seconds()
    result = train(spec.updated(out=str(out)), prompt, log=lambda *_: None)
    record = json.loads((out / HEAD_RECORD).read_text(encoding="utf-8"))
    return {
        "recipe": path.name,
        "n_train": result.n_train,
        "n_eval": result.n_eval,
        "epochs": spec.epochs,
        "train_layers": spec.train_layers,
        "load_s": round(result.timings["load_s"], 1),
        "train_s": round(result.timings["train_s"], 1),
        "wall_s": round(time.perf_counter() - wall, 1),
        "cpu_s": round(cpu_seconds() - cpu, 1),
        "balanced_acc": round(record["balanced_acc"], 3),
        "balanced_acc_ci": [round(x, 3) for x in record["balanced_acc_ci"]],
        "per_class": {k: round(v, 3) for k, v in record["per_class"].items()},
        "per_epoch": [round(e["balanced_acc"], 3) for e in record["epochs"]],
    }


def main() -> None:
    """Measure every recipe given (default: recipes/finetuned_*.yaml) and print one line each."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("recipes", nargs="*", type=Path)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    paths = args.recipes or sorted((ROOT / "recipes").glob("finetuned_*.yaml"))
    rows = []
    with tempfile.TemporaryDirectory(prefix="nledit-bench-ft-") as scratch:
        for path in paths:
            row = measure(path, Path(scratch))
            rows.append(row)
            lo, hi = row["balanced_acc_ci"]  # type: ignore[misc]
            print(
                f"{row['recipe']}: {row['n_train']} examples x {row['epochs']} epochs, top "
                f"{row['train_layers']} layers: train {row['train_s']}s (wall {row['wall_s']}s, "
                f"cpu {row['cpu_s']}s); held-out balanced accuracy {row['balanced_acc']} "
                f"[{lo}, {hi}] on {row['n_eval']} (per epoch {row['per_epoch']})",
                flush=True,
            )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    sys.exit(0)


if __name__ == "__main__":
    main()
