"""The recipe sections of the commands: output, tune, sweep and train-head."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    Field,
    create_model,
    field_validator,
)

from ..runtime import operators
from .base import (
    STORAGE,
    BatchSize,
    Objective,
    PathStr,
    RangeShape,
    Saliency,
    Seed,
    Selectivity,
    StrictModel,
    TunableOperator,
)
from .bounds import edit_bound_problem


def _interval(v: list[float]) -> list[float]:
    if len(v) != 2 or v[0] > v[1]:
        raise ValueError(f"must be [low, high] with low <= high, got {v}")
    return v


Interval = Annotated[list[float], AfterValidator(_interval)]


class _SearchSpaceBase(StrictModel):
    """What `nledit tune` searches over; a list of one value or [x, x] fixes a parameter.

    Each tuned operator parameter (``gate.Param.search``) has an interval of its name."""

    layers: list[int | Literal["last"]] | None = Field(
        None,
        min_length=1,
        description="candidate layers (indices, negative, or last); default: the middle layer, "
        "the one at three quarters of the depth, the fourth from last and the last",
    )
    saliency: list[Saliency] = Field(["max", "probeless", "selective"], min_length=1)
    top_p: Interval = Field([0.02, 0.5], description="fraction of neurons, [low, high]")
    log_top_p: bool = Field(True, description="sample top_p on a log scale")
    range: list[RangeShape] = Field(["sigma", "quantile"], min_length=1)
    tau: Interval = Field([0.5, 4.0], description="range width for range: sigma (and adaptive)")
    q_lo: Interval = Field([0.001, 0.2], description="lower quantile for range: quantile")
    q_hi: Interval = Field([0.8, 0.999], description="upper quantile for range: quantile")
    # Trimmed ranges with a quorum kept the other classes and general text untouched on six
    # data sets (docs/tune.md); the paper's untrimmed, quorum-free gate stays the reference.
    trim_overlap: list[bool] = Field([True], min_length=1)
    selectivity: list[Selectivity] = Field(["mass", "auroc"], min_length=1)
    magnitude_weight: Interval = Field([0.0, 2.0], description="for saliency: selective")
    quorum: list[Literal["none", "auto"]] = Field(
        ["auto"],
        min_length=1,
        description="none: every in-range neuron acts; auto: only on tokens where enough of "
        "them are inside (edits.N.quorum)",
    )
    operators: list[TunableOperator] = Field(["zero"], min_length=1)
    positions: list[Literal["all", "last"]] | None = Field(
        None,
        min_length=1,
        description="tokens the gate acts on: all, or the read token (default: the edit's own)",
    )

    def interval(self, name: str) -> list[float]:
        """The interval of tuned parameter ``name``: this space's, else its declared default
        (an operator defined after the schema was built)."""
        if name in type(self).model_fields:
            return list(getattr(self, name))
        search = operators.param_spec(name).search
        if search is None:
            raise KeyError(f"parameter {name!r} is not tuned")
        return list(search)

    def problems(self, at: str = "tune.space") -> list[str]:
        """Bounds the interval fields must respect, as ``field.path: message``."""
        out = []
        for name in ("top_p", "tau"):  # each end inside the edit field's own bounds
            interval = getattr(self, name)
            problem = next(filter(None, (edit_bound_problem(name, v) for v in interval)), None)
            if problem:
                out.append(f"{at}.{name}: {problem}, got {interval}")
        for name in ("q_lo", "q_hi"):
            q = getattr(self, name)
            if not (q[0] > 0 and q[1] < 1):
                out.append(f"{at}.{name}: quantiles must lie strictly between 0 and 1, got {q}")
        if self.q_lo[1] >= self.q_hi[0]:
            out.append(
                f"{at}.q_lo: its high end {self.q_lo[1]} must be below the low end of "
                f"{at}.q_hi ({self.q_hi[0]})"
            )
        if self.magnitude_weight[0] < 0:
            out.append(f"{at}.magnitude_weight: must be >= 0, got {self.magnitude_weight}")
        for name in operators.tuned_params():
            interval = self.interval(name)
            problem = operators.param_spec(name).problem(interval[0])
            if problem:
                out.append(f"{at}.{name}: {problem}, got {interval}")
        return out


SearchSpace = create_model(
    "SearchSpace",
    __base__=_SearchSpaceBase,
    __doc__=_SearchSpaceBase.__doc__,
    __module__=__name__,
    **{
        name: (
            Interval,
            Field(
                list(operators.param_spec(name).search or ()),
                description=operators.param_spec(name).doc or None,
            ),
        )
        for name in operators.tuned_params()
    },
)


class TuneSpec(StrictModel):
    """`nledit tune`: a multi-objective search over one edit, on a validation split."""

    trials: Annotated[int, Field(ge=1)] = Field(
        30, description="finished trials the study should hold; a rerun continues up to it"
    )
    seed: Seed | None = Field(None, description="sampler seed (default: the recipe's seed)")
    base_check: bool = Field(
        True,
        description="refuse to tune when the base model cannot do the task or the target on "
        "the validation split (``competence``); false only to smoke-test on random models",
    )
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


class OutputSpec(StrictModel):
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


class SweepSpec(StrictModel):
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
            if over in ("tau", "top_p") and edit_bound_problem(over, v):
                bad.append(f"{v!r} ({over} {edit_bound_problem(over, v)})")
            elif over == "layer" and float(v) != int(v):
                bad.append(f"{v!r} (layers are whole numbers)")
        if bad:
            raise ValueError(f"not valid for sweep.over {over!r}: " + ", ".join(bad))
        return values


# model.id naming the checkpoint the recipe's own train_head section produces (``finetune``)
TRAINED_BASE = "nledit:train_head"


class TrainHeadSpec(StrictModel):
    """`nledit train-head`: fine-tune a classifier (App. H): a fresh classification head on a
    plain encoder (``mode: head``), or a causal LM that answers the recipe's prompt with the
    label word (``mode: answer``)."""

    base: PathStr = Field(
        description="model to fine-tune: Hub id, local folder, .gguf file or pypi:<pkg>"
    )
    mode: Literal["head", "answer"] = Field(
        "head",
        description="head: encoder + new classification head, every weight trained; answer: "
        "causal LM trained to answer the recipe's zero-shot prompt with the label word, only "
        "its top `train_layers` layers and final norm (it stays a normal LM)",
    )
    train_layers: Annotated[int, Field(ge=1)] = Field(
        4,
        description="mode answer: top decoder layers trained (the rest, embeddings and the "
        "tied output head stay frozen)",
    )
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
    batch_size: BatchSize = 16
    max_length: Annotated[int, Field(ge=8)] = 64
    seed: Seed = 0
    out: PathStr | None = Field(
        None, description="checkpoint folder (default: the recipe's model.id)"
    )
    overwrite: bool = False
