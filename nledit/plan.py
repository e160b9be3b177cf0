"""`nledit check`: validate a recipe and describe the plan without loading any weights."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .data.files import not_a_file, read_text
from .data.plan import demonstration_lines, demonstration_warnings, estimate_seconds
from .errors import FlagError
from .fitting.saliency_registry import top_count
from .folders.preflight import output_problems
from .models.arch import ArchError, resolve_layer
from .models.batching import auto_batch_size, available_memory
from .models.config_facts import shape_problem
from .models.cost_basis import Estimate, estimate
from .models.hub_shape import HubShapeUnknown, hub_shape
from .models.loading import ModelLoadError, gguf_shape, load_on_meta, pypi_location, refuse_export
from .recipe import TRAINED_BASE, Recipe, edit_name
from .recipe.flags import check_device
from .recipe.ignored import ignored_fields
from .runtime.operators import needs_leace

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
    cost: Estimate | None = None  # measured cost at the nearest sizes (``cost_basis``)
    weights_mode: str = "copy"
    demos: list[str] = field(default_factory=list)  # per class: count and first demonstration
    warnings: list[str] = field(default_factory=list)
    seconds: tuple[float, str] | None = None  # estimate and its basis
    batch: str | None = None  # how `batch_size: auto` resolves

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
                + f", tau {e['tau']}"
                + (" trimmed" if e.get("trim") else "")
                + f", operator {e['operator']}"
                + (f", quorum {e['quorum']}" if e.get("quorum") is not None else "")
                + (f" (preset {e['preset']})" if e.get("preset") else "")
            )
        if self.memory_bytes:
            what = "fit's peak, measured" if self.cost else "weights + statistics"
            lines.append(f"memory    about {self.memory_bytes / 2**30:.2f} GiB ({what})")
        if self.cost:
            c = self.cost
            disk = (
                "a few MB (output.weights: reference)"
                if self.weights_mode == "reference"
                else f"about {c.export_bytes / 2**30:.2f} GiB (the weights, copied), "
                f"written in about {c.export_s:.0f} s"
            )
            lines.append(f"export    {disk}")
            lines.append(f"verify    about {c.verify_peak_bytes / 2**30:.2f} GiB peak")
            lines.append(f"measured  {c.basis}")
        if self.batch:
            lines.append(f"batch     {self.batch}")
        lines += [f"shots     {d}" for d in self.demos]
        if self.seconds:
            secs, basis = self.seconds
            lines.append(f"time      about {secs / 60:.1f} min ({basis})")
        lines += [f"warning   {w}" for w in self.warnings]
        lines += [f"problem   {p}" for p in self.problems]
        return "\n".join(lines)


_LAYER_KEYS = ("num_hidden_layers", "n_layer", "n_layers")
_WIDTH_KEYS = ("hidden_size", "n_embd", "dim")


def _first_key(cfg: dict[str, Any], keys: tuple[str, ...]) -> tuple[str, Any]:
    """The first of ``keys`` that ``cfg`` holds, with its value (the first key and None if none)."""
    return next(((k, cfg[k]) for k in keys if k in cfg), (keys[0], None))


def _config_shape(folder: Path) -> tuple[int | None, int | None, int | None]:
    try:
        cfg = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ModelLoadError(f"model.id: {folder / 'config.json'} cannot be read ({err})") from None
    if not isinstance(cfg, dict):
        raise ModelLoadError(f"model.id: {folder / 'config.json'} is not a JSON object")
    cfg = cfg.get("text_config", cfg)
    if not isinstance(cfg, dict):
        raise ModelLoadError(f"model.id: {folder / 'config.json'}: text_config is not an object")
    n_layers, d = _first_key(cfg, _LAYER_KEYS), _first_key(cfg, _WIDTH_KEYS)
    for kind, (key, value) in (("layers", n_layers), ("hidden size", d)):
        if problem := shape_problem(kind, f"config.json: {key}", value):
            raise ModelLoadError(f"model.id: cannot load '{folder}': {problem}")
    n_layers, d = n_layers[1], d[1]
    size = sum(p.stat().st_size for p in folder.glob("*.safetensors"))
    n_params = size // DTYPE_BYTES.get(str(cfg.get("torch_dtype", cfg.get("dtype"))), 4) or None
    return n_layers, d, n_params


def _shape(plan: Plan, recipe: Recipe, path: Path) -> tuple[int | None, int | None, int | None]:
    """The model's shape from a GGUF header, a local config or the Hub config.json alone (a
    warning saying what was tried when that cannot be fetched); sets ``plan.where``."""
    mid = recipe.model.id
    if path.is_file() and path.suffix == ".gguf":
        plan.where = f"GGUF file {path}"
        return gguf_shape(path)
    if path.is_dir() and recipe.model.gguf_file:
        plan.where = "GGUF file"
        gguf = path / recipe.model.gguf_file
        if not gguf.is_file():
            raise ModelLoadError(f"model.gguf_file: no such file: {gguf}")
        return gguf_shape(gguf)
    if path.is_dir() and (path / "config.json").is_file():
        plan.where = f"local folder {path}"
        refuse_export(path, mid)
        shape = _config_shape(path)
        load_on_meta(path, recipe.model.task)
        return shape
    if path.exists() or mid.startswith((".", "/", "~")):
        hint = " (train it first: nledit train-head RECIPE)" if recipe.train_head else ""
        raise ModelLoadError(f"model.id: no model at {mid}{hint}")
    try:  # a Hub id: its config.json alone gives the shape
        shape = hub_shape(mid, recipe.model.revision, recipe.model.task)
    except HubShapeUnknown as err:
        plan.warnings.append(str(err))
        return None, None, None
    plan.where = "Hub, shape from its config.json"
    return shape


def make_plan(recipe: Recipe) -> Plan:
    """What a recipe will do, and every problem found without loading weights."""
    if recipe.model.id == TRAINED_BASE and recipe.train_head is not None:
        # fine-tuned by `nledit run` first: planned from the model it is tuned from
        recipe = recipe.updated(model=recipe.model.updated(id=recipe.train_head.base))
    mid = recipe.model.id
    plan = Plan(mid, "Hub")
    try:
        path = pypi_location(mid[5:]) if mid.startswith("pypi:") else Path(mid).expanduser()
    except Exception as err:  # an absent wheel: say so, keep planning
        plan.problems.append(str(err))
        path = Path(os.devnull)
    try:
        plan.n_layers, plan.hidden_size, plan.n_params = _shape(plan, recipe, path)
    except ModelLoadError as err:
        plan.problems.append(str(err))
    for i, edit in enumerate(recipe.edits):
        entry: dict[str, Any] = {
            "name": edit_name(edit, i),
            "concepts": edit.concepts,
            "layer": edit.layer,
            "saliency": edit.saliency,
            "top_p": edit.top_p,
            "tau": edit.tau,
            "operator": edit.operator.name,
            "trim": edit.trim_overlap,
            "quorum": edit.quorum,
            "preset": edit.preset,
        }
        if plan.n_layers:
            try:
                entry["layer"] = resolve_layer(edit.layer, plan.n_layers)
            except ArchError as err:
                plan.problems.append(f"edits.{i}.layer: {err}")
        if plan.hidden_size:
            entry["neurons"] = top_count(
                edit.top_p, plan.hidden_size, edit.top_rounding, edit.top_k
            )
        plan.edits.append(entry)
    if plan.n_params and plan.hidden_size:
        weights = plan.n_params * DTYPE_BYTES[recipe.model.dtype]
        stats = len(recipe.edits) * 64 * plan.hidden_size * 4 * 8
        if needs_leace(recipe.edits, recipe.eval.baselines):
            stats += len(recipe.edits) * plan.hidden_size**2 * 8  # LEACE: a d x d covariance
        plan.cost = estimate(plan.n_params, recipe.model.dtype)
        plan.weights_mode = recipe.output.weights
        peak = plan.cost.fit_peak_bytes if plan.cost else weights
        plan.memory_bytes = int(peak) + stats
    if recipe.batch_size == "auto":
        plan.batch = "auto (resolved when the model loads: its shape is not known here)"
        if plan.n_params and plan.hidden_size and plan.n_layers:
            free = available_memory(recipe.model.device)
            shape = (plan.n_layers, plan.hidden_size, plan.n_params)
            plan.batch = auto_batch_size(recipe, *shape, free).describe()
    plan.problems += missing_files(recipe) + ignored_fields(recipe)
    if recipe.model.device_map is None:
        try:
            check_device(recipe.model.device, "model.device")
        except FlagError as err:
            plan.problems.append(str(err))
    plan.problems += data_problems(recipe, plan)
    plan.problems += output_problems([("output.dir", recipe.output.dir)])
    return plan


def data_problems(recipe: Recipe, plan: Plan | None = None) -> list[str]:
    """Problems of the local concept data (rows, labels, enough examples), read without a model;
    with ``plan``, also the demonstrations per class and a time estimate."""
    from .data.dataset import DataError, check_concepts, is_local_source, load_concept_data

    spec = recipe.data
    local = [s for s in (spec.source, spec.eval_source) if s]
    if not local or not all(is_local_source(s) and Path(s).expanduser().is_file() for s in local):
        return []  # Hub data is loaded by the run itself; missing files are reported already

    try:
        data = load_concept_data(
            spec, recipe.prompt.shots, recipe.seed, recipe.prompt.label_words, 0, recipe.prompt
        )
        check_concepts(recipe, data.label_names)  # names from labels.json or the data
    except DataError as err:
        return str(err).splitlines()
    if plan is not None:
        lm = recipe.model.task != "sequence-classification" and spec.token_classes is None
        if lm:
            plan.demos = demonstration_lines(recipe, data.shots, data.label_names)
            plan.warnings += demonstration_warnings(data.shots, data.label_names)
        plan.seconds = estimate_seconds(recipe, data, plan.n_params, plan.n_layers)
    return []


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
            sources[f"edits.{i}.operator.mean_source"] = edit.operator.option("mean_source")
    problems = []
    for where, value in sources.items():
        if not value or not _looks_local(value):
            continue
        path = Path(value).expanduser()
        if not path.is_file():
            problems.append(f"{where}: {not_a_file(path)}")
        elif where != "data.source" and where != "data.eval_source":  # plain text files
            try:
                read_text(path, where, ValueError)
            except ValueError as err:
                problems.append(str(err))
    return problems
