"""`nledit eval`: lm-evaluation-harness on an exported checkpoint and on its base.

The base is the same checkpoint loaded with every gate off (``nledit_enabled=False``): same
weights, same code path, so the difference is the edit alone. Results are merged into the
checkpoint's results.json, manifest and model card.

lm-eval runs the export's own code, so the export must first pass every integrity check
(``integrity.check_export``); afterwards only the hashes of the files written here are
updated, never those of files this command did not write.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..checkpoint.card import CardInfo, card_from_fields, write_card
from ..checkpoint.integrity import check_export, read_manifest
from ..checkpoint.manifest import CARD_METRICS
from ..checkpoint.portable import absolute_paths, portable_data, with_roots
from ..checkpoint.write import MANIFEST_FILE, RECIPE_FILE, sha256_file
from ..folders.atomic import scratch_dir
from ..lmeval.cache import base_identity, cache_key, cached_base, folder_identity
from ..lmeval.harness import HarnessOptions, lm_eval_command, metric_delta, run_lm_eval
from ..lmeval.tasks import DEFAULT_TASKS, prepare_tasks, resolve_task_names
from ..recipe.flags import checked_flags

SCRATCH = "lmeval"  # task folders in the system temp folder, owned by nledit (outdir.scratch_dir)


def _write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def merge_into_checkpoint(out: Path, lm: dict[str, Any]) -> None:
    """Add lm-eval figures to results.json, the manifest and the card, and their hashes."""
    results_path = out / "results.json"
    results = json.loads(results_path.read_text()) if results_path.is_file() else {}
    results["lm_eval"] = lm
    _write_atomic(results_path, json.dumps(results, indent=2, default=str) + "\n")
    manifest = json.loads((out / MANIFEST_FILE).read_text())
    metrics = manifest.setdefault("metrics", {})
    metrics["lm_eval"] = lm
    card_metrics = {k: metrics[k] for k in CARD_METRICS if metrics.get(k)}
    card_metrics |= {"erasure": metrics.get("erasure", []), "lm_eval": lm}
    recipe_yaml = (out / RECIPE_FILE).read_text(encoding="utf-8")
    if isinstance(manifest.get("card"), dict):  # exports since the card block was added
        write_card(out, card_from_fields(manifest["card"], card_metrics, recipe_yaml))
    else:
        write_card(out, _card_of_older_export(out, manifest, card_metrics, recipe_yaml))
    for name in ("results.json", "README.md"):  # the files written above, and only those
        manifest["files"][name] = sha256_file(out / name)
    _write_atomic(out / MANIFEST_FILE, json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def _card_of_older_export(
    out: Path, manifest: dict[str, Any], card_metrics: dict[str, Any], recipe_yaml: str
) -> CardInfo:
    """The card of an export whose manifest has no ``card`` block, from what it does hold."""
    config = json.loads((out / "config.json").read_text(encoding="utf-8"))
    return CardInfo(
        base_model=manifest["base_model"]["origin"],
        hub_base_model=manifest["base_model"].get("hub_id"),
        weights=manifest.get("weights", "copy"),
        method=manifest.get("method", "range"),
        auto_class=next(
            (k for k in config.get("auto_map", {}) if k.startswith("AutoModelFor")),
            "AutoModelForCausalLM",
        ),
        base_revision=manifest["base_model"].get("revision"),
        edits=manifest.get("edits", []),
        metrics=card_metrics,
        recipe_yaml=recipe_yaml,
    )


def cmd_eval(args: argparse.Namespace) -> int:
    args = argparse.Namespace(**checked_flags("eval", args).model_dump())
    out = Path(args.out)
    check_export(out, "run its code under lm-eval", logits=True)
    with scratch_dir(SCRATCH) as work:
        lm = _evaluate(out, args, work)
    check_export(out, "record lm-eval results in it")  # unchanged while lm-eval ran
    lm = portable_data(lm, with_roots(absolute_paths(lm)))  # no local path into the export
    merge_into_checkpoint(out, lm)
    print(json.dumps({k: v for k, v in lm.items() if k != "_meta"}, indent=2, default=str))
    return 0


def _evaluate(out: Path, args: argparse.Namespace, work: Path) -> dict[str, Any]:
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
        print(f"(no lm_eval shell command: its --model_args cannot carry the comma in {out})")
    else:
        print(lm_eval_command(out, tasks, include, limit=limit, num_fewshot=args.num_fewshot))
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
        print(f"base pass: {'cached' if hit else 'computed'} (key {key[:12]})")
        lm["base"] = base
        lm["delta"] = metric_delta(base, edited)
    return lm
