"""`nledit eval`'s job: lm-evaluation-harness on an exported checkpoint and on its base.

The base is the same checkpoint loaded with every gate off (``nledit_enabled=False``): same
weights, same code path, so the difference is the edit alone. Results are merged into the
checkpoint's results.json, manifest and model card (``record``).

lm-eval runs the export's own code, so the export must first pass every integrity check
(``integrity.check_export``); afterwards only the hashes of the files written here are
updated, never those of files this job did not write.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from ..checkpoint.integrity import check_export, read_manifest
from ..checkpoint.portable import absolute_paths, portable_data, with_roots
from ..folders.atomic import scratch_dir
from .cache import base_identity, cache_key, cached_base, folder_identity
from .harness import HarnessOptions, lm_eval_command, metric_delta, run_lm_eval
from .record import merge_into_checkpoint
from .tasks import DEFAULT_TASKS, prepare_tasks, resolve_task_names

SCRATCH = "lmeval"  # task folders in the system temp folder, owned by nledit (outdir.scratch_dir)


def evaluate_export(out: Path, flags: Any, log: Any = print) -> dict[str, Any]:
    """lm-eval on the export ``out`` (and its base unless ``flags.no_base``), as the checked
    flags of `nledit eval` say; the figures are recorded in the export and returned."""
    check_export(out, "run its code under lm-eval", logits=True)
    with scratch_dir(SCRATCH) as work:
        lm = _evaluate(out, flags, work, log)
    check_export(out, "record lm-eval results in it")  # unchanged while lm-eval ran
    lm = portable_data(lm, with_roots(absolute_paths(lm)))  # no local path into the export
    merge_into_checkpoint(out, lm)
    return lm


def _evaluate(out: Path, args: Any, work: Path, log: Any) -> dict[str, Any]:
    names = list(args.tasks)  # validated: no empty name (flags.EvalFlags)
    own = [Path(p) for p in getattr(args, "include_path", None) or []]
    for folder in own:
        if not folder.is_dir():
            raise FileNotFoundError(f"--include-path {folder}: no such folder")
    include: Any = None
    if args.hub:
        tasks = [t.strip() for t in names]
    else:
        tasks = resolve_task_names(names)
        builtin = [t for t in tasks if t in DEFAULT_TASKS]
        if builtin and not args.data_dir:
            raise FileNotFoundError(
                f"--data-dir is required for the offline tasks {builtin} (or use --hub)"
            )
        if builtin:
            include = prepare_tasks(Path(args.data_dir), work, tasks=builtin)
    if own:
        include = [str(p) for p in own] + ([str(include)] if include else [])
    limit = int(args.limit) if args.limit is not None and args.limit >= 1 else args.limit
    common: dict[str, Any] = {
        "include_path": include,
        "limit": limit,
        "num_fewshot": args.num_fewshot,
        "batch_size": args.batch_size,
        "device": args.device,
        "dtype": args.dtype,
    }
    if "," in str(out):  # lm-eval runs it (model_args as a mapping); its shell form cannot
        log(f"(no lm_eval shell command: its --model_args cannot carry the comma in {out})")
    else:
        log(lm_eval_command(out, tasks, include, limit=limit, num_fewshot=args.num_fewshot))
    options = HarnessOptions(**common)
    edited = run_lm_eval(str(out), tasks, options)
    lm: dict[str, Any] = {"edited": edited}
    if not args.no_base:
        key = cache_key(
            {
                "base": base_identity(out, read_manifest(out)),
                "tasks": tasks,
                "task_files": folder_identity(own),
                "data": folder_identity([Path(args.data_dir)]) if include and args.data_dir else {},
                **{k: v for k, v in common.items() if k != "include_path"},
            }
        )
        base, hit = cached_base(
            key,
            lambda: run_lm_eval(
                str(out), tasks, replace(options, extra_model_args={"nledit_enabled": False})
            ),
        )
        log(f"base pass: {'cached' if hit else 'computed'} (key {key[:12]})")
        lm["base"] = base
        lm["delta"] = metric_delta(base, edited)
    return lm
