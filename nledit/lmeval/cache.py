"""The base model's lm-eval results, cached by base identity and task settings.

``nledit eval`` runs every task twice, on the edited checkpoint and on its base (every gate
off). The base pass depends only on the base weights and the task settings, not on the edit,
so a repeated evaluation (another edit of the same base, or the same command again) reads it
from ``<nledit cache>/lmeval-base/<key>.json`` instead of running it.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from ..models.loading import cache_dir


def base_identity(out: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """What identifies the base of export ``out``: its weight files' sha256 (from the
    manifest, or the weight-free reference in config.json) and its architecture."""
    config = json.loads((out / "config.json").read_text(encoding="utf-8"))
    block = config.get("nledit") or {}
    files = manifest.get("files") or {}
    weights = {n: files[n] for n in manifest.get("base_weights") or [] if n in files}
    if block.get("base_weights"):
        weights = dict(block["base_weights"].get("files") or {})
    return {"weights": weights, "architecture": block.get("base_architecture")}


def folder_identity(folders: Iterable[Path]) -> dict[str, str]:
    """sha256 of every file under ``folders`` (task YAML and their local data), by path."""
    out: dict[str, str] = {}
    for root in folders:
        for p in sorted(Path(root).rglob("*")):
            if p.is_file():
                out[f"{Path(root).name}/{p.relative_to(root).as_posix()}"] = hashlib.sha256(
                    p.read_bytes()
                ).hexdigest()
    return out


def cache_key(parts: dict[str, Any]) -> str:
    """A stable key over JSON-able ``parts``."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def cached_base(key: str, run: Callable[[], dict[str, Any]]) -> tuple[dict[str, Any], bool]:
    """(results, whether they came from the cache): ``run()`` only on a miss, then stored."""
    path = cache_dir() / "lmeval-base" / f"{key}.json"
    if path.is_file():
        try:
            return json.loads(path.read_text(encoding="utf-8")), True
        except ValueError:  # a damaged entry is recomputed
            pass
    result = run()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(result, default=str), encoding="utf-8")
    tmp.replace(path)
    return result, False
