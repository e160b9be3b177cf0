"""The whole recipe and the checks that span its sections."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    Field,
    field_validator,
    model_validator,
)

from .base import (
    MAX_BATCH,
    BatchSize,
    Seed,
    StrictModel,
    duplicate_items,
    shown_value,
    suggestion,
    yaml_type_name,
)
from .commands import OutputSpec, SweepSpec, TrainHeadSpec, TuneSpec
from .sections import (
    DataSpec,
    EditSpec,
    EvalSpec,
    ModelSpec,
    PromptSpec,
    edit_combinations,
    edit_name,
)


class Recipe(StrictModel):
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
    seed: Seed = 0
    batch_size: BatchSize | Literal["auto"] = Field(
        8, description="rows per batch, or auto: from the model's size and free memory"
    )
    threads: Annotated[int, Field(ge=1)] | None = Field(
        None, description="torch CPU threads (torch.set_num_threads); default: torch's choice"
    )

    @field_validator("batch_size", mode="before")
    @classmethod
    def _batch_size(cls, v: Any) -> Any:
        if v == "auto" or (type(v) is int and 1 <= v <= MAX_BATCH):
            return v
        if type(v) is int and v > MAX_BATCH:
            raise ValueError(f"Input should be at most {MAX_BATCH} rows per batch, or auto")
        if type(v) is int:
            raise ValueError("Input should be greater than or equal to 1, or auto")
        given = f"{yaml_type_name(v)} {shown_value(v)}".strip()
        raise ValueError(f"Input should be a valid integer or auto, got {given}")

    @model_validator(mode="after")
    def _cross_checks(self) -> Recipe:
        problems: list[str] = []
        names = self.data.label_names
        if self.data.token_classes is not None:  # token concepts: running text, no shots
            problems += _token_problems(self.data, self.prompt)
            self.prompt = _token_prompt(self.data, self.prompt)
            names = names or list(self.data.token_classes)
        words = self.prompt.label_words
        for dup in duplicate_items(names or []):
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
                        + suggestion(c, names)
                    )
            for dup in duplicate_items(edit.concepts):
                problems.append(f"edits.{i}.concepts: {dup!r} is listed twice")
            problems += edit_combinations(edit, i)
            name = edit_name(edit, i)
            if name in seen:
                problems.append(f"edits.{i}.name: duplicate edit name {name!r}")
            seen.add(name)
        for name in self.eval.baseline_edits or []:
            if name not in seen:
                problems.append(
                    f"eval.baseline_edits: {name!r} is not an edit name; edits are {sorted(seen)}"
                )
        if self.prompt.demonstrations is not None and self.data.token_classes is not None:
            problems.append("prompt.demonstrations: token concepts take no demonstrations")
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
        # a class with no word is reported on data.token_classes; it gets no label word here
        words = [ws[0] for ws in data.token_classes.values() if ws]
        if len(words) == len(data.token_classes):
            update["label_words"] = [" " + w for w in words]
    return prompt.updated(**update) if update else prompt
