"""The recipe: a YAML file naming the base model, the concept data, the prompt and the edits.

Every error is reported at once as ``field.path: message``; unknown keys are rejected with the
nearest valid name. Nothing is loaded before a recipe is valid. The schema lives in
``sections`` (what defines an edit), ``commands`` (output, tune, sweep, train-head) and
``document`` (the whole recipe); ``loading`` reads files and hashes them.
"""

from __future__ import annotations

from .base import (
    DEVICE,
    STORAGE,
    Dtype,
    Objective,
    OperatorName,
    PathStr,
    RangeShape,
    RecipeError,
    Saliency,
    Selectivity,
    TunableOperator,
)
from .commands import (
    TRAINED_BASE,
    Interval,
    OutputSpec,
    SearchSpace,
    SweepSpec,
    TrainHeadSpec,
    TuneSpec,
)
from .document import Recipe
from .loading import (
    EDIT_FIELDS,
    FLOAT32_MAX,
    edit_definition,
    edit_hash,
    edit_part,
    load_recipe,
    load_recipe_text,
    parse_recipe,
    recipe_hash,
    set_dotted,
)
from .operator_section import OperatorSection, operator_section, section_model
from .protocol import ClassIndices, Curation, Demonstration, IndexFile
from .sections import DataSpec, EditSpec, EvalSpec, ModelSpec, PromptSpec, edit_name

__all__ = [
    "DEVICE",
    "EDIT_FIELDS",
    "FLOAT32_MAX",
    "STORAGE",
    "TRAINED_BASE",
    "ClassIndices",
    "Curation",
    "DataSpec",
    "Demonstration",
    "Dtype",
    "EditSpec",
    "EvalSpec",
    "IndexFile",
    "Interval",
    "ModelSpec",
    "Objective",
    "OperatorName",
    "OperatorSection",
    "OutputSpec",
    "PathStr",
    "PromptSpec",
    "RangeShape",
    "Recipe",
    "RecipeError",
    "Saliency",
    "SearchSpace",
    "Selectivity",
    "SweepSpec",
    "TrainHeadSpec",
    "TunableOperator",
    "TuneSpec",
    "edit_definition",
    "edit_hash",
    "edit_name",
    "edit_part",
    "load_recipe",
    "load_recipe_text",
    "operator_section",
    "parse_recipe",
    "recipe_hash",
    "section_model",
    "set_dotted",
]
