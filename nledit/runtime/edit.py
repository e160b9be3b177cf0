"""An ``Edit``: the fitted gates of one or more edits, ready to apply to a model in memory.

edit = nledit.fit(model, tokenizer, data, edits)
with edit.applied(model):          # the gates on; removed again on exit
    ...
edit.save("my-edit")               # safetensors + JSON, no pickle
edit = nledit.Edit.load("my-edit")
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from ..checkpoint.write import method_gates
from ..data.api_inputs import edit_specs, validated
from ..data.dataset import Examples
from ..errors import EditError
from ..recipe import PromptSpec
from ..version import __version__
from . import gate

GATES_FILE = "edit.safetensors"
META_FILE = "edit.json"
FORMAT = "nledit-edit/1"


@dataclass
class Edit:
    """The fitted ranges and gates of one or more edits.

    ``gates`` are the edit (range masking); ``baseline`` the neuron-masking gates on the same
    neurons, for comparison. The prompt, shots and label names say how the model was read when
    the edit was fitted, so ``nledit.evaluate`` reads it the same way. ``definition`` is what
    defines the edit (model, data, prompt, edits, seed): its hash goes into exported files.
    """

    gates: list[gate.RangeGate]
    baseline: list[gate.RangeGate]
    layers_path: str
    label_names: list[str]
    prompt: PromptSpec
    shots: Examples
    max_length: int
    task: str
    definition: dict[str, Any] = field(default_factory=dict)

    def gates_for(self, method: str = "range", field: str = "method") -> list[gate.RangeGate]:
        """The edit's gates (``range``) or its neuron-masking baseline (``neuron``); ``field``
        names the setting in the error (``output.method`` for a recipe)."""
        return method_gates(self.gates, self.baseline, method, field)

    @contextlib.contextmanager
    def applied(self, model: nn.Module, method: str = "range") -> Iterator[nn.Module]:
        """Inside the block, ``model`` runs with this edit's gates (``method="neuron"``: the
        neuron-masking baseline); exactly those gates are removed on exit. Gates installed by
        anyone else stay, and several edits stack."""
        if method not in ("range", "neuron"):
            raise EditError(f"method: expected 'range' or 'neuron', got {method!r}")
        gates = self.gates_for(method)
        if not isinstance(model, nn.Module):
            raise EditError(f"model: expected a torch model, got {type(model).__name__}")
        installed = {id(m) for m in model.modules()}
        if any(id(g) in installed for g in self.gates + self.baseline):
            raise EditError(
                "this edit is already applied to the model (an applied() block of the same "
                "edit is still open); apply an edit once"
            )
        try:
            gate.install_gates(model, self.layers_path, gates)
        except gate.NleditLoadError as err:  # layers or neurons this model does not have
            raise EditError(f"this edit does not fit the model: {err}") from None
        try:
            yield model
        finally:
            gate.remove_gates(model, gates)

    @contextlib.contextmanager
    def disabled(self, model: nn.Module) -> Iterator[nn.Module]:
        """Inside the block, this edit's gates (installed on ``model`` by ``applied``) do
        nothing; an edit that is not applied there is an ``EditError``."""
        installed = {id(m) for m in model.modules()}
        mine = [g for g in self.gates + self.baseline if id(g) in installed]
        if not mine:
            raise EditError(
                "disabled: this edit is not applied to the model (use it inside applied())"
            )
        before = [g.enabled for g in mine]
        for g in mine:
            g.enabled = False
        try:
            yield model
        finally:
            for g, b in zip(mine, before):
                g.enabled = b

    @property
    def names(self) -> list[str]:
        """The gate names (one per edit and concept)."""
        return [g.spec.name for g in self.gates]

    def save(self, path: str | Path) -> Path:
        """Write ``edit.safetensors`` (the gate tensors) and ``edit.json`` into folder ``path``."""
        out = Path(path)
        out.mkdir(parents=True, exist_ok=True)
        block = gate.save_ranges(str(out / GATES_FILE), self.gates + self.baseline, {})
        meta = {
            "format": FORMAT,
            "nledit_version": __version__,
            "block": block,
            "n_range": len(self.gates),
            "layers_path": self.layers_path,
            "label_names": self.label_names,
            "prompt": self.prompt.model_dump(mode="json"),
            "shots": {"texts": self.shots.texts, "labels": self.shots.labels},
            "max_length": self.max_length,
            "task": self.task,
            "definition": self.definition,
        }
        (out / META_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        return out

    @classmethod
    def load(cls, path: str | Path) -> Edit:
        """Read an edit ``save`` wrote (the tensors are checked against their recorded hash)."""
        folder = Path(path)
        try:
            meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError) as err:
            raise EditError(f"{folder}: not a saved nledit edit ({err})") from None
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise EditError(f"{folder / META_FILE}: not a saved nledit edit")
        problem = _meta_problem(meta)
        if problem:
            raise EditError(f"{folder / META_FILE}: {problem}")
        try:
            return cls._from_meta(folder, meta)
        except gate.NleditLoadError as err:
            raise EditError(str(err)) from None
        except (KeyError, TypeError, ValueError) as err:
            raise EditError(
                f"{folder / META_FILE}: malformed ({type(err).__name__}: {err})"
            ) from None

    @classmethod
    def from_pretrained(cls, path: str | Path) -> Edit:
        """The edit of an exported checkpoint, to apply to a base model already in memory
        (``with edit.applied(model): ...``). The export must pass ``nledit verify``'s file
        checks; its code is never run. It carries no shots and no neuron-masking baseline."""
        from .attach import read_export

        found = read_export(path)
        return cls(
            found.gates,
            [],
            found.layers_path,
            found.label_names,
            found.prompt,
            Examples([], []),
            found.max_length,
            found.task,
            found.definition,
        )

    @classmethod
    def _from_meta(cls, folder: Path, meta: dict[str, Any]) -> Edit:
        gates = gate.load_gates(str(folder / GATES_FILE), meta["block"])
        n = meta["n_range"]
        if n > len(gates) or any(g.spec.mode != "range" for g in gates[:n]):
            raise EditError(f"{folder / META_FILE}: n_range {n} does not count its range gates")
        shots = Examples(list(meta["shots"]["texts"]), list(meta["shots"]["labels"]))
        return cls(
            gates[:n],
            gates[n:],
            meta["layers_path"],
            meta["label_names"],
            validated(PromptSpec, meta["prompt"], f"{folder / META_FILE}: prompt"),
            shots,
            meta["max_length"],
            meta["task"],
            _definition(folder / META_FILE, meta.get("definition", {})),
        )


def _definition(path: Path, definition: Any) -> dict[str, Any]:
    """A saved edit's definition, checked as the API writes it: its edits as recipe edits,
    its model id a text (or none)."""
    if not isinstance(definition, dict):
        raise EditError(f"{path}: definition must be an object")
    model = definition.get("model", {})
    if not isinstance(model, dict) or not isinstance(model.get("id"), (str, type(None))):
        raise EditError(f"{path}: definition.model.id must be a text or null")
    if "edits" in definition:
        try:
            edit_specs(definition["edits"])
        except EditError as err:
            raise EditError(f"{path}: definition.{err}") from None
    return dict(definition)


_TASKS = ("causal-lm", "sequence-classification")
_MODULE_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


def _meta_problem(meta: dict[str, Any]) -> str | None:
    """What in a saved edit's ``edit.json`` is not what ``Edit.save`` writes (None: nothing)."""

    def whole(x: Any, least: int) -> bool:
        return type(x) is int and x >= least

    def texts(x: Any) -> bool:
        return isinstance(x, list) and all(isinstance(t, str) for t in x)

    names, shots = meta.get("label_names"), meta.get("shots")
    if not isinstance(meta.get("block"), dict):
        return "block must be an object"
    if not whole(meta.get("n_range"), 1):
        return f"n_range must be a whole number ≥ 1, not {meta.get('n_range')!r}"
    if not (
        isinstance(meta.get("layers_path"), str) and _MODULE_PATH.fullmatch(meta["layers_path"])
    ):
        return f"layers_path {meta.get('layers_path')!r} is not a module path"
    if not (texts(names) and names and len(set(names)) == len(names)):
        return "label_names must be a list of distinct strings"
    if not (isinstance(shots, dict) and texts(shots.get("texts"))):
        return "shots.texts must be a list of strings"
    labels = shots.get("labels")
    if not (
        isinstance(labels, list)
        and len(labels) == len(shots["texts"])
        and all(type(y) is int and 0 <= y < len(names) for y in labels)
    ):
        return "shots.labels must be one label index per shot text"
    if not whole(meta.get("max_length"), 1):
        return f"max_length must be a whole number ≥ 1, not {meta.get('max_length')!r}"
    if meta.get("task") not in _TASKS:
        return f"task {meta.get('task')!r} is not one of {', '.join(_TASKS)}"
    if not isinstance(meta.get("definition", {}), dict):
        return "definition must be an object"
    return None
