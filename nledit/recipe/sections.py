"""The recipe sections that define an edit: model, data, prompt, operator, edits, evaluation."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    Field,
    field_validator,
    model_validator,
)

from ..runtime.gate import TAU
from .base import (
    DEVICE,
    Dtype,
    PathStr,
    RangeShape,
    Saliency,
    Seed,
    Selectivity,
    StrictModel,
    VisibleStr,
    slug,
    yaml_type_name,
)
from .operator_section import OperatorField, operator_section
from .presets import with_preset
from .protocol import (
    Bos,
    ClassIndices,
    Collateral,
    Curation,
    Demonstration,
    Rounding,
    ShotSampling,
    TextStep,
    Tokenization,
)


class ModelSpec(StrictModel):
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
        if isinstance(v, str) and v not in DEVICE_MAP_STRATEGIES and not re.match(DEVICE, v):
            raise ValueError(
                f"must be {', '.join(DEVICE_MAP_STRATEGIES)}, a device (cpu, cuda, cuda:1, mps) "
                f"or a mapping of module names to devices, got {v!r}"
            )
        if v is None or isinstance(v, (str, dict)):
            return v
        raise ValueError(
            "must be a string such as 'auto' or a mapping of module names to devices, "
            f"got {yaml_type_name(v)}"
        )

    @field_validator("id")
    @classmethod
    def _nonempty(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must not be empty")
        return v


# accelerate's device_map strategies (a device name or a mapping is accepted as well)
DEVICE_MAP_STRATEGIES = ("auto", "balanced", "balanced_low_0", "sequential")


class DataSpec(StrictModel):
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
    label_names: list[VisibleStr] | None = Field(
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
    fit_indices: ClassIndices | None = Field(
        None,
        description="fitting candidates per class: 0-based rows of `source` in the order they "
        "are tried (a mapping, or {file, key} into a JSON file); replaces the seeded draw",
    )
    eval_indices: ClassIndices | None = Field(
        None,
        description="evaluation candidates per class: rows of `eval_source` (else `source`)",
    )
    fit_curate: Curation | None = Field(
        None, description="keep only fitting examples the base model classifies correctly"
    )
    eval_curate: Curation | None = Field(
        None,
        description="classify evaluation candidates until n are correct (within a budget); "
        "classes under `min` are not evaluable",
    )

    @field_validator("token_classes", mode="before")
    @classmethod
    def _one_word_shorthand(cls, v: Any) -> Any:
        if isinstance(v, dict):
            return {k: [w] if isinstance(w, str) else w for k, w in v.items()}
        return v


class PromptSpec(StrictModel):
    """Few-shot prompt for decoder LMs; the hidden state is read at the last prompt token."""

    instruction: str = ""
    template: str = Field("{text}", description="query template with a {text} placeholder")
    answer_prefix: str = Field("", description="text between the query and the label word")
    shots: Annotated[int, Field(ge=0)] = 4
    shot_separator: str = "\n\n"
    label_words: list[VisibleStr] | None = Field(
        None, description="one word per label, e.g. ' Sports'"
    )
    calibrate: bool | Literal["auto"] = Field(
        "auto",
        description="contextual calibration with a content-free query; auto: only where it "
        "raises the base model's balanced accuracy on the fitting split",
    )

    @field_validator("calibrate", mode="before")
    @classmethod
    def _calibrate_choice(cls, v: Any) -> Any:
        if v is True or v is False or v == "auto":
            return v
        raise ValueError(f"Input should be a valid boolean or 'auto', got {v!r}")

    chat: bool = Field(False, description="wrap the prompt in the tokenizer's chat template")
    demonstrations: list[Demonstration] | None = Field(
        None, description="the demonstrations in prompt order (replaces `shots`)"
    )
    shot_sampling: ShotSampling = Field(
        "first_classes",
        description="first_classes: shot i goes to class i mod k; per_class: the classes that "
        "get the extra shots are drawn with `shot_seed`, so every class can appear",
    )
    shot_seed: Seed | None = Field(None, description="seed of the shot draw (default: seed)")
    shot_words: Annotated[int, Field(ge=1)] | None = Field(
        None, description="cut each demonstration to its first N words"
    )
    normalize_whitespace: bool = Field(
        False, description="collapse runs of whitespace to one space in demonstrations and queries"
    )
    tokenization: Tokenization = Field(
        "split",
        description="split: the prompt head is tokenized on its own (cached once); whole: "
        "each prompt is tokenized as one string (the shared leading tokens are still cached)",
    )
    bos: Bos = Field("auto", description="BOS token: the tokenizer's default, add, or none")

    @field_validator("template")
    @classmethod
    def _has_text(cls, v: str) -> str:
        if "{text}" not in v:
            raise ValueError("must contain the placeholder {text}")
        return v


class EditSpec(StrictModel):
    """One edit: which concepts, where, which neurons, which range width, which operator."""

    name: str | None = None
    concepts: list[str] = Field(min_length=1)
    preset: Literal["paper", "selective"] | None = Field(
        None,
        description="named settings for the fields this edit leaves out: paper (the defaults "
        "below) or selective (layer -4, probeless, top 50 %, tau 3.5, trimmed, quorum auto)",
    )
    layer: int | Literal["last"] = "last"
    saliency: Saliency = "max"
    top_p: Annotated[float, Field(gt=0, le=1)] = 0.3
    top_rounding: Rounding = Field(
        "round", description="neurons kept: round, floor or ceil of top_p × hidden size"
    )
    top_k: Annotated[int, Field(ge=1)] | None = Field(
        None, description="keep exactly this many neurons (overrides top_p)"
    )
    # bounds: gate.TAU (more than 100 sigma would be neuron masking, not a range edit)
    tau: Annotated[float, Field(gt=TAU.gt, le=TAU.le)] = Field(TAU.default, description=TAU.doc)
    operator: OperatorField = Field(default_factory=operator_section)
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
    quorum: float | Literal["auto"] | None = Field(
        None,
        description="act on a token only when at least this share of the edit's neurons lie "
        "inside their ranges there; auto: the share that best separates the concept's fitting "
        "examples from the other concepts' (none: every in-range neuron, the paper)",
    )

    @model_validator(mode="before")
    @classmethod
    def _preset(cls, data: Any) -> Any:
        return with_preset(data)

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

    @field_validator("quorum", mode="before")
    @classmethod
    def _quorum(cls, v: Any) -> Any:
        number = isinstance(v, (int, float)) and not isinstance(v, bool)
        if v is None or v == "auto" or (number and 0 < v <= 1):  # NaN fails the comparison
            return v
        raise ValueError(f"must be a share in (0, 1], 'auto' or null, got {v!r}")

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
            f"must be an operator name or a mapping with a `name` key, got {yaml_type_name(v)}"
        )


class EvalSpec(StrictModel):
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
    generate_prompts: list[VisibleStr] = Field(
        default_factory=list,
        description="prompts whose base and edited greedy continuations the model card shows",
    )
    generate_tokens: Annotated[int, Field(ge=1, le=512)] = Field(
        30, description="new tokens per card example"
    )
    perplexity_preprocess: list[TextStep] = Field(
        [],
        description="steps applied to the perplexity text's lines before tokenizing: "
        "space_lines_to_empty (a line that is one space becomes empty), strip_lines",
    )
    collateral: Collateral = Field(
        "macro",
        description="headline CAcc/CConf: macro (mean of the other classes' means) or pooled "
        "(mean over all other-class examples); both are always reported",
    )
    baseline_edits: list[str] | None = Field(
        None, description="edit names that get the neuron baseline (default: every edit)"
    )
    seeds: Annotated[int, Field(ge=1, le=100)] = Field(
        1,
        description="repeat the data draw, fit and evaluation under this many seeds (seed, "
        "seed + 1, ...) and report mean ± sd across them; the export is the first seed's",
    )
    transfer: bool = Field(
        True,
        description="also measure the edit outside its fitting prompt: 0-shot, under "
        "`transfer_template`, and on the bare text (the label word's probability when the "
        "model continues the example freely); language models only",
    )
    transfer_template: str | None = Field(
        None,
        description="the second query template ({text} placeholder) of the transfer figure "
        "(default: derived from prompt.template, see nledit.evaluation.transfer)",
    )
    transfer_answer_prefix: str | None = Field(
        None, description="the answer prefix of the second template (default: derived)"
    )

    @field_validator("transfer_template")
    @classmethod
    def _transfer_has_text(cls, v: str | None) -> str | None:
        if v is not None and "{text}" not in v:
            raise ValueError("must contain the placeholder {text}")
        return v


def edit_combinations(edit: EditSpec, i: int) -> list[str]:
    """Options that only make sense together with another option's value."""
    out = []
    if edit.quantiles is not None and edit.range != "quantile":
        out.append(f"edits.{i}.quantiles: only used with range: quantile (range is {edit.range})")
    if edit.saliency != "selective":
        if edit.selectivity != "mass":
            out.append(f"edits.{i}.selectivity: only used with saliency: selective")
        if edit.magnitude_weight != 0:
            out.append(f"edits.{i}.magnitude_weight: only used with saliency: selective")
    if edit.quorum is not None and edit.operator.name == "leace":
        hint = " (preset: selective sets quorum: auto; write quorum: null)" if edit.preset else ""
        out.append(
            f"edits.{i}.quorum: a LEACE edit acts on the whole hidden state, not on ranges{hint}"
        )
    return out


def edit_name(edit: EditSpec, index: int) -> str:
    """A stable name for an edit: its own, or one built from its concepts and index."""
    if edit.name:
        return edit.name
    return f"edit{index}_" + "_".join(slug(c) for c in edit.concepts)
