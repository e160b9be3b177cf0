"""References to code an export's files may hold besides ``auto_map``, and its text files.

transformers (and the Hub libraries around it) load code from more places than ``auto_map``:
``custom_pipelines`` (``pipeline(trust_remote_code=True)``), ``custom_generate``
(``generate``), a class name field naming a class transformers does not ship, or any value of
the form ``owner/repo--module.Class`` (code in another repository). nledit writes none of them,
so any one makes the folder something other than an nledit export. Text files (the card, the
recipe, vocabularies, templates) must be UTF-8 text, and the recipe strict YAML.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from ..recipe import strict_yaml
from .files import RECIPE_FILE
from .schema import read_json

# Keys that make a transformers or Hub loader fetch or import code.
CODE_KEYS = ("custom_pipelines", "custom_generate", "trust_remote_code")
# Fields naming a class transformers instantiates by name.
CLASS_FIELDS = (
    "tokenizer_class",
    "processor_class",
    "image_processor_type",
    "feature_extractor_type",
    "video_processor_type",
)
# owner/repo--module.Class: transformers' spelling of code in another repository.
REMOTE_CODE = re.compile(r"[\w.-]+/[\w.-]+--\w+(\.\w+)+")
TEXT_SUFFIXES = (".md", ".txt", ".jinja", ".yaml")


def _ships(name: str) -> bool:
    """Whether transformers ships a class of that name (its slow-tokenizer fallback included)."""
    import transformers

    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        return False
    return any(hasattr(transformers, n) for n in (name, name.removesuffix("Fast")))


def _walk(doc: Any, at: str, problems: list[str]) -> None:
    if isinstance(doc, dict):
        for key, value in doc.items():
            where = f"{at}.{key}" if at else str(key)
            if key == "auto_map":  # gate.foreign_code's rule
                continue
            if key in CODE_KEYS:
                problems.append(f"{where}: a reference to code nledit never writes")
                continue
            shipped = isinstance(value, str) and _ships(value)
            if key in CLASS_FIELDS and value is not None and not shipped:
                problems.append(f"{where}: {value!r} is not a class transformers ships")
                continue
            _walk(value, where, problems)
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            _walk(value, f"{at}[{i}]", problems)
    elif isinstance(doc, str) and REMOTE_CODE.fullmatch(doc):
        problems.append(f"{at}: {doc[:80]!r} names code in another repository")


def read_by_loaders(name: str) -> bool:
    """Whether transformers or a Hub loader reads the JSON file ``name`` when it loads a folder:
    its configuration files (config.json, generation_config.json, tokenizer_config.json, a
    processor's). nledit's own records (manifest, results) are read by no loader."""
    return Path(name).name.endswith("config.json")


def code_references(out: Path, files: list[str]) -> list[str]:
    """Every reference to code in the configuration files of ``out`` (``read_by_loaders``)
    other than ``auto_map`` (which ``gate.foreign_code`` checks), each naming file and key."""
    problems: list[str] = []
    for name in files:
        if not read_by_loaders(name):
            continue
        doc, why = read_json(out / name)
        if why is None:
            found: list[str] = []
            _walk(doc, "", found)
            problems += [f"{name}: {p}" for p in found]
    return problems


def text_problems(out: Path, files: list[str]) -> list[str]:
    """Text files are UTF-8 text without NUL bytes; the recipe is strict YAML holding a mapping."""
    problems = []
    for name in files:
        if not name.endswith(TEXT_SUFFIXES):
            continue
        try:
            text = (out / name).read_bytes().decode("utf-8")
        except (OSError, UnicodeDecodeError) as err:
            problems.append(f"{name}: not UTF-8 text ({type(err).__name__})")
            continue
        if "\x00" in text:
            problems.append(f"{name}: holds a NUL byte; not text")
        elif name == RECIPE_FILE:
            problems += _recipe_problems(name, text)
    return problems


def _recipe_problems(name: str, text: str) -> list[str]:
    try:
        found = strict_yaml.problems(text)
        if not found and not isinstance(strict_yaml.load(text), dict):
            found = ["it holds no mapping"]
    except yaml.YAMLError as err:
        found = [strict_yaml.describe_error(err)]
    return [f"{name}: not a recipe nledit writes ({found[0]})"] if found else []
