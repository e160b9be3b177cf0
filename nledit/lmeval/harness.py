"""Run lm-evaluation-harness on nledit checkpoints, offline.

Two tasks read local files instead of the Hub: ``nledit_mmlu`` (a group of one task per MMLU
subject; zero-shot unless ``num_fewshot`` is given, few-shot examples from the dev split) and
``nledit_wikitext`` (rolling log-likelihood over the WikiText-2 test articles). Their names never
clash with lm-eval's own ``mmlu`` and ``wikitext``, which keep working for online users.

The YAML files shipped in ``nledit/tasks`` are templates that ``lmeval_tasks.prepare_tasks`` fills
in for one data directory (its folder goes to ``--include_path``); ``run_lm_eval`` then calls
``lm_eval.simple_evaluate`` with the ``hf`` model, so every score is lm-eval's own.
"""

from __future__ import annotations

import math
import shlex
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..checkpoint.files import MANIFEST_FILE, MODELING_FILE
from ..checkpoint.integrity import check_export
from .tasks import DEFAULT_TASKS, TaskDataError

ModelArg = str | int | float | bool


@dataclass(frozen=True)
class HarnessOptions:
    """How lm-eval runs a checkpoint (``run_lm_eval``; ``compare`` uses the same for both)."""

    include_path: Path | Sequence[str] | None = None  # folders of extra task YAML files
    limit: int | float | None = None  # examples per task (a fraction below 1)
    num_fewshot: int | None = None
    batch_size: int | str = 1
    device: str = "cpu"
    dtype: str = "auto"
    trust_remote_code: bool = True
    # to lm-eval's ``HFLM`` as well, e.g. ``{"max_length": 2048}``
    extra_model_args: Mapping[str, ModelArg] | None = None


def run_lm_eval(
    model_path: str | Path, tasks: Sequence[str], options: HarnessOptions | None = None
) -> dict[str, Any]:
    """Evaluate a checkpoint folder with lm-eval's ``hf`` model; return compact metrics.

    Returns ``{task: {metric: value}, "_meta": {...}}`` with lm-eval's ``,none`` filter suffix
    stripped; groups (``nledit_mmlu``) carry their aggregate next to each subject's own row.
    """
    import lm_eval

    o = options or HarnessOptions()
    folder = Path(model_path)
    marked = any((folder / name).exists() for name in (MANIFEST_FILE, MODELING_FILE))
    if o.trust_remote_code and folder.is_dir() and marked:
        check_export(folder, "run its code under lm-eval")  # an nledit export: only its run-time
    names = list(tasks)
    model_args: dict[str, ModelArg] = {
        "pretrained": str(model_path),
        "trust_remote_code": o.trust_remote_code,
        "dtype": o.dtype,
        **(o.extra_model_args or {}),
    }
    start = time.perf_counter()
    results = lm_eval.simple_evaluate(
        model="hf",
        model_args=model_args,
        tasks=names,
        num_fewshot=o.num_fewshot,
        batch_size=o.batch_size,
        device=o.device,
        limit=o.limit,
        task_manager=_task_manager(o.include_path, names),
        log_samples=False,
    )
    if results is None:  # only on non-zero ranks of a distributed run
        raise RuntimeError("lm-eval returned no results in this process")
    compact: dict[str, Any] = summarize(results)
    n_samples = {k: v.get("effective") for k, v in results.get("n-samples", {}).items()}
    for task, metrics in results["results"].items():  # groups report their size here
        if task not in n_samples and "sample_len" in metrics:
            n_samples[task] = metrics["sample_len"]
    compact["_meta"] = {
        "lm_eval": lm_eval.__version__,
        "tasks": names,
        "limit": o.limit,
        "num_fewshot": o.num_fewshot,
        "model_args": model_args,
        "batch_size": o.batch_size,
        "device": o.device,
        "include_path": None
        if o.include_path is None
        else [
            str(p)
            for p in (
                [o.include_path] if isinstance(o.include_path, str | Path) else o.include_path
            )
        ],
        "n_samples": n_samples,
        "task_versions": dict(results.get("versions", {})),
        "seconds": round(time.perf_counter() - start, 1),
    }
    return compact


def _task_manager(include_path: Path | Sequence[str] | None, names: Sequence[str]) -> Any:
    """Index only the include path(s) when they hold every task: lm-eval's own index takes
    ~13 s. An unknown task name is a ``TaskDataError`` naming it."""
    from lm_eval.tasks import TaskManager

    if include_path is None:
        missing = [n for n in names if n.startswith("nledit_")]
        if missing:
            raise TaskDataError(f"{', '.join(missing)} need include_path (from prepare_tasks)")
        manager = TaskManager()
    else:
        paths = [str(include_path)] if isinstance(include_path, str | Path) else list(include_path)
        bad = [p for p in paths if not Path(p).is_dir()]
        if bad:
            raise TaskDataError(f"include path {bad[0]} is not a folder")
        local = TaskManager(include_path=paths, include_defaults=False)
        if all(name in local.all_tasks for name in names):
            return local
        manager = TaskManager(include_path=paths)
    unknown = [n for n in names if n not in manager.all_tasks]
    if unknown:
        raise TaskDataError(
            f"unknown lm-eval task(s) {unknown} (give --include-path for local ones)"
        )
    return manager


def summarize(results: Mapping[str, Any]) -> dict[str, dict[str, float | None]]:
    """``results["results"]`` without aliases, sizes and ``,none`` suffixes; NaN/inf -> None."""
    compact: dict[str, dict[str, float | None]] = {}
    for task, metrics in results["results"].items():
        row: dict[str, float | None] = {}
        for key, value in metrics.items():
            numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
            if key == "sample_len" or not numeric:
                continue  # a size, an "alias", an "N/A" stderr
            row[key.removesuffix(",none")] = float(value) if math.isfinite(value) else None
        compact[task] = row
    return compact


def compare(
    base_path: str | Path,
    edited_path: str | Path,
    tasks: Sequence[str],
    options: HarnessOptions | None = None,
) -> dict[str, Any]:
    """Evaluate the base and the edited checkpoint the same way; ``delta`` is edited - base."""
    base = run_lm_eval(base_path, tasks, options)
    edited = run_lm_eval(edited_path, tasks, options)
    return {"base": base, "edited": edited, "delta": metric_delta(base, edited)}


def metric_delta(base: Mapping[str, Any], edited: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    """edited - base for every metric both runs report (standard errors left out)."""
    delta: dict[str, dict[str, float]] = {}
    for task, metrics in edited.items():
        if task.startswith("_") or task not in base:
            continue
        row = {
            name: value - base[task][name]
            for name, value in metrics.items()
            if not name.endswith("_stderr")
            and value is not None
            and base[task].get(name) is not None
        }
        if row:
            delta[task] = row
    return delta


def lm_eval_command(
    model_path: str | Path,
    tasks: Sequence[str] = DEFAULT_TASKS,
    include_path: Path | str | Sequence[str] | None = None,
    *,
    limit: int | float | None = None,
    num_fewshot: int | None = None,
    batch_size: int | str | None = None,
    device: str | None = None,
    dtype: str | None = None,
    trust_remote_code: bool = True,
    extra_model_args: Mapping[str, ModelArg] | None = None,
) -> str:
    """The ``lm_eval`` shell command equivalent to ``run_lm_eval`` (for docs and model cards)."""
    if "," in str(model_path):
        raise ValueError(f"lm_eval --model_args cannot carry a path with a comma: {model_path}")
    model_args = f"pretrained={model_path}"
    if trust_remote_code:
        model_args += ",trust_remote_code=True"
    if dtype is not None:
        model_args += f",dtype={dtype}"
    for key, value in (extra_model_args or {}).items():
        model_args += f",{key}={value}"
    argv = ["lm_eval", "--model", "hf", "--model_args", model_args, "--tasks", ",".join(tasks)]
    paths = [include_path] if isinstance(include_path, str | Path) else include_path or []
    for path in paths:
        argv += ["--include_path", str(path)]
    for flag, value in (
        ("--num_fewshot", num_fewshot),
        ("--limit", limit),
        ("--batch_size", batch_size),
        ("--device", device),
    ):
        if value is not None:
            argv += [flag, str(value)]
    return shlex.join(argv)
