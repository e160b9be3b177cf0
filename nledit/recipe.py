"""The recipe: a YAML file naming the base model, the concept data, the prompt and the edits.

Every error is reported at once as ``field.path: message``; unknown keys are rejected with the
nearest valid name. Nothing is loaded before a recipe is valid.
"""

from __future__ import annotations

import difflib
import hashlib
import math
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from . import operators, saliencies, strict_yaml
from .errors import NleditError

Dtype = Literal["float32", "bfloat16", "float16"]
# Names come from the registries (operators.py, saliencies.py): one place to add a method.
Saliency = Literal[saliencies.names()]  # type: ignore[valid-type]
RangeShape = Literal["sigma", "quantile"]
Selectivity = Literal["mass", "auroc"]
TunableOperator = Literal[operators.names(in_recipe=True, tunable=True)]  # type: ignore[valid-type]
Objective = Literal["d_acc", "d_conf", "d_cacc", "d_cconf", "d_ppl", "selectivity"]
# torch device strings: a known type and an optional index
DEVICE = r"^(cpu|cuda|mps|xpu|hpu|npu|meta)(:[0-9]+)?$"
# database URLs: dialect[+driver]://...
STORAGE = r"^[a-z][a-z0-9]*(\+[a-z0-9_]+)?://"
OperatorName = Literal[operators.names(in_recipe=True)]  # type: ignore[valid-type]


def _expandable(value: str) -> str:
    """A path starting with ``~user`` must name a user whose home folder is known."""
    if value.startswith("~") and os.path.expanduser(value) == value:
        raise ValueError(f"cannot expand {value!r}: no home folder for that user")
    return value


PathStr = Annotated[str, AfterValidator(_expandable)]  # a file or folder path (or a Hub id)


class RecipeError(NleditError, ValueError):
    """A recipe that cannot be used; ``problems`` lists every ``field.path: message``."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        lines = "\n".join(f"  {p}" for p in problems)
        super().__init__(f"invalid recipe {source}:\n{lines}")


class _Strict(BaseModel):
    # strict: no coercion (a boolean is not a number, "3" is not an integer); finite floats only
    model_config = ConfigDict(
        extra="forbid", validate_default=True, strict=True, allow_inf_nan=False
    )


class ModelSpec(_Strict):
    """The base model: a Hub id, a local folder, a GGUF file or ``pypi:<package>``."""

    id: PathStr = Field(description="Hub id, local folder, .gguf file, or pypi:<package> (offline)")
    revision: str | None = Field(None, description="Hub revision (branch, tag or commit)")
    gguf_file: str | None = Field(None, description="GGUF file name inside `id` (folder or repo)")
    dtype: Dtype = "float32"
    device: Annotated[str, Field(pattern=DEVICE)] = Field(
        "cpu", description="torch device when device_map is not set (cpu, cuda, cuda:1, mps)"
    )
    device_map: str | dict[str, Any] | None = Field(None, description="accelerate device_map")
    max_memory: dict[str, str] | None = Field(None, description="per-device memory caps")
    task: Literal["auto", "causal-lm", "sequence-classification"] = "auto"
    base_model: str | None = Field(
        None,
        description="Hub id of the base for the model card (default: the Hub id, or read from "
        "GGUF metadata, a wheel's model card or the config's _name_or_path)",
    )

    @field_validator("device_map", mode="before")
    @classmethod
    def _device_map(cls, v: Any) -> Any:
        if v is None or isinstance(v, (str, dict)):
            return v
        raise ValueError(
            "must be a string such as 'auto' or a mapping of module names to devices, "
            f"got {_yaml_type(v)}"
        )

    @field_validator("id")
    @classmethod
    def _nonempty(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must not be empty")
        return v


class DataSpec(_Strict):
    """Labelled concept data: a Hub data set id or a local .jsonl/.json/.csv file."""

    source: PathStr = Field(
        min_length=1, description="Hub data set id or local jsonl/json/csv file"
    )
    config: str | None = Field(None, description="Hub data set configuration (subset)")
    split: str = "train"
    eval_source: PathStr | None = Field(
        None, description="separate evaluation data (default: source)"
    )
    eval_split: str | None = None
    text_field: str = "text"
    label_field: str = "label"
    label_names: list[str] | None = Field(
        None, min_length=1, description="names of the label ids, in order"
    )
    fit_per_class: Annotated[int, Field(ge=2)] = 100
    eval_per_class: Annotated[int, Field(ge=1)] = 50
    max_length: Annotated[int, Field(ge=8)] = 256
    token_classes: dict[str, list[str]] | None = Field(
        None,
        description="token-level concepts (App. K): class -> words, e.g. {he: [he], she: [she]}; "
        "`source` is then running text (.txt/.raw file or Hub text data set) and each example "
        "is the context right before one of the words",
    )
    context_words: Annotated[int, Field(ge=1)] = Field(
        48, description="token concepts: words of context before each target word"
    )

    @field_validator("token_classes", mode="before")
    @classmethod
    def _one_word_shorthand(cls, v: Any) -> Any:
        if isinstance(v, dict):
            return {k: [w] if isinstance(w, str) else w for k, w in v.items()}
        return v


class PromptSpec(_Strict):
    """Few-shot prompt for decoder LMs; the hidden state is read at the last prompt token."""

    instruction: str = ""
    template: str = Field("{text}", description="query template with a {text} placeholder")
    answer_prefix: str = Field("", description="text between the query and the label word")
    shots: Annotated[int, Field(ge=0)] = 4
    shot_separator: str = "\n\n"
    label_words: list[str] | None = Field(None, description="one word per label, e.g. ' Sports'")
    calibrate: bool = Field(False, description="contextual calibration with a content-free query")
    chat: bool = Field(False, description="wrap the prompt in the tokenizer's chat template")

    @field_validator("template")
    @classmethod
    def _has_text(cls, v: str) -> str:
        if "{text}" not in v:
            raise ValueError("must contain the placeholder {text}")
        return v


class OperatorSpec(_Strict):
    """The range-gated operator phi and its parameters."""

    name: OperatorName = "zero"
    alpha: Annotated[float, Field(ge=0)] = 0.5
    beta: Annotated[float, Field(ge=0)] = 0.5
    strength: float = Field(1.0, description="steering coefficient a")
    mean_source: PathStr | None = Field(None, description="general text for `mean` (default: data)")


class EditSpec(_Strict):
    """One edit: which concepts, where, which neurons, which range width, which operator."""

    name: str | None = None
    concepts: list[str] = Field(min_length=1)
    layer: int | Literal["last"] = "last"
    saliency: Saliency = "max"
    top_p: Annotated[float, Field(gt=0, le=1)] = 0.3
    tau: Annotated[float, Field(gt=0)] = 2.5
    operator: OperatorSpec = OperatorSpec()
    positions: Literal["all", "last"] = Field("all", description="tokens the gate acts on")
    range: RangeShape = Field(
        "sigma", description="range shape: mu ± tau·sigma, or empirical quantiles (`quantiles`)"
    )
    quantiles: list[float] | None = Field(
        None,
        description="[q_lo, q_hi] of the concept's activations for range: quantile "
        "(default [0.01, 0.99])",
    )
    trim_overlap: bool = Field(
        False,
        description="shrink each range to where the concept's density exceeds the pooled "
        "density of the other concepts (Gaussian statistics)",
    )
    selectivity: Selectivity = Field(
        "mass",
        description="saliency selective: mass (share of the concept inside its range minus "
        "the others' share) or auroc (Gaussian |2·AUROC - 1| against each other concept)",
    )
    magnitude_weight: Annotated[float, Field(ge=0)] = Field(
        0.0, description="saliency selective: score = selectivity × (mean|h| / max mean|h|)^w"
    )

    @field_validator("quantiles")
    @classmethod
    def _quantiles(cls, v: list[float] | None) -> list[float] | None:
        if v is None:
            return v
        if len(v) != 2:
            raise ValueError(f"must be two numbers [q_lo, q_hi], got {len(v)}")
        if not all(0 < q < 1 for q in v):
            raise ValueError(f"each quantile must lie strictly between 0 and 1, got {v}")
        if v[0] >= v[1]:
            raise ValueError(f"must be in increasing order (q_lo < q_hi), got {v}")
        return v

    @field_validator("layer", mode="before")
    @classmethod
    def _layer(cls, v: Any) -> Any:
        if v == "last" or (isinstance(v, int) and not isinstance(v, bool)):
            return v
        if isinstance(v, str) and re.fullmatch(r"0|-?[1-9][0-9]*", v):  # canonical only: no -0
            return int(v)
        raise ValueError(f"must be a layer index (0, 1, ..., -1 for the last) or 'last', got {v!r}")

    @field_validator("operator", mode="before")
    @classmethod
    def _operator_shorthand(cls, v: Any) -> Any:
        if isinstance(v, str):
            return {"name": v}
        if not isinstance(v, (bool, int, float, list)):
            return v
        raise ValueError(
            f"must be an operator name or a mapping with a `name` key, got {_yaml_type(v)}"
        )


class EvalSpec(_Strict):
    """Evaluation of the edit."""

    enabled: bool = True
    curate: bool = Field(False, description="keep only eval examples the base model gets right")
    baselines: list[Literal["neuron", "steer", "ablate", "leace", "paper"]] = Field(
        ["neuron"],
        description="comparisons: neuron masking (same operator on the whole neuron), "
        "activation steering x + a·r, directional ablation x - r̂r̂ᵀx (r: concept minus rest), "
        "LEACE (closed-form linear concept erasure, one eraser per target concept), "
        "paper (the paper's default edit: last layer, max saliency, top 30 %, tau 2.5, zero)",
    )
    probe: bool = Field(
        False, description="accuracy of a linear concept probe on each method's activations"
    )
    steer_strength: float = Field(-1.0, description="a of the activation-steering baseline")
    perplexity_source: PathStr | None = Field(None, description="raw text file or Hub data set")
    perplexity_windows: Annotated[int, Field(ge=0)] = 8
    perplexity_window: Annotated[int, Field(ge=16)] = 256


def _interval(v: list[float]) -> list[float]:
    if len(v) != 2 or v[0] > v[1]:
        raise ValueError(f"must be [low, high] with low <= high, got {v}")
    return v


Interval = Annotated[list[float], AfterValidator(_interval)]


class SearchSpace(_Strict):
    """What `nledit tune` searches over; a list of one value or [x, x] fixes a parameter."""

    layers: list[int | Literal["last"]] = Field(
        ["last"], min_length=1, description="candidate layers (indices, negative, or last)"
    )
    saliency: list[Saliency] = Field(["max", "probeless", "selective"], min_length=1)
    top_p: Interval = Field([0.02, 0.5], description="fraction of neurons, [low, high]")
    log_top_p: bool = Field(True, description="sample top_p on a log scale")
    range: list[RangeShape] = Field(["sigma", "quantile"], min_length=1)
    tau: Interval = Field([0.5, 4.0], description="range width for range: sigma (and adaptive)")
    q_lo: Interval = Field([0.001, 0.2], description="lower quantile for range: quantile")
    q_hi: Interval = Field([0.8, 0.999], description="upper quantile for range: quantile")
    trim_overlap: list[bool] = Field([False, True], min_length=1)
    selectivity: list[Selectivity] = Field(["mass", "auroc"], min_length=1)
    magnitude_weight: Interval = Field([0.0, 2.0], description="for saliency: selective")
    operators: list[TunableOperator] = Field(["zero"], min_length=1)
    positions: list[Literal["all", "last"]] | None = Field(
        None,
        min_length=1,
        description="tokens the gate acts on: all, or the read token (default: the edit's own)",
    )
    alpha: Interval = Field([0.0, 1.0], description="dampen factor")
    beta: Interval = Field([0.1, 1.0], description="adaptive factor")

    def problems(self, at: str = "tune.space") -> list[str]:
        """Bounds the interval fields must respect, as ``field.path: message``."""
        out = []
        if not (self.top_p[0] > 0 and self.top_p[1] <= 1):
            out.append(f"{at}.top_p: must lie in (0, 1], got {self.top_p}")
        if self.tau[0] <= 0:
            out.append(f"{at}.tau: must be positive, got {self.tau}")
        for name in ("q_lo", "q_hi"):
            q = getattr(self, name)
            if not (q[0] > 0 and q[1] < 1):
                out.append(f"{at}.{name}: quantiles must lie strictly between 0 and 1, got {q}")
        if self.q_lo[1] >= self.q_hi[0]:
            out.append(
                f"{at}.q_lo: its high end {self.q_lo[1]} must be below the low end of "
                f"{at}.q_hi ({self.q_hi[0]})"
            )
        for name in ("magnitude_weight", "alpha", "beta"):
            if getattr(self, name)[0] < 0:
                out.append(f"{at}.{name}: must be >= 0, got {getattr(self, name)}")
        return out


class TuneSpec(_Strict):
    """`nledit tune`: a multi-objective search over one edit, on a validation split."""

    trials: Annotated[int, Field(ge=1)] = Field(
        30, description="finished trials the study should hold; a rerun continues up to it"
    )
    seed: int | None = Field(None, description="sampler seed (default: the recipe's seed)")
    sampler: Literal["tpe", "nsga2", "random"] = "tpe"
    dir: PathStr = Field("runs/tune", description="output folder: study, tables, plot, recipe")
    storage: Annotated[str, Field(pattern=STORAGE)] | None = Field(
        None, description="Optuna storage URL, e.g. sqlite:///study.db (default: sqlite in dir)"
    )
    study: str | None = Field(None, description="study name (default: from the recipe's hash)")
    edit: Annotated[int, Field(ge=0)] = Field(0, description="index of the edit to tune")
    val_per_class: Annotated[int, Field(ge=2)] = Field(
        40, description="validation examples per concept, after the fitting examples"
    )
    perplexity_windows: Annotated[int, Field(ge=0)] = Field(
        4, description="perplexity windows for tuning, after eval.perplexity_windows"
    )
    objectives: list[Objective] = Field(
        ["selectivity", "d_acc", "d_ppl"],
        min_length=1,
        description="selectivity: target drop minus collateral change (``tune_pick``)",
    )
    keep: Annotated[float, Field(gt=0)] = Field(
        0.9,
        description="pick rule: trials within this share of the best selectivity compete "
        "on perplexity",
    )
    pick: int | None = Field(None, description="trial number to pick instead of the rule")
    evaluate: bool = Field(True, description="evaluate the pick on the held-out eval split")
    space: SearchSpace = SearchSpace()

    @field_validator("objectives")
    @classmethod
    def _unique(cls, v: list[str]) -> list[str]:
        dups = [x for i, x in enumerate(v) if x in v[:i]]
        if dups:
            raise ValueError(f"{dups[0]!r} is listed twice")
        return v


class OutputSpec(_Strict):
    dir: PathStr = "out"
    overwrite: bool = False
    method: Literal["range", "neuron"] = Field(
        "range",
        description="gates the checkpoint carries: `range` (the edit) or `neuron` (the same "
        "neurons and operator on the whole neuron, the neuron-masking baseline, for A/B "
        "comparisons under lm-eval)",
    )
    weights: Literal["copy", "reference"] = Field(
        "copy",
        description="`copy` the base weights into the checkpoint, or `reference` them: a "
        "weight-free checkpoint that loads them from the recorded local folder or pinned Hub "
        "commit and checks their sha256",
    )


class SweepSpec(_Strict):
    """`nledit sweep`: range vs neuron masking of the first edit over one of its settings."""

    over: Literal["tau", "top_p", "layer"] = Field("tau", description="the setting to vary")
    values: list[int | float] | None = Field(
        None, description="values to try (default: App. I taus, Fig. 4 fractions, or a spread)"
    )
    out: PathStr = Field("runs/sweep", description="directory for sweep_<over>.{csv,json,md,png}")

    @field_validator("values")
    @classmethod
    def _values_fit(cls, values: list[int | float] | None, info: Any) -> list[int | float] | None:
        over = info.data.get("over")
        if values is not None and not values:
            raise ValueError("must not be empty (leave it out for the defaults)")
        bad = []
        for v in values or []:
            if over == "tau" and not v > 0:
                bad.append(f"{v!r} (tau must be > 0)")
            elif over == "top_p" and not 0 < v <= 1:
                bad.append(f"{v!r} (top_p must be in (0, 1])")
            elif over == "layer" and float(v) != int(v):
                bad.append(f"{v!r} (layers are whole numbers)")
        if bad:
            raise ValueError(f"not valid for sweep.over {over!r}: " + ", ".join(bad))
        return values


class TrainHeadSpec(_Strict):
    """`nledit train-head`: fine-tune a classification head on a plain encoder (App. H)."""

    base: PathStr = Field(description="encoder without a head: Hub id, local folder or pypi:<pkg>")
    data: PathStr = Field(description="labelled training data: local jsonl/json/csv or Hub id")
    split: str = "train"
    eval_data: PathStr | None = Field(None, description="held-out data (default: split off `data`)")
    eval_split: str = "test"
    text_field: str = "text"
    label_field: str = "label"
    label_names: list[str] | None = Field(None, description="default: labels.json or the data")
    train_examples: Annotated[int, Field(ge=2)] = Field(
        2000, description="training examples, balanced over the classes"
    )
    eval_examples: Annotated[int, Field(ge=1)] = Field(400, description="held-out examples")
    epochs: Annotated[int, Field(ge=1)] = 1
    lr: Annotated[float, Field(gt=0)] = 5e-5
    weight_decay: Annotated[float, Field(ge=0)] = 0.01
    warmup: Annotated[float, Field(ge=0, lt=1)] = Field(0.1, description="share of steps")
    batch_size: Annotated[int, Field(ge=1)] = 16
    max_length: Annotated[int, Field(ge=8)] = 64
    seed: int = 0
    out: PathStr | None = Field(
        None, description="checkpoint folder (default: the recipe's model.id)"
    )
    overwrite: bool = False


class Recipe(_Strict):
    """A whole nledit recipe."""

    model: ModelSpec
    data: DataSpec
    prompt: PromptSpec = PromptSpec()
    edits: list[EditSpec] = Field(min_length=1)
    eval: EvalSpec = EvalSpec()
    output: OutputSpec = OutputSpec()
    tune: TuneSpec = TuneSpec()
    sweep: SweepSpec = SweepSpec()
    train_head: TrainHeadSpec | None = Field(
        None, description="how `nledit train-head` makes the classifier that model.id names"
    )
    seed: int = 0
    batch_size: Annotated[int, Field(ge=1)] = 8

    @model_validator(mode="after")
    def _cross_checks(self) -> Recipe:
        problems: list[str] = []
        names = self.data.label_names
        if self.data.token_classes is not None:  # token concepts: running text, no shots
            problems += _token_problems(self.data, self.prompt)
            self.prompt = _token_prompt(self.data, self.prompt)
            names = names or list(self.data.token_classes)
        words = self.prompt.label_words
        for dup in _duplicates(names or []):
            problems.append(f"data.label_names: {dup!r} is listed twice; names must be unique")
        if names is not None and words is not None and len(words) != len(names):
            problems.append(
                f"prompt.label_words: {len(words)} words for {len(names)} labels in "
                "data.label_names"
            )
        seen: set[str] = set()
        for i, edit in enumerate(self.edits):
            for c in edit.concepts if names is not None else []:
                if c not in names:
                    problems.append(
                        f"edits.{i}.concepts: {c!r} is not a label; labels are {names}"
                        + _suggest(c, names)
                    )
            for dup in _duplicates(edit.concepts):
                problems.append(f"edits.{i}.concepts: {dup!r} is listed twice")
            problems += _edit_combos(edit, i)
            name = edit_name(edit, i)
            if name in seen:
                problems.append(f"edits.{i}.name: duplicate edit name {name!r}")
            seen.add(name)
        problems += self.tune.space.problems()
        if self.tune.edit >= len(self.edits):
            problems.append(
                f"tune.edit: {self.tune.edit} is not an edit index; the recipe has "
                f"{len(self.edits)} edit(s)"
            )
        if problems:
            raise ValueError("\n".join(problems))
        return self


def _token_problems(data: DataSpec, prompt: PromptSpec) -> list[str]:
    """Token concepts (App. K): one-unit words in one class each; a prompt that is the text."""
    import re

    classes = data.token_classes or {}
    out = []
    if len(classes) < 2:
        out.append(f"data.token_classes: needs at least two classes, got {len(classes)}")
    owner: dict[str, str] = {}
    for name, words in classes.items():
        if not words:
            out.append(f"data.token_classes.{name}: must list at least one word")
        for w in words:
            if re.fullmatch(r"\w+|[^\w\s]", w) is None:
                out.append(
                    f"data.token_classes.{name}: {w!r} is not a single word or punctuation mark"
                )
            elif owner.setdefault(w, name) != name:
                out.append(f"data.token_classes.{name}: {w!r} is also a word of {owner[w]!r}")
    if data.label_names is not None and data.label_names != list(classes):
        out.append(
            f"data.label_names: token concepts are named by the keys of data.token_classes "
            f"({list(classes)}); leave label_names out"
        )
    if "shots" in prompt.model_fields_set and prompt.shots:
        out.append("prompt.shots: token concepts read running text and take no shots; use 0")
    for key in ("instruction", "answer_prefix"):
        if getattr(prompt, key):
            out.append(f"prompt.{key}: token concepts read running text as it is; leave it empty")
    if prompt.template != "{text}":
        out.append("prompt.template: token concepts read running text as it is; use '{text}'")
    if prompt.chat:
        out.append("prompt.chat: token concepts read running text, not a chat; use false")
    for w in prompt.label_words or []:
        if not w.strip():
            out.append(f"prompt.label_words: {w!r} has no word after its whitespace")
    return out


def _token_prompt(data: DataSpec, prompt: PromptSpec) -> PromptSpec:
    """Token concepts take no shots; each class is scored by " " + its first word."""
    update: dict[str, Any] = {}
    if "shots" not in prompt.model_fields_set:
        update["shots"] = 0
    if prompt.label_words is None and data.token_classes:
        update["label_words"] = [" " + (ws[0] if ws else "") for ws in data.token_classes.values()]
    return prompt.model_copy(update=update) if update else prompt


def _edit_combos(edit: EditSpec, i: int) -> list[str]:
    """Options that only make sense together with another option's value."""
    out = []
    if edit.quantiles is not None and edit.range != "quantile":
        out.append(f"edits.{i}.quantiles: only used with range: quantile (range is {edit.range})")
    if edit.saliency != "selective":
        if edit.selectivity != "mass":
            out.append(f"edits.{i}.selectivity: only used with saliency: selective")
        if edit.magnitude_weight != 0:
            out.append(f"edits.{i}.magnitude_weight: only used with saliency: selective")
    return out


def edit_name(edit: EditSpec, index: int) -> str:
    """A stable name for an edit: its own, or one built from its concepts and index."""
    if edit.name:
        return edit.name
    return f"edit{index}_" + "_".join(_slug(c) for c in edit.concepts)


def _duplicates(items: list[str]) -> list[str]:
    """Items that occur more than once, each named once, in order of first repeat."""
    seen: set[str] = set()
    dups: list[str] = []
    for x in items:
        if x in seen and x not in dups:
            dups.append(x)
        seen.add(x)
    return dups


def _slug(s: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in s).strip("-").lower() or "c"


def _suggest(word: str, options: list[str]) -> str:
    close = difflib.get_close_matches(word, options, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _fields_at(loc: tuple[Any, ...]) -> list[str]:
    """Valid field names of the model that holds the field at ``loc`` (for suggestions)."""
    model: Any = Recipe
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part) if hasattr(model, "model_fields") else None
        if field is None:
            return []
        ann = field.annotation
        inner = getattr(ann, "__args__", None)
        model = next((a for a in (inner or (ann,)) if hasattr(a, "model_fields")), None)
        if model is None:
            return []
    return list(model.model_fields) if hasattr(model, "model_fields") else []


def _format_errors(err: ValidationError) -> list[str]:
    out: list[str] = []
    for e in err.errors():
        loc = tuple(p for p in e["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        path = ".".join(str(p) for p in loc) or "recipe"
        if e["type"] == "extra_forbidden":
            key = str(loc[-1])
            out.append(f"{path}: unknown key{_suggest(key, _fields_at(loc))}")
        elif e["type"] == "missing":
            out.append(f"{path}: required field is missing")
        elif e["type"] == "model_type":
            out.append(f"{path}: expected a mapping, got {_yaml_type(e['input'])}")
        elif e["type"] == "too_short" and e.get("ctx", {}).get("min_length") == 1:
            out.append(f"{path}: must not be empty")
        elif e["type"] == "string_pattern_mismatch":
            out.append(f"{path}: {e['input']!r} is not valid here (expected {e['ctx']['pattern']})")
        elif e["type"] == "finite_number":
            out.append(f"{path}: must be a finite number, got {_shown(e['input'])}")
        elif e["type"] in _TYPE_ERRORS:
            given = f"{_yaml_type(e['input'])} {_shown(e['input'])}".strip()
            out.append(f"{path}: {e['msg']}, got {given}")
        else:
            msg = e["msg"].removeprefix("Value error, ")
            if path == "recipe":  # cross-field checks carry their own paths
                out.extend(msg.splitlines())
            else:
                out.append(f"{path}: {msg}")
    return out


# Strict type errors: the message also says what was given (a boolean where a number belongs).
_TYPE_ERRORS = {"int_type", "float_type", "bool_type", "string_type", "list_type", "dict_type"}


def _shown(value: Any) -> str:
    """A scalar as YAML writes it (``true``, ``.inf``), a collection elided."""
    if isinstance(value, bool):
        return "(true)" if value else "(false)"
    if isinstance(value, float) and not math.isfinite(value):
        return ".nan" if math.isnan(value) else ("-.inf" if value < 0 else ".inf")
    if isinstance(value, (int, float, str)):
        return f"({value!r})" if len(repr(value)) <= 40 else ""
    return ""


def _yaml_type(value: Any) -> str:
    """The YAML name of a parsed value's type, for messages."""
    if value is None:
        return "nothing (null)"
    kinds = {bool: "a boolean", int: "a number", float: "a number", str: "a string"}
    kinds |= {list: "a list", dict: "a mapping"}
    return kinds.get(type(value), type(value).__name__)


def parse_recipe(data: Any, source: str = "<recipe>") -> Recipe:
    """Validate a mapping as a recipe, raising :class:`RecipeError` with every problem."""
    if data is None:
        raise RecipeError(
            source, ["recipe: the recipe is empty; expected a mapping with model, data and edits"]
        )
    if not isinstance(data, dict):
        raise RecipeError(
            source,
            [f"recipe: expected a mapping with model, data and edits, got {_yaml_type(data)}"],
        )
    scanned = _scan_problems(data, [])
    if scanned:
        raise RecipeError(source, scanned)
    try:
        return Recipe.model_validate(data)
    except ValidationError as err:
        raise RecipeError(source, _format_errors(err)) from None


FLOAT32_MAX = 3.4028234663852886e38  # ranges and operator values are stored as float32


def _scan_problems(value: Any, path: list[str]) -> list[str]:
    """Values no field can take: a NUL character in a string, a number beyond float32."""
    where = ".".join(path) or "recipe"
    if isinstance(value, str):
        return [f"{where}: contains a NUL character (\\0)"] if "\0" in value else []
    if isinstance(value, float) and math.isfinite(value) and abs(value) > FLOAT32_MAX:
        return [f"{where}: {value!r} does not fit a 32-bit float (the type nledit stores)"]
    if isinstance(value, dict):
        out = [f"{where}: a key contains a NUL character" for k in value if "\0" in str(k)]
        return out + [p for k, v in value.items() for p in _scan_problems(v, [*path, str(k)])]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _scan_problems(v, [*path, str(i)])]
    return []


def load_recipe_text(path: str | Path) -> tuple[str, Any]:
    """Read a recipe file as strict YAML; errors (and keys given twice) name the file and line."""
    p = Path(path)
    if p.is_dir():
        raise RecipeError(str(p), [f"recipe: file not found: {p} is a folder, not a recipe file"])
    if not p.is_file():
        raise RecipeError(str(p), [f"recipe: file not found: {p}"])
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise RecipeError(str(p), [f"recipe: not a UTF-8 text file ({err.reason})"]) from None
    except OSError as err:
        raise RecipeError(str(p), [f"recipe: cannot read {p} ({err.strerror})"]) from None
    try:
        duplicates = strict_yaml.problems(text)
        data = strict_yaml.load(text)
    except yaml.YAMLError as err:
        problem = strict_yaml.describe_error(err)
        raise RecipeError(str(p), [f"recipe: YAML syntax error at {problem}"]) from None
    if duplicates:
        raise RecipeError(str(p), duplicates)
    return text, data


def load_recipe(path: str | Path, overrides: dict[str, Any] | None = None) -> tuple[Recipe, str]:
    """Load and validate a recipe file; ``overrides`` maps dotted paths to values."""
    text, data = load_recipe_text(path)
    if overrides and (data is None or isinstance(data, dict)):
        data = data or {}
        for dotted, value in overrides.items():
            try:
                set_dotted(data, dotted, value)
            except (LookupError, TypeError, AttributeError) as err:
                raise RecipeError(
                    str(path), [f"{dotted}: cannot apply this override ({err})"]
                ) from None
        text = yaml.safe_dump(data, sort_keys=False)
    return parse_recipe(data, str(path)), text


def set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``a.b.0.c`` in nested dicts/lists, creating mappings on the way."""
    parts = dotted.split(".")
    cur: Any = data
    for part in parts[:-1]:
        key: Any = int(part) if part.isdigit() and isinstance(cur, list) else part
        cur = cur.setdefault(key, {}) if isinstance(cur, dict) else cur[key]
    last: Any = int(parts[-1]) if parts[-1].isdigit() and isinstance(cur, list) else parts[-1]
    cur[last] = value


def recipe_hash(text: str) -> str:
    """sha256 of the recipe text as given (the recipe is stored verbatim next to the model)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


EDIT_FIELDS = {"model": {"id", "revision", "gguf_file", "task"}, "data": True, "prompt": True}


def edit_definition(recipe: Recipe) -> dict[str, Any]:
    """What defines the edit: the base model, the data, the prompt, the edits and the seed.

    Not how it is run (device, dtype, batch size), evaluated, tuned, swept or written."""
    body = recipe.model_dump(mode="json", include={**EDIT_FIELDS, "edits": True, "seed": True})
    return body


def edit_hash(recipe: Recipe | dict[str, Any]) -> str:
    """sha256 of :func:`edit_definition` (or of a definition given as a mapping).

    Equal for the same edit whatever the other sections say, so the same edit and seed give a
    byte-identical range file.
    """
    import json

    body = recipe if isinstance(recipe, dict) else edit_definition(recipe)
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
