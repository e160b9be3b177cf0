# Range-gated neuron editing (NeuronLens, "Neurons Speak in Ranges", arXiv 2502.06809).
#
# This one file is the whole run-time of an nledit edit. nledit uses it in memory, and copies it
# unchanged into every exported checkpoint as `modeling_nledit.py`, so it imports only torch,
# transformers and safetensors.
#
# An edit picks k neurons (components of the hidden state h) at the output of one layer and a
# range [lo, hi] per neuron. At run time, for each selected neuron j:
#     h_j <- phi(h_j)  if lo_j <= h_j <= hi_j   (mode "range": the NeuronLens edit)
#     h_j <- phi(h_j)  always                   (mode "neuron": the neuron-masking baseline)
# An edit with a quorum m (spec "quorum", 0 = none) acts on a token only when at least m of its
# k neurons lie inside their ranges there: the token as a whole must look like the concept.
# with phi one of
#     zero      0
#     dampen    alpha * x
#     mean      value_j                     (mean of h_j over general text)
#     adaptive  beta * |x - mu_j| / (tau * sigma_j) * x
#     steer     x + strength * value_j      (value = steering direction r)
# Mode "vector" acts on the whole hidden state (index = all neurons) for the steering baselines:
#     steer     h + strength * r
#     ablate    h - r_hat r_hat^T h         (directional ablation, r_hat = r / |r|)
#     leace     h - L R (h - value)         (LEACE affine eraser; L, R: proj_left, proj_right)
# Each operator is one `Operator` subclass below (its parameters with defaults and bounds, the
# tensors it reads, its phi); a gate's settings are a `GateSpec`, stored as JSON in the checkpoint.
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
import transformers
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

try:
    from transformers import AutoConfig, PreTrainedConfig, PreTrainedModel
except ImportError as err:  # transformers 4.x spells it PretrainedConfig, among other changes
    raise ImportError(
        f"this nledit checkpoint needs transformers >= 5 (installed: {transformers.__version__}); "
        "upgrade with: pip install -U 'transformers>=5,<6'"
    ) from err

FORMAT = "nledit-ranges/1"
RANGES_FILE = "nledit_ranges.safetensors"
MODES = ("range", "neuron", "vector")
TENSORS = ("index", "lo", "hi", "mu", "sigma", "value")  # a gate on k neurons with ranges
# A whole-vector gate (mode "vector") has no ranges: its indices (all neurons) and its vector.
# Exports before this run-time also gave it zero lo, hi, mu and sigma; those still load.
VECTOR_TENSORS = ("index", "value")


# ---- the gate settings -----------------------------------------------------------------------


@dataclass
class GateSpec:
    """The JSON-able settings of one gate, as the checkpoint stores them (``to_dict``).

    Two fields say different things: ``mode`` is how the gate applies at run time (``range``:
    inside the ranges; ``neuron``: always, on its k neurons; ``vector``: on the whole hidden
    state), ``method`` the comparison row the gate belongs to (``range``: the edit itself;
    ``neuron``, ``steer``, ``ablate``, ``leace``, ``paper``: a baseline). A recipe's
    ``output.method`` picks which row's gates are exported.
    """

    name: str
    layer: int
    operator: str
    mode: str
    k: int
    params: dict[str, Any] = field(default_factory=dict)
    positions: str = "all"
    quorum: int = 0  # act only on tokens with at least this many neurons in range (0: none)
    method: str | None = None
    edit: str | None = None  # the edit (recipe) the gate belongs to
    concept: str | None = None
    saliency: str | None = None
    top_p: float | None = None
    other: dict[str, Any] = field(default_factory=dict)  # keys of other releases, kept verbatim

    _OPTIONAL: ClassVar[tuple[str, ...]] = ("method", "edit", "concept", "saliency", "top_p")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> GateSpec:
        """The settings of a checkpoint's JSON (``check_spec`` first for untrusted input)."""
        names = {f.name for f in dataclasses.fields(cls)} - {"other"}
        known = {k: v for k, v in d.items() if k in names}
        known.setdefault("params", {})
        known["params"] = dict(known["params"])
        return cls(**known, other={k: v for k, v in d.items() if k not in names})

    def to_dict(self) -> dict[str, Any]:
        """The JSON form the range file and ``config.json`` carry (absent fields left out)."""
        out: dict[str, Any] = {
            "name": self.name,
            "layer": self.layer,
            "operator": self.operator,
            "mode": self.mode,
            "k": self.k,
            "params": dict(self.params),
            "positions": self.positions,
        }
        if self.quorum:
            out["quorum"] = self.quorum
        out.update({k: getattr(self, k) for k in self._OPTIONAL if getattr(self, k) is not None})
        return {**out, **self.other}

    @property
    def ranged(self) -> bool:
        """Whether the gate has ranges and neuron statistics (lo, hi, mu, sigma): every mode
        but ``vector``, which acts on the whole hidden state."""
        return self.mode != "vector"

    @property
    def row(self) -> str:
        """The comparison row (``method``; a gate without one is named by its mode)."""
        return self.method or self.mode

    def param(self, name: str) -> float:
        """Parameter ``name`` of the operator: the recorded value, else the class default."""
        return float(self.params.get(name, operator_class(self.operator).params[name].default))


# ---- the operators ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Param:
    """One run-time parameter of an operator, stated once: the recipe, the tuner and the model
    card read its default and bounds here."""

    default: float
    ge: float | None = None  # inclusive lower bound
    gt: float | None = None  # exclusive lower bound
    le: float | None = None  # inclusive upper bound
    search: tuple[float, float] | None = None  # the interval `nledit tune` searches by default
    doc: str = ""
    edit_field: bool = False  # set on the edit (``edits.N.<name>``), not its operator section

    def problem(self, v: float) -> str | None:
        """What is wrong with value ``v`` (None: it lies inside the bounds)."""
        if self.ge is not None and not v >= self.ge:
            return f"must be >= {self.ge}"
        if self.gt is not None and not v > self.gt:
            return f"must be > {self.gt}"
        if self.le is not None and not v <= self.le:
            return f"must be <= {self.le}"
        return None


# The range width: mu ± tau·sigma. A range of more than 100 sigma holds every value the neuron
# takes: that is neuron masking (output.method: neuron), not a range edit, so it is refused.
TAU = Param(2.5, gt=0, le=100, doc="range half-width in standard deviations", edit_field=True)
# Every range gate of format nledit-ranges/1 records these four, whatever its operator; an
# operator added later records its own parameters only.
RANGE_GATE_PARAMS = ("alpha", "beta", "strength", "tau")

OPERATOR_CLASSES: dict[str, type[Operator]] = {}


class Operator:
    """An operator phi: subclass it, name it, declare what it reads, implement ``phi``.

    Defining the subclass registers it (``OPERATOR_CLASSES``); the recipe, the fit, the tuner,
    the card and the loader read the class attributes below.
    """

    name: ClassVar[str] = ""
    params: ClassVar[dict[str, Param]] = {}  # gate spec ``params`` phi reads
    value: ClassVar[str] = "none"  # the value vector: none, general_mean, steering or leace
    mu_sigma: ClassVar[bool] = False  # reads the neurons' mean and standard deviation
    tensors: ClassVar[tuple[str, ...]] = ()  # tensors read beyond ``TENSORS``
    options: ClassVar[tuple[str, ...]] = ()  # fit-time recipe options (``mean_source``)
    tunable: ClassVar[bool] = False  # ``tune.space.operators`` may list it
    in_recipe: ClassVar[bool] = True  # an edit may name it (False: a baseline only)
    doc: ClassVar[str] = ""
    tuned: ClassVar[tuple[str, ...]] = ()  # set from ``params``: those with a search interval

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.tuned = tuple(n for n, p in cls.params.items() if p.search is not None)
        if cls.name:
            OPERATOR_CLASSES[cls.name] = cls

    @staticmethod
    def phi(gate: RangeGate, x: torch.Tensor) -> torch.Tensor:
        """The operator on the selected components ``x`` (..., k) of ``gate``."""
        raise NotImplementedError


def operator_class(name: str) -> type[Operator]:
    """The class of operator ``name`` (``ValueError`` names the known ones)."""
    try:
        return OPERATOR_CLASSES[name]
    except KeyError:
        raise ValueError(
            f"unknown operator {name!r}; known: {', '.join(OPERATOR_CLASSES)}"
        ) from None


class Zero(Operator):
    name, tunable, doc = "zero", True, "0"

    @staticmethod
    def phi(gate: RangeGate, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(x)


class Dampen(Operator):
    name, tunable, doc = "dampen", True, "αx"
    params: ClassVar[dict[str, Param]] = {
        "alpha": Param(0.5, ge=0, search=(0.0, 1.0), doc="dampen factor")
    }

    @staticmethod
    def phi(gate: RangeGate, x: torch.Tensor) -> torch.Tensor:
        return x * gate.spec.param("alpha")


class Mean(Operator):
    name, value, options, tunable, doc = "mean", "general_mean", ("mean_source",), True, "mean"

    @staticmethod
    def phi(gate: RangeGate, x: torch.Tensor) -> torch.Tensor:
        return gate.value.to(x.dtype).expand_as(x)


class Adaptive(Operator):
    name, mu_sigma, tunable, doc = "adaptive", True, True, "β·|x-μ|/(τσ)·x"
    params: ClassVar[dict[str, Param]] = {
        "beta": Param(0.5, ge=0, search=(0.1, 1.0), doc="adaptive factor"),
        "tau": TAU,
    }

    @staticmethod
    def phi(gate: RangeGate, x: torch.Tensor) -> torch.Tensor:
        scale = (gate.spec.param("tau") * gate.sigma.to(x.dtype)).clamp_min(
            torch.finfo(x.dtype).tiny
        )
        return gate.spec.param("beta") * (x - gate.mu.to(x.dtype)).abs() / scale * x


class Steer(Operator):
    name, value, doc = "steer", "steering", "x + a·r"
    params: ClassVar[dict[str, Param]] = {"strength": Param(1.0, doc="steering coefficient a")}

    @staticmethod
    def phi(gate: RangeGate, x: torch.Tensor) -> torch.Tensor:
        return x + gate.spec.param("strength") * gate.value.to(x.dtype)


class Ablate(Operator):
    name, value, in_recipe, doc = "ablate", "steering", False, "h - r̂r̂ᵀh"

    @staticmethod
    def phi(gate: RangeGate, x: torch.Tensor) -> torch.Tensor:
        value = gate.value.to(x.dtype)
        r_hat = value / value.norm().clamp_min(torch.finfo(x.dtype).tiny)
        return x - (x @ r_hat).unsqueeze(-1) * r_hat


class Leace(Operator):
    # the whole hidden state; value is the eraser's bias, plus its two matrices (d, r), (r, d)
    name, value, tensors, doc = "leace", "leace", ("proj_left", "proj_right"), "h - LR(h - b)"

    @staticmethod
    def phi(gate: RangeGate, x: torch.Tensor) -> torch.Tensor:
        right, left = gate.proj_right.to(x.dtype), gate.proj_left.to(x.dtype)
        return x - ((x - gate.value.to(x.dtype)) @ right.T) @ left.T


def tensor_names(spec: GateSpec | Mapping[str, Any], legacy: bool = False) -> tuple[str, ...]:
    """The tensors a gate with settings ``spec`` holds (``legacy``: as exports before
    ``VECTOR_TENSORS`` wrote them, with zero ranges on a whole-vector gate)."""
    spec = spec if isinstance(spec, GateSpec) else GateSpec.from_dict(spec)
    cls = OPERATOR_CLASSES.get(spec.operator)
    base = TENSORS if spec.ranged or legacy else VECTOR_TENSORS
    return base + (cls.tensors if cls else ())


class NleditLoadError(RuntimeError):
    """The range tensors do not match the checkpoint's configuration."""


class RangeGate(nn.Module):
    """One edit at one layer: a range-gated operator over k neurons.

    ``spec`` holds the settings (``GateSpec``; a mapping is read as its JSON form); the tensors
    are buffers that are not part of the model's state dict.
    """

    def __init__(
        self,
        spec: GateSpec | Mapping[str, Any],
        tensors: dict[str, torch.Tensor],
        read_index: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        self.spec = (
            dataclasses.replace(spec, params=dict(spec.params), other=dict(spec.other))
            if isinstance(spec, GateSpec)
            else GateSpec.from_dict(spec)
        )
        legacy = not self.spec.ranged and "lo" in tensors  # an older export's zero ranges
        for key in tensor_names(self.spec, legacy):
            self.register_buffer(key, tensors[key], persistent=False)
        self.enabled = True
        self.read_index = read_index  # for positions "last", see forward and read_at

    def read_at(self, index: torch.Tensor | None) -> None:
        """For positions "last": the read token of each row of the next batches (None: the
        last position; empty: no row has one, the gate edits nothing)."""
        self.read_index = index

    def extra_repr(self) -> str:
        s = self.spec
        return f"{s.name}: layer={s.layer} op={s.operator} mode={s.mode} k={s.k}"

    def phi(self, x: torch.Tensor) -> torch.Tensor:
        """The operator on the selected components ``x`` (..., k)."""
        return operator_class(self.spec.operator).phi(self, x)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        if not self.enabled:
            return h
        if self.spec.positions == "last" and h.dim() == 3:
            # The token that carries the concept: the last position, unless the caller knows
            # better (right-padded batches set `read_index`; an empty one edits nothing).
            rows = torch.arange(h.shape[0], device=h.device)
            pos = self.read_index
            if pos is None:
                pos = torch.full_like(rows, h.shape[1] - 1)
            elif pos.numel() == 0:
                return h
            pos = pos.to(h.device)
            return h.index_put((rows, pos), self._edit(h[rows, pos]))
        return self._edit(h)

    def acts(self, x: torch.Tensor) -> torch.Tensor:
        """Where the operator applies, given the selected components ``x`` (..., k): inside
        the ranges (mode "range"), on tokens with at least ``quorum`` neurons inside; a gate
        without ranges acts everywhere."""
        if not self.spec.ranged:
            return torch.ones_like(x, dtype=torch.bool)
        inside = (x >= self.lo.to(x.dtype)) & (x <= self.hi.to(x.dtype))
        quorum = int(self.spec.quorum or 0)
        if quorum > 0:
            inside = inside & (inside.sum(-1, keepdim=True) >= quorum)
        return inside

    def _edit(self, h: torch.Tensor) -> torch.Tensor:
        index = self.index.to(h.device)
        x = h.index_select(-1, index)
        y = self.phi(x)
        if self.spec.mode == "range":
            y = torch.where(self.acts(x), y, x)
        return h.index_copy(-1, index, y.to(h.dtype))


class LayerGates(nn.Module):
    """The gates of one layer, applied in order to the layer's output hidden state."""

    def __init__(self, gates: list[RangeGate]) -> None:
        super().__init__()
        self.gates = nn.ModuleList(gates)

    def hook(self, module: nn.Module, args: Any, output: Any) -> Any:
        if isinstance(output, tuple):
            return (self(output[0]), *output[1:])
        if hasattr(output, "last_hidden_state"):  # ModelOutput-returning blocks
            output.last_hidden_state = self(output.last_hidden_state)
            return output
        return self(output)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        for gate in self.gates:
            h = gate(h)
        return h


def install_gates(model: nn.Module, layers_path: str, gates: list[RangeGate]) -> nn.ModuleDict:
    """Attach ``gates`` to the outputs of their layers (``{layers_path}.{layer}``), after any
    gates already installed there (installing a gate twice is an error).

    Gate tensors go to the device of their layer (works with accelerate device maps). Returns
    the container, also kept as ``model.nledit_gates``; ``remove_gates`` undoes it.
    """
    container = model._modules.get("nledit_gates")
    if not isinstance(container, nn.ModuleDict):
        container = nn.ModuleDict()
    installed = {id(m) for m in container.modules()}
    twice = [g.spec.name for g in gates if id(g) in installed]
    if twice or len({id(g) for g in gates}) != len(gates):
        raise ValueError(f"gates already installed on this model: {twice or 'repeated'}")
    try:
        blocks = model.get_submodule(layers_path)
    except AttributeError as err:
        raise NleditLoadError(f"the model has no layers at {layers_path!r}") from err
    hidden = getattr(getattr(model, "config", None), "hidden_size", None)
    count = len(blocks) if isinstance(blocks, (nn.ModuleList, nn.Sequential)) else None
    check_fits(gates, hidden if type(hidden) is int else None, count)
    handles: dict[str, Any] = getattr(model, "_nledit_handles", None) or {}
    for gate in gates:
        layer = str(int(gate.spec.layer))
        block = model.get_submodule(f"{layers_path}.{layer}")
        device = _block_device(block)
        if layer not in container:
            container[layer] = LayerGates([])
            handles[layer] = block.register_forward_hook(container[layer].hook)
        container[layer].gates.append(gate.to(device))
    object.__setattr__(model, "_nledit_handles", handles)
    model.nledit_gates = container
    return container


def _block_device(block: nn.Module) -> torch.device:
    """Where ``block`` runs: accelerate's execution device when it dispatched the block (its
    offloaded weights sit on ``meta``), else the device of its parameters."""
    hook = getattr(block, "_hf_hook", None)
    where = getattr(hook, "execution_device", None)
    if where is not None:
        return torch.device("cuda", where) if isinstance(where, int) else torch.device(where)
    return next((p.device for p in block.parameters()), torch.device("cpu"))


def remove_gates(model: nn.Module, gates: list[RangeGate] | None = None) -> None:
    """Detach ``gates`` (default: every gate ``install_gates`` attached); others stay."""
    container = model._modules.get("nledit_gates")
    handles: dict[str, Any] = getattr(model, "_nledit_handles", None) or {}
    if not isinstance(container, nn.ModuleDict):
        return
    drop = None if gates is None else {id(g) for g in gates}
    for layer in list(container.keys()):
        lg = container[layer]
        kept = [g for g in lg.gates if drop is not None and id(g) not in drop]
        lg.gates = nn.ModuleList(kept)
        if not kept:
            handles.pop(layer).remove()
            del container[layer]
    object.__setattr__(model, "_nledit_handles", handles)
    if not len(container):
        del model._modules["nledit_gates"]


def set_gates_enabled(model: nn.Module, enabled: bool, names: list[str] | None = None) -> None:
    """Switch all gates (or those named) on or off at run time; a name no gate of ``model``
    has is a ``ValueError`` naming the gates there are (nothing is switched then)."""
    gates = [m for m in model.modules() if isinstance(m, RangeGate)]
    if names is not None:
        names = [names] if isinstance(names, str) else list(names)
        known = [g.spec.name for g in gates]
        unknown = [n for n in names if n not in known]
        if unknown:
            raise ValueError(f"no gate named {unknown}; the gates are {known}")
    for gate in gates:
        if names is None or gate.spec.name in names:
            gate.enabled = enabled


@contextlib.contextmanager
def gates_disabled(model: nn.Module) -> Iterator[None]:
    """Run the base model: every gate off inside the block, restored afterwards."""
    gates = [m for m in model.modules() if isinstance(m, RangeGate)]
    before = [g.enabled for g in gates]
    for g in gates:
        g.enabled = False
    try:
        yield
    finally:
        for g, b in zip(gates, before):
            g.enabled = b


# ---- range file ------------------------------------------------------------------------------


def tensors_digest(tensors: dict[str, torch.Tensor]) -> str:
    """sha256 over names, dtypes, shapes and bytes of the range tensors (order-independent)."""
    h = hashlib.sha256()
    for key in sorted(tensors):
        t = tensors[key].detach().to("cpu").contiguous()
        h.update(f"{key}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def gate_tensors(gates: list[RangeGate]) -> dict[str, torch.Tensor]:
    return {
        f"{g.spec.name}.{key}": getattr(g, key).detach().to("cpu").clone()
        for g in gates
        for key in tensor_names(g.spec)
    }


def save_ranges(path: str, gates: list[RangeGate], metadata: dict[str, str]) -> dict[str, Any]:
    """Write the gates' tensors; return the config block that must accompany them."""
    tensors = gate_tensors(gates)
    specs = [g.spec.to_dict() for g in gates]
    # One metadata entry: safetensors orders several keys arbitrarily, and the same edit must
    # give the same bytes.
    meta = {"nledit": json.dumps({**metadata, "format": FORMAT, "edits": specs}, sort_keys=True)}
    save_file(tensors, path, metadata=meta)
    return {"format": FORMAT, "edits": specs, "ranges_sha256": tensors_digest(tensors)}


def _number(x: Any) -> bool:
    return (
        isinstance(x, (int, float))
        and not isinstance(x, bool)
        and x == x
        and abs(x) != float("inf")
    )


def check_spec(spec: Any, where: str) -> None:
    """Refuse gate settings no nledit writes: unknown operator or mode, a layer or k that is not
    a non-negative integer, parameters that are not finite numbers."""
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
        raise NleditLoadError(f"{where}: a gate without settings or name ({str(spec)[:80]})")
    name = spec["name"]
    if spec.get("operator") not in OPERATOR_CLASSES:
        raise NleditLoadError(
            f"{where}: edit {name!r} has operator {spec.get('operator')!r}; "
            f"known: {', '.join(OPERATOR_CLASSES)}"
        )
    if spec.get("mode") not in MODES:
        raise NleditLoadError(f"{where}: edit {name!r} has mode {spec.get('mode')!r}")
    if spec.get("positions", "all") not in ("all", "last"):
        raise NleditLoadError(f"{where}: edit {name!r} has positions {spec.get('positions')!r}")
    for key, least in (("layer", 0), ("k", 1)):
        if type(spec.get(key)) is not int or spec[key] < least:
            raise NleditLoadError(f"{where}: edit {name!r} has {key} {spec.get(key)!r}")
    params = spec.get("params", {})
    if not isinstance(params, dict) or not all(_number(v) for v in params.values()):
        raise NleditLoadError(f"{where}: edit {name!r} has parameters that are not numbers")


def check_tensors(name: str, parts: dict[str, torch.Tensor], k: int, where: str) -> None:
    """Refuse range tensors a fit cannot produce: not finite, negative sigma, bad indices."""
    index = parts["index"]
    if index.dtype not in (torch.int64, torch.int32) or index.shape != (k,):
        raise NleditLoadError(f"{where}: the neuron indices of edit {name!r} are malformed")
    if k and (int(index.min()) < 0 or len(set(index.tolist())) != k):
        raise NleditLoadError(f"{where}: edit {name!r} has negative or repeated neuron indices")
    for key, t in parts.items():
        if key == "index":
            continue
        if not t.is_floating_point() or not bool(torch.isfinite(t).all()):
            raise NleditLoadError(f"{where}: the {key} of edit {name!r} is not finite (NaN/inf)")
    if "sigma" in parts and bool((parts["sigma"] < 0).any()):
        raise NleditLoadError(f"{where}: edit {name!r} has a negative sigma")


def check_fits(gates: list[RangeGate], hidden_size: int | None, num_layers: int | None) -> None:
    """Refuse gates whose layer or neuron indices lie outside a model of that shape."""
    for g in gates:
        name, layer = g.spec.name, int(g.spec.layer)
        if num_layers is not None and not 0 <= layer < num_layers:
            raise NleditLoadError(
                f"edit {name!r} is at layer {layer}; the model has {num_layers} layers"
            )
        if hidden_size is not None and g.index.numel() and int(g.index.max()) >= hidden_size:
            raise NleditLoadError(
                f"edit {name!r} selects neuron {int(g.index.max())}; the model's hidden "
                f"size is {hidden_size}"
            )
        if g.spec.mode == "vector" and hidden_size is not None and g.value.numel() != hidden_size:
            raise NleditLoadError(f"edit {name!r}: its vector does not have {hidden_size} values")


def load_gates(
    path: str,
    block: dict[str, Any],
    hidden_size: int | None = None,
    num_layers: int | None = None,
) -> list[RangeGate]:
    """Read the range file and check it against the config's ``nledit`` block (and, when
    given, against a model of ``hidden_size`` and ``num_layers``)."""
    specs = block.get("edits") if isinstance(block, dict) else None
    if not isinstance(specs, list):
        raise NleditLoadError(f"{path}: no list of edits accompanies the range file")
    for spec in specs:
        check_spec(spec, path)
    if len({s["name"] for s in specs}) != len(specs):
        raise NleditLoadError(f"{path}: two edits have the same name")
    try:
        with safe_open(path, framework="pt") as f:
            meta = json.loads((f.metadata() or {}).get("nledit", "{}"))
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    except Exception as err:  # a truncated or foreign file
        raise NleditLoadError(f"cannot read range tensors {path}: {err}") from err
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else meta
        raise NleditLoadError(f"{path}: not an nledit range file (format {found!r})")
    if meta.get("edits") != specs:
        raise NleditLoadError(f"{path}: the edits in the range file differ from config.json")
    # a whole-vector gate written with zero ranges (before VECTOR_TENSORS) loads as written
    legacy = {s["name"]: f"{s['name']}.lo" in tensors for s in specs}
    expected = {f"{s['name']}.{key}" for s in specs for key in tensor_names(s, legacy[s["name"]])}
    missing, extra = sorted(expected - set(tensors)), sorted(set(tensors) - expected)
    if missing or extra:
        raise NleditLoadError(f"{path}: missing tensors {missing}, unexpected tensors {extra}")
    if tensors_digest(tensors) != block.get("ranges_sha256"):
        raise NleditLoadError(f"{path}: range tensors were altered (sha256 mismatch)")
    gates = []
    for s in specs:
        parts = {key: tensors[f"{s['name']}.{key}"] for key in tensor_names(s, legacy[s["name"]])}
        if any(parts[key].shape != (s["k"],) for key in TENSORS if key in parts):
            raise NleditLoadError(f"{path}: tensors of edit {s['name']!r} do not have k={s['k']}")
        check_tensors(s["name"], parts, s["k"], path)
        quorum = s.get("quorum", 0)
        if type(quorum) is not int or not 0 <= quorum <= s["k"]:
            raise NleditLoadError(f"{path}: edit {s['name']!r} has quorum {quorum!r}, not 0..k")
        left, right = parts.get("proj_left"), parts.get("proj_right")
        if left is not None and (
            left.dim() != 2
            or left.shape[0] != s["k"]
            or right is None
            or right.shape != (left.shape[1], s["k"])
        ):
            raise NleditLoadError(f"{path}: the eraser of edit {s['name']!r} is malformed")
        gates.append(RangeGate(s, parts))
    try:
        check_fits(gates, hidden_size, num_layers)
    except NleditLoadError as err:
        raise NleditLoadError(f"{path}: {err}") from None
    return gates


# ---- the exported model classes ---------------------------------------------------------------


def base_class(block: dict[str, Any]) -> type:
    """The transformers model class the ``nledit`` block names as the base architecture; only a
    model class transformers ships qualifies."""
    name = block.get("base_architecture") if isinstance(block, dict) else None
    cls = (
        getattr(transformers, name, None) if isinstance(name, str) and name.isidentifier() else None
    )
    if not (isinstance(cls, type) and issubclass(cls, PreTrainedModel)):
        raise NleditLoadError(
            f"config.json: base_architecture {name!r} is not a transformers model"
        )
    return cls


class NleditConfig(PreTrainedConfig):
    """The base model's configuration plus an ``nledit`` block naming the edits."""

    model_type = "nledit"
    nledit: dict | None = None

    def base_config(self) -> PreTrainedConfig:
        block = self.nledit or {}
        fields = self.to_dict()
        for key in ("model_type", "auto_map", "nledit", "transformers_version"):
            fields.pop(key, None)
        fields["architectures"] = [block["base_architecture"]]
        return AutoConfig.for_model(block["base_model_type"], **fields)


class NleditMixin:
    """Run-time switches added to the loaded base model class, and a ``save_pretrained`` that
    keeps the edit."""

    def nledit_enabled(self, enabled: bool = True, names: list[str] | None = None) -> None:
        set_gates_enabled(self, enabled, names)  # type: ignore[arg-type]

    def nledit_disabled(self) -> contextlib.AbstractContextManager[None]:
        return gates_disabled(self)  # type: ignore[arg-type]

    def save_pretrained(self, save_directory: Any, *args: Any, **kwargs: Any) -> None:
        """Save like the base class, then add what makes the folder an nledit checkpoint: the
        run-time, ``auto_map``, the range file and a manifest marked as re-saved. With
        ``push_to_hub=True`` the complete folder is uploaded afterwards."""
        import os

        push = kwargs.pop("push_to_hub", False)
        hub = {k: kwargs.pop(k) for k in _PUSH_KWARGS if k in kwargs}
        super().save_pretrained(save_directory, *args, **kwargs)  # type: ignore[misc]
        if not kwargs.get("is_main_process", True):
            return
        folder = os.fspath(save_directory)
        write_resaved(self, folder)  # type: ignore[arg-type]
        if push:  # as transformers pushes, after the folder is complete
            from transformers.utils.hub import hf_api

            repo_id = hub.pop("repo_id", os.path.basename(os.path.abspath(folder)))
            create = {k: hub.pop(k) for k in ("private",) if k in hub}
            repo_id = hf_api().create_repo(repo_id, exist_ok=True, **create).repo_id
            self._upload_modified_files(  # type: ignore[attr-defined]
                folder, repo_id, {}, token=kwargs.get("token"), **hub
            )


_PUSH_KWARGS = ("repo_id", "commit_message", "create_pr", "private", "revision")
MANIFEST_FILE = "nledit_manifest.json"
_WRAPPERS = {
    "AutoModelForCausalLM": "NleditForCausalLM",
    "AutoModelForSequenceClassification": "NleditForSequenceClassification",
}


def write_resaved(model: nn.Module, folder: str) -> None:
    """Complete a ``save_pretrained`` folder of a loaded nledit model (see ``save_pretrained``).

    The weights are now whatever the base class saved (perhaps in another dtype), so the
    manifest says the folder was re-saved, hashes the files actually written and drops the
    export's reference logits and card, which described other bytes.
    """
    import os
    import shutil

    block = dict(getattr(model.config, "nledit", None) or {})
    if block.get("format") != FORMAT:
        raise NleditLoadError("save_pretrained: the model has no nledit block in its config")
    block.pop("base_weights", None)  # the weights are in the folder now
    order = {s["name"]: i for i, s in enumerate(block.get("edits", []))}
    gates = sorted(
        (m for m in model.modules() if isinstance(m, RangeGate)),
        key=lambda g: order.get(g.spec.name, len(order)),
    )
    meta = {k: str(block.get(k, "")) for k in ("nledit_version", "edit_sha256")}
    block.update(save_ranges(os.path.join(folder, RANGES_FILE), gates, meta))
    seq = block["base_architecture"].endswith("ForSequenceClassification")
    auto = "AutoModelForSequenceClassification" if seq else "AutoModelForCausalLM"
    path = os.path.join(folder, "config.json")
    with open(path, encoding="utf-8") as f:
        cfg = json.load(f)
    cfg.pop("quantization_config", None)
    cfg.update(
        model_type="nledit",
        architectures=[_WRAPPERS[auto]],
        auto_map={
            "AutoConfig": "modeling_nledit.NleditConfig",
            auto: f"modeling_nledit.{_WRAPPERS[auto]}",
        },
        nledit=block,
    )
    with open(path, "w", encoding="utf-8") as f:
        f.write(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    shutil.copyfile(__file__, os.path.join(folder, "modeling_nledit.py"))
    source = dict(getattr(model, "_nledit_manifest", None) or {})
    files = {
        name: _sha256(os.path.join(folder, name))
        for name in sorted(os.listdir(folder))
        if name != MANIFEST_FILE and os.path.isfile(os.path.join(folder, name))
    }
    dtype = next((p.dtype for p in model.parameters()), None)
    doc = {
        **{k: v for k, v in source.items() if k not in ("files", "card")},
        "files": files,
        "weights": "copy",
        "base_weights": sorted(n for n in files if n.startswith("model") and "safetensors" in n),
        "resaved": {
            "by": "save_pretrained",
            "dtype": str(dtype).replace("torch.", ""),
            "transformers": transformers.__version__,
            "torch": torch.__version__,
            "export_files": source.get("files", {}),
            "note": "weights written by save_pretrained, not the export's bytes; metrics were "
            "measured on the original export",
        },
    }
    with open(os.path.join(folder, MANIFEST_FILE), "w", encoding="utf-8") as f:
        f.write(json.dumps(doc, indent=2, sort_keys=True) + "\n")


_EDITED_CLASSES: dict[type, type] = {}


def _edited_class(base_cls: type) -> type:
    if base_cls not in _EDITED_CLASSES:
        _EDITED_CLASSES[base_cls] = type(f"Nledit{base_cls.__name__}", (NleditMixin, base_cls), {})
        _register_for_pipelines()
    return _EDITED_CLASSES[base_cls]


class _PipelineNames(PreTrainedConfig):
    """A key no configuration ever has: the edited classes are listed under it in
    transformers' task mappings only for ``pipeline()``'s name check, never found by a load."""

    model_type = "nledit-pipeline-names"


def _register_for_pipelines() -> None:
    """Name the edited classes in transformers' task mappings (under ``_PipelineNames``), so
    ``pipeline()`` knows them as models of its task."""
    from transformers.models.auto import modeling_auto

    for mapping_name in (
        "MODEL_FOR_CAUSAL_LM_MAPPING",
        "MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING",
    ):
        mapping = getattr(modeling_auto, mapping_name)
        names = getattr(modeling_auto, mapping_name + "_NAMES", {})
        task = {n for v in names.values() for n in ((v,) if isinstance(v, str) else v)}
        own = tuple(c for b, c in _EDITED_CLASSES.items() if b.__name__ in task)
        if own:
            mapping.register(_PipelineNames, own, exist_ok=True)


_HUB_KWARGS = ("revision", "cache_dir", "force_download", "local_files_only", "token", "subfolder")
_BASE_HUB_KWARGS = ("cache_dir", "force_download", "local_files_only", "token")


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def _stat_key(path: str) -> list[int]:
    import os

    st = os.stat(path)  # ctime cannot be set back by a user, unlike mtime
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev]


def _hash_cache_file() -> str:
    import os

    root = os.environ.get("NLEDIT_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "nledit"
    )
    return os.path.join(root, "base_sha256.json")


def _read_hash_cache() -> dict[str, Any]:
    try:
        with open(_hash_cache_file(), encoding="utf-8") as f:
            doc = json.load(f)
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def _write_hash_cache(doc: dict[str, Any]) -> None:
    import os

    path = _hash_cache_file()
    doc = {k: v for k, v in doc.items() if os.path.isfile(k)}  # files since removed go
    try:  # a read-only home only costs the next load a full hash
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(doc, f)
        os.replace(tmp, path)
    except OSError:
        pass


def file_digest(path: str, mode: str, cache: dict[str, Any]) -> str:
    """sha256 of a base weight file. ``mode`` "full" reads the whole file; "fast" first looks
    for an identity that needs no reading: a Hub cache blob (the cache names each blob by the
    sha256 the Hub published for it), else a hash this machine computed for the file when its
    size, mtime, ctime and inode were what they are now (``cache``, updated)."""
    import os

    real = os.path.realpath(path)
    if mode == "fast":
        blob = os.path.basename(real)
        if (
            os.path.islink(path)
            and os.path.basename(os.path.dirname(real)) == "blobs"
            and len(blob) == 64
            and all(c in "0123456789abcdef" for c in blob)
        ):
            return blob
        entry = cache.get(real)
        if isinstance(entry, dict) and entry.get("stat") == _stat_key(real):
            return str(entry.get("sha256"))
    digest = _sha256(real)
    cache[real] = {"stat": _stat_key(real), "sha256": digest}
    return digest


def check_mode(value: Any) -> str:
    """``nledit_check_base`` as a mode: "fast" (the default, True), "full", or "off" (False)."""
    if isinstance(value, str):
        value = value.strip().lower()
        if value in ("false", "0", "no", "off"):
            return "off"
        return "full" if value == "full" else "fast"
    return "fast" if value else "off"


def resolve_base_weights(block: dict[str, Any], base: str | None, check: str, hub: dict) -> str:
    """The folder holding a weight-free checkpoint's base weights: ``base`` (a folder or Hub id)
    if given, else the recorded folder if it exists here, else the pinned Hub commit (through
    the Hub cache). Each file's size is checked, and its sha256 as ``check_mode`` says
    (``file_digest``)."""
    import os

    from transformers.utils import cached_file

    ref = block["base_weights"]
    folder = base if base and os.path.isdir(base) else None
    if folder is None and not base and ref.get("folder") and os.path.isdir(ref["folder"]):
        folder = ref["folder"]
    repo = base or ref.get("repo_id")
    if folder is None and not repo:
        why = f" ({ref['local']})" if ref.get("local") else ""
        raise NleditLoadError(
            f"base weights: {ref.get('folder')!r}{why} does not exist here and no Hub repository "
            "is recorded; pass nledit_base=<folder holding the base weights>"
        )
    from_hub = folder is None
    sizes = ref.get("sizes") or {}
    cache = _read_hash_cache() if check != "off" else {}
    before = dict(cache)
    for name, digest in ref["files"].items():
        if from_hub:
            try:
                local = cached_file(repo, name, revision=ref.get("revision"), **hub)
            except Exception as err:  # offline without the file, unknown repo, no network
                raise NleditLoadError(
                    f"base weights: cannot get {name} of {repo}@{ref.get('revision')} ({err}); "
                    "pass nledit_base=<local folder> to load them from elsewhere"
                ) from err
            folder = os.path.dirname(local or "")
        file = os.path.join(folder, name)
        if not os.path.isfile(file):
            raise NleditLoadError(f"base weights: {file} is missing")
        size = os.path.getsize(file)
        if check != "off" and name in sizes and size != sizes[name]:
            raise NleditLoadError(
                f"base weights: {file} differs from the base this edit was fitted on "
                f"({size} bytes, expected {sizes[name]})"
            )
        if check != "off" and file_digest(file, check, cache) != digest:
            raise NleditLoadError(
                f"base weights: {file} differs from the base this edit was "
                f"fitted on (sha256 mismatch; expected {digest[:12]}…)"
            )
    if check != "off" and cache != before:  # a full check refreshes the record too
        _write_hash_cache(cache)
    return folder


OWN_AUTO_MAP = {
    "AutoConfig": "modeling_nledit.NleditConfig",
    "AutoModelForCausalLM": "modeling_nledit.NleditForCausalLM",
    "AutoModelForSequenceClassification": "modeling_nledit.NleditForSequenceClassification",
}


def _auto_maps(doc: Any, top: bool = True) -> list[tuple[bool, Any]]:
    """Every ``auto_map`` value in a JSON document, with whether it sits at the top level."""
    found = []
    if isinstance(doc, dict):
        for key, value in doc.items():
            if key == "auto_map":
                found.append((top, value))
            found += _auto_maps(value, False)
    elif isinstance(doc, list):
        for value in doc:
            found += _auto_maps(value, False)
    return found


def foreign_code(folder: str) -> list[str]:
    """What in a local checkpoint folder would make transformers run code other than this
    run-time: another code file, or an ``auto_map`` other than nledit's own in config.json."""
    import os

    problems = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            rel = os.path.relpath(os.path.join(root, name), folder).replace(os.sep, "/")
            if (
                name.endswith((".py", ".pyc", ".pyw", ".so", ".pyd"))
                and rel != "modeling_nledit.py"
            ):
                problems.append(f"code file {rel}")
            elif name.endswith(".json"):
                try:
                    with open(os.path.join(root, name), encoding="utf-8") as f:
                        doc = json.load(f)
                except (OSError, ValueError, RecursionError):
                    problems.append(f"{rel} is not valid JSON")
                    continue
                for top, value in _auto_maps(doc):
                    own = rel == "config.json" and top
                    if (
                        not own
                        or not isinstance(value, dict)
                        or any(OWN_AUTO_MAP.get(k) != v for k, v in value.items())
                    ):
                        problems.append(f"auto_map in {rel} names code other than nledit's")
    return problems


class _NleditAutoModel(PreTrainedModel):
    """Loads the base architecture with its weights untouched, then installs the gates.

    Extra keyword arguments of ``from_pretrained``: ``nledit_enabled`` (False loads every gate
    off), ``nledit_base`` (a folder or Hub id holding the base weights of a weight-free
    checkpoint, instead of the recorded one), ``nledit_check_base`` (how they are checked:
    True / "fast", the default, trusts a hash it need not read the file for, "full" re-hashes
    every file, False checks only that they exist; see ``file_digest``).
    """

    config_class = NleditConfig

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError("nledit checkpoints are created with from_pretrained(path)")

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: Any, *args: Any, **kwargs: Any):  # type: ignore[override]
        import os

        from transformers.utils import cached_file

        path = str(pretrained_model_name_or_path)
        if os.path.isdir(path):  # nothing but this run-time may run from the checkpoint
            problems = foreign_code(path)
            if problems:
                raise NleditLoadError(f"{path}: refusing to load: " + "; ".join(problems))
        config = kwargs.pop("config", None)
        enabled = kwargs.pop("nledit_enabled", True)  # False: load with every gate off (A/B)
        if isinstance(enabled, str):
            enabled = enabled.lower() not in ("false", "0", "no")
        base = kwargs.pop("nledit_base", None)
        check = check_mode(kwargs.pop("nledit_check_base", True))
        hub = {k: kwargs[k] for k in _HUB_KWARGS if k in kwargs}
        if not isinstance(config, NleditConfig):
            config = NleditConfig.from_pretrained(path, **hub)
        block = config.nledit or {}
        if block.get("format") != FORMAT:
            raise NleditLoadError(f"{path}: config.json has no valid nledit block")
        base_cls = base_class(block)
        weights = path
        if block.get("base_weights"):
            base_hub = {k: kwargs[k] for k in _BASE_HUB_KWARGS if k in kwargs}
            weights = resolve_base_weights(block, base, check, base_hub)
            kwargs = {k: v for k, v in kwargs.items() if k not in _HUB_KWARGS}
        # Hub kernels would replace the module forwards the gates hook (and fetch code): off
        # unless the caller asks for them.
        kwargs.setdefault("use_kernels", False)
        model = _edited_class(base_cls).from_pretrained(
            weights, *args, config=config.base_config(), **kwargs
        )
        try:
            ranges = cached_file(path, RANGES_FILE, **hub)
        except OSError as err:  # transformers raises for a missing file; say what it means
            raise NleditLoadError(f"{path}: {RANGES_FILE} is missing ({err})") from err
        if ranges is None:
            raise NleditLoadError(f"{path}: {RANGES_FILE} is missing")
        install_gates(model, block["layers_path"], load_gates(ranges, block))
        set_gates_enabled(model, bool(enabled))
        model.config.nledit = block
        object.__setattr__(model, "_nledit_manifest", _read_manifest(path, hub))
        return model


def _read_manifest(path: str, hub: dict[str, Any]) -> dict[str, Any]:
    """The checkpoint's manifest ({} when it has none), kept for ``save_pretrained``."""
    from transformers.utils import cached_file

    try:
        file = cached_file(path, MANIFEST_FILE, _raise_exceptions_for_missing_entries=False, **hub)
        with open(file or "", encoding="utf-8") as f:
            doc = json.load(f)
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


class NleditForCausalLM(_NleditAutoModel):
    pass


class NleditForSequenceClassification(_NleditAutoModel):
    pass
