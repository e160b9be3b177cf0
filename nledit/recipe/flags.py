"""The flags of the commands that take no recipe (eval, generate, verify, push), validated
the way recipe fields are: one strict pydantic model per command, every problem at once as
``--flag: message``, and a device this machine lacks refused before any work.

The recipe commands' flags are recipe fields (``commands.args.FLAG_FIELDS``); these are not,
so they get a schema of their own here rather than checks scattered over the commands.
"""

from __future__ import annotations

import argparse
import math
import os
import stat
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, ValidationInfo, field_validator

from ..errors import FlagError
from . import DEVICE, Dtype, PathStr
from .base import Seed, StrictModel, VisibleStr
from .loading import format_errors

Device = Annotated[str, Field(pattern=DEVICE)]
REPO = r"^[A-Za-z0-9][A-Za-z0-9._\-]*/[A-Za-z0-9][A-Za-z0-9._\-]*$"  # user/name
TaskName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")]


class EvalFlags(StrictModel):
    """`nledit eval`."""

    out: PathStr
    tasks: list[TaskName] = Field(min_length=1)
    data_dir: PathStr | None = None
    hub: bool = False
    limit: float | None = None
    num_fewshot: Annotated[int, Field(ge=0)] | None = None
    batch_size: Annotated[str, Field(pattern=r"^(auto(:[1-9][0-9]*)?|[1-9][0-9]*)$")] = "1"
    device: Device = "cpu"
    dtype: Dtype | Literal["auto"] = "float32"
    no_base: bool = False
    include_path: list[PathStr] | None = None

    @field_validator("tasks", mode="before")
    @classmethod
    def _split(cls, v: Any) -> Any:
        if isinstance(v, str):  # comma-separated; an empty name is an error, not skipped
            names = [t.strip() for t in v.split(",")]
            if any(not t for t in names):
                raise ValueError(f"{v!r} holds an empty task name (comma-separated names)")
            return names
        return v

    @field_validator("limit", mode="before")
    @classmethod
    def _limit(cls, v: Any) -> Any:
        if v is None:
            return v
        whole = isinstance(v, float) and math.isfinite(v) and v >= 1 and v.is_integer()
        if whole or (isinstance(v, float) and 0 < v < 1):
            return v
        raise ValueError(
            f"must be a whole number of examples ≥ 1 or a fraction in (0, 1), got {v!r}"
        )


class GenerateFlags(StrictModel):
    """`nledit generate`."""

    out: PathStr
    prompt: list[VisibleStr] = Field(default_factory=list)
    prompts_file: PathStr | None = None
    max_new_tokens: Annotated[int, Field(ge=1)] = 40
    sample: bool = False
    temperature: Annotated[float, Field(gt=0)] = 1.0
    top_p: Annotated[float, Field(gt=0, le=1)] = 1.0
    seed: Seed = 0
    chat: bool = False
    json_out: PathStr | None = None
    device: Device = "cpu"

    @field_validator("prompts_file")
    @classmethod
    def _regular_file(cls, v: str | None) -> str | None:
        """A file of prompts is a regular file (a FIFO or device would block the read)."""
        if v is not None and os.path.exists(v) and not os.path.isfile(v):
            raise ValueError(f"{v} is not a regular file")
        if v is not None and os.path.isfile(v) and not stat.S_ISREG(os.stat(v).st_mode):
            raise ValueError(f"{v} is not a regular file")
        return v

    @field_validator("json_out")
    @classmethod
    def _json_outside_export(cls, v: str | None, info: ValidationInfo) -> str | None:
        """--json never writes inside the export (it would no longer verify)."""
        out = info.data.get("out")
        if v is not None and out is not None:
            export, target = os.path.realpath(out), os.path.realpath(v)
            if target == export or target.startswith(export + os.sep):
                raise ValueError(f"{v} is inside the export {out}; write it elsewhere")
        return v


class VerifyFlags(StrictModel):
    """`nledit verify`."""

    out: PathStr
    device: Device = "cpu"


class PushFlags(StrictModel):
    """`nledit push`."""

    out: PathStr
    repo: Annotated[str, Field(pattern=REPO)]
    private: bool = False
    revision: Annotated[str, Field(min_length=1)] | None = None
    dry_run: bool = False


FLAGS: dict[str, type[StrictModel]] = {
    "eval": EvalFlags,
    "generate": GenerateFlags,
    "verify": VerifyFlags,
    "push": PushFlags,
}


def _flag(field: str) -> str:
    return "--" + {"json_out": "json"}.get(field, field).replace("_", "-")


def checked_flags(command: str, args: argparse.Namespace) -> Any:
    """The flags of ``command`` validated by its model in ``FLAGS``; problems name the flag
    (the positional folder as ``out``); the device must exist on this machine."""
    model = FLAGS[command]
    values = {k: getattr(args, k) for k in model.model_fields if hasattr(args, k)}
    try:
        flags = model.model_validate(values)
    except ValidationError as err:
        problems = []
        for line in format_errors(err):
            name, _, rest = line.partition(":")
            head = name.split(".")[0]
            shown = "OUT" if head == "out" else _flag(head)
            problems.append(f"{shown}{name[len(head) :]}:{rest}")
        raise FlagError(f"nledit {command}: " + "; ".join(problems)) from None
    if hasattr(flags, "device"):
        check_device(flags.device, "--device")
    return flags


def check_device(device: str, field: str) -> None:
    """``device`` (a torch device string) must be usable on this machine: its backend built
    in and available, and its index among the devices present."""
    import torch

    kind, _, index = device.partition(":")
    if kind in ("cpu", "meta"):
        if index and index != "0" and kind == "cpu":
            raise FlagError(f"{field}: cannot use {device!r} here: there is one cpu (cpu, cpu:0)")
        return
    backend = getattr(torch, kind, None)
    if kind == "mps":
        ok, count = torch.backends.mps.is_available(), 1
    else:
        is_available = getattr(backend, "is_available", None)
        ok = bool(is_available and is_available())
        count = backend.device_count() if ok and hasattr(backend, "device_count") else 0
    if not ok:
        raise FlagError(
            f"{field}: cannot use {device!r} here: this machine has no {kind} (use cpu)"
        )
    if index and int(index) >= count:
        raise FlagError(
            f"{field}: cannot use {device!r} here: this machine has {count} {kind} device(s) "
            f"(0..{count - 1})"
        )
