"""Reading a recipe: strict YAML in, every problem at once as ``field.path: message``; hashes."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    ValidationError,
)

from . import operator_section, strict_yaml
from .base import RecipeError, shown_value, suggestion, yaml_type_name
from .document import Recipe
from .sections import EditSpec


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


def format_errors(err: ValidationError) -> list[str]:
    out: list[str] = []
    for e in err.errors():
        loc = tuple(p for p in e["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        path = ".".join(str(p) for p in loc) or "recipe"
        if e["type"] == "extra_forbidden":
            key = str(loc[-1])
            out.append(f"{path}: unknown key{suggestion(key, _fields_at(loc))}")
        elif e["type"] == "missing":
            out.append(f"{path}: required field is missing")
        elif e["type"] == "model_type":
            out.append(f"{path}: expected a mapping, got {yaml_type_name(e['input'])}")
        elif e["type"] == "too_short" and e.get("ctx", {}).get("min_length") == 1:
            out.append(f"{path}: must not be empty")
        elif e["type"] == "string_pattern_mismatch":
            out.append(f"{path}: {e['input']!r} is not valid here (expected {e['ctx']['pattern']})")
        elif e["type"] == "finite_number":
            out.append(f"{path}: must be a finite number, got {shown_value(e['input'])}")
        elif e["type"] in _TYPE_ERRORS:
            given = f"{yaml_type_name(e['input'])} {shown_value(e['input'])}".strip()
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


def parse_recipe(data: Any, source: str = "<recipe>") -> Recipe:
    """Validate a mapping as a recipe, raising :class:`RecipeError` with every problem."""
    if data is None:
        raise RecipeError(
            source, ["recipe: the recipe is empty; expected a mapping with model, data and edits"]
        )
    if not isinstance(data, dict):
        raise RecipeError(
            source,
            [f"recipe: expected a mapping with model, data and edits, got {yaml_type_name(data)}"],
        )
    scanned = _scan_problems(data, [])
    if scanned:
        raise RecipeError(source, scanned)
    try:
        return Recipe.model_validate(data)
    except ValidationError as err:
        raise RecipeError(source, format_errors(err)) from None


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
        named = operator_section.prepare_overrides(data, list(overrides))
        for dotted, value in overrides.items():
            try:
                set_dotted(data, dotted, value)
            except (LookupError, TypeError, AttributeError) as err:
                raise RecipeError(
                    str(path), [f"{dotted}: cannot apply this override ({err})"]
                ) from None
        operator_section.finish_overrides(data, list(overrides), named)
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
PROTOCOL_FIELDS = {
    "data": ("fit_indices", "eval_indices", "fit_curate", "eval_curate"),
    "prompt": (
        "demonstrations",
        "shot_sampling",
        "shot_seed",
        "shot_words",
        "normalize_whitespace",
        "tokenization",
        "bos",
    ),
    "edits": ("top_rounding", "top_k"),
}
PROTOCOL_DEFAULTS: dict[str, Any] = {
    **dict.fromkeys(("fit_indices", "eval_indices", "fit_curate", "eval_curate"), None),
    **dict.fromkeys(("demonstrations", "shot_seed", "shot_words", "top_k"), None),
    "shot_sampling": "first_classes",
    "normalize_whitespace": False,
    "tokenization": "split",
    "bos": "auto",
    "top_rounding": "round",
}


def edit_definition(recipe: Recipe) -> dict[str, Any]:
    """What defines the edit: the base model, the data, the prompt, the edits and the seed.

    Not how it is run (device, dtype, batch size), evaluated, tuned, swept or written."""
    body = recipe.model_dump(mode="json", include={**EDIT_FIELDS, "edits": True, "seed": True})
    return _without_protocol_defaults(body)


def edit_part(edit: EditSpec) -> dict[str, Any]:
    """One edit as the definition hash reads it (its operator through ``definition()``)."""
    return {**edit.model_dump(mode="json"), "operator": edit.operator.definition()}


def _without_protocol_defaults(body: dict[str, Any]) -> dict[str, Any]:
    """``body`` without protocol options left at their defaults, so the hash of a definition
    that does not use them is what it was before they existed."""
    body = dict(body)
    for section, names in PROTOCOL_FIELDS.items():
        value = body.get(section)
        parts = value if isinstance(value, list) else [value]
        parts = [dict(p) for p in parts if isinstance(p, dict)]
        for part in parts:
            for name in names:
                if name in part and part[name] == PROTOCOL_DEFAULTS[name]:
                    del part[name]
        if isinstance(value, list):
            body[section] = parts
        elif isinstance(value, dict):
            body[section] = parts[0]
    return body


def edit_hash(recipe: Recipe | dict[str, Any]) -> str:
    """sha256 of :func:`edit_definition` (or of a definition given as a mapping).

    Equal for the same edit whatever the other sections say, so the same edit and seed give a
    byte-identical range file.
    """
    import json

    body = dict(recipe) if isinstance(recipe, dict) else edit_definition(recipe)
    # each operator as the hash has always read it (``OperatorSection.definition``), then the
    # protocol defaults left out again (validating an edit fills them in)
    body["edits"] = [edit_part(EditSpec.model_validate(e)) for e in body.get("edits", [])]
    body = _without_protocol_defaults(body)
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
