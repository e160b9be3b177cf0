"""`nledit check`: validate a recipe and describe the plan without loading any weights."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .arch import ArchError, resolve_layer
from .models import _pypi_location
from .operators import needs_leace
from .recipe import Recipe, edit_name

DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}


@dataclass
class Plan:
    model: str
    where: str
    n_layers: int | None = None
    hidden_size: int | None = None
    n_params: int | None = None
    edits: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    memory_bytes: int | None = None

    def render(self) -> str:
        lines = [f"model     {self.model}  ({self.where})"]
        if self.n_layers:
            lines.append(f"layers    {self.n_layers}, hidden size {self.hidden_size}")
        for e in self.edits:
            k = e.get("neurons")
            where = f"edit      {e['name']}: {', '.join(e['concepts'])} at layer {e['layer']}, "
            if e["operator"] == "leace":  # no neuron selection: the whole hidden state
                lines.append(where + "LEACE eraser on the whole hidden state, operator leace")
                continue
            lines.append(
                where
                + f"{e['saliency']} saliency, top {e['top_p']:.0%}"
                + (f" = {k} neurons" if k else "")
                + f", tau {e['tau']}, operator {e['operator']}"
            )
        if self.memory_bytes:
            lines.append(
                f"memory    about {self.memory_bytes / 2**30:.2f} GiB (weights + statistics)"
            )
        lines += [f"problem   {p}" for p in self.problems]
        return "\n".join(lines)


def _gguf_shape(path: Path) -> tuple[int | None, int | None, int | None]:
    from gguf import GGUFReader

    reader = GGUFReader(str(path))
    arch = bytes(reader.fields["general.architecture"].parts[-1]).decode()

    def value(key: str) -> int | None:
        f = reader.fields.get(f"{arch}.{key}")
        return int(f.parts[-1][0]) if f is not None else None

    n_params = sum(int(t.n_elements) for t in reader.tensors)
    return value("block_count"), value("embedding_length"), n_params


def _config_shape(folder: Path) -> tuple[int | None, int | None, int | None]:
    cfg = json.loads((folder / "config.json").read_text())
    cfg = cfg.get("text_config", cfg)
    n_layers = cfg.get("num_hidden_layers") or cfg.get("n_layer") or cfg.get("n_layers")
    d = cfg.get("hidden_size") or cfg.get("n_embd") or cfg.get("dim")
    size = sum(p.stat().st_size for p in folder.glob("*.safetensors"))
    n_params = size // DTYPE_BYTES.get(str(cfg.get("torch_dtype", cfg.get("dtype"))), 4) or None
    return n_layers, d, n_params


def make_plan(recipe: Recipe) -> Plan:
    mid = recipe.model.id
    plan = Plan(mid, "Hub")
    try:
        path = _pypi_location(mid[5:]) if mid.startswith("pypi:") else Path(mid).expanduser()
    except Exception as err:  # an absent wheel: say so, keep planning
        plan.problems.append(str(err))
        path = Path(os.devnull)
    shape: tuple[int | None, int | None, int | None] = (None, None, None)
    if path.is_file() and path.suffix == ".gguf":
        plan.where, shape = f"GGUF file {path}", _gguf_shape(path)
    elif path.is_dir() and recipe.model.gguf_file:
        plan.where, shape = "GGUF file", _gguf_shape(path / recipe.model.gguf_file)
    elif path.is_dir() and (path / "config.json").is_file():
        plan.where, shape = f"local folder {path}", _config_shape(path)
    elif path.exists() or mid.startswith((".", "/", "~")):
        hint = " (train it first: nledit train-head RECIPE)" if recipe.train_head else ""
        plan.problems.append(f"model.id: no model at {mid}{hint}")
    plan.n_layers, plan.hidden_size, plan.n_params = shape
    for i, edit in enumerate(recipe.edits):
        entry: dict[str, Any] = {
            "name": edit_name(edit, i),
            "concepts": edit.concepts,
            "layer": edit.layer,
            "saliency": edit.saliency,
            "top_p": edit.top_p,
            "tau": edit.tau,
            "operator": edit.operator.name,
        }
        if plan.n_layers:
            try:
                entry["layer"] = resolve_layer(edit.layer, plan.n_layers)
            except ArchError as err:
                plan.problems.append(f"edits.{i}.layer: {err}")
        if plan.hidden_size:
            entry["neurons"] = max(1, round(edit.top_p * plan.hidden_size))
        plan.edits.append(entry)
    if plan.n_params and plan.hidden_size:
        weights = plan.n_params * DTYPE_BYTES[recipe.model.dtype]
        stats = len(recipe.edits) * 64 * plan.hidden_size * 4 * 8
        if needs_leace(recipe.edits, recipe.eval.baselines):
            stats += len(recipe.edits) * plan.hidden_size**2 * 8  # LEACE: a d x d covariance
        plan.memory_bytes = weights + stats
    plan.problems += missing_files(recipe)
    return plan


def _looks_local(value: str) -> bool:
    """A file path rather than a Hub id (``name`` or ``owner/name[:config]``)."""
    return bool(Path(value).suffix) or value.startswith((".", "/", "~"))


def missing_files(recipe: Recipe) -> list[str]:
    """``field: no such file`` for every local data or text file the recipe names."""
    sources = {
        "data.source": recipe.data.source,
        "data.eval_source": recipe.data.eval_source,
        "eval.perplexity_source": recipe.eval.perplexity_source
        if recipe.eval.perplexity_windows
        else None,
    }
    for i, edit in enumerate(recipe.edits):
        if edit.operator.name == "mean":
            sources[f"edits.{i}.operator.mean_source"] = edit.operator.mean_source
    return [
        f"{where}: no such file: {value}"
        for where, value in sources.items()
        if value and _looks_local(value) and not Path(value).expanduser().is_file()
    ]
