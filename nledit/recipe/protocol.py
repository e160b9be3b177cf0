"""Recipe parts that pin an experimental protocol down: which demonstrations, which examples
in which order, how many must be classified correctly, and where indices come from."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from ..data.blank import blank
from .base import PathStr, StrictModel

Rounding = Literal["round", "floor", "ceil"]
Tokenization = Literal["split", "whole"]
Bos = Literal["auto", "add", "none"]
Collateral = Literal["macro", "pooled"]
ShotSampling = Literal["first_classes", "per_class"]
TextStep = Literal["space_lines_to_empty", "strip_lines"]


class Demonstration(StrictModel):
    """One demonstration: a row of ``data.source`` by 0-based index, or a text and its label."""

    index: Annotated[int, Field(ge=0)] | None = Field(
        None, description="0-based row of data.source (its text and label are used)"
    )
    text: str | None = None
    label: str | int | None = Field(None, description="label name or id (with `text`)")

    @model_validator(mode="after")
    def _one_form(self) -> Demonstration:
        by_index = self.index is not None
        by_text = self.text is not None or self.label is not None
        if by_index == by_text:
            raise ValueError("give either `index`, or `text` and `label`")
        if by_text and (self.text is None or self.label is None or blank(self.text)):
            raise ValueError("a demonstration by text needs both a non-empty `text` and `label`")
        return self


class IndexFile(StrictModel):
    """Per-class row indices read from a JSON file: ``{class name: [index, ...]}`` at ``key``."""

    file: PathStr = Field(description="JSON file holding the mapping")
    key: str | None = Field(
        None, description="dotted path to the mapping inside the file (default: the whole file)"
    )


ClassIndices = IndexFile | dict[str, list[Annotated[int, Field(ge=0)]]]


class Curation(StrictModel):
    """Classify a class's candidates in order; keep the first ``n`` the base model gets right.

    At most ``budget`` candidates are tried; a class keeping fewer than ``min`` examples is
    reported as not evaluable and dropped from the edits' targets."""

    n: Annotated[int, Field(ge=1)] = Field(description="correct examples to keep per class")
    budget: Annotated[int, Field(ge=1)] | None = Field(
        None, description="most candidates tried per class (default: all)"
    )
    min: Annotated[int, Field(ge=0)] = Field(
        0, description="a class with fewer kept examples is not evaluable"
    )

    @model_validator(mode="after")
    def _consistent(self) -> Curation:
        if self.min > self.n:
            raise ValueError(f"min ({self.min}) exceeds n ({self.n})")
        if self.budget is not None and self.budget < self.n:
            raise ValueError(f"budget ({self.budget}) is smaller than n ({self.n})")
        return self
