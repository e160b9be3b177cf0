"""The kinds of file an nledit export holds: the one list ``export`` writes by and
``integrity`` checks against.

Anything else in a folder (another code file, a subfolder nledit does not write, an unknown
JSON file transformers might read) makes it something other than an nledit export, whatever its
manifest says.
"""

from __future__ import annotations

import re

MANIFEST_FILE = "nledit_manifest.json"
MODELING_FILE = "modeling_nledit.py"
RANGES_FILE = "nledit_ranges.safetensors"  # the same name as gate.RANGES_FILE (self-contained)
REFERENCE_FILE = "nledit_reference.safetensors"
RECIPE_FILE = "nledit_recipe.yaml"
CARD_FILE = "README.md"
CONFIG_FILE = "config.json"
COPY_FILES = ("generation_config.json",)  # copied from the base model's folder when present
RESULT_FILES = ("results.json", "report.md", "results.csv")  # results.result_files; nledit eval
WEIGHT_SUFFIXES = (".safetensors", ".safetensors.index.json")

# What tokenizer.save_pretrained writes, for the tokenizers transformers ships.
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "vocab.txt",
    "merges.txt",
    "tokenizer.model",
    "spiece.model",
    "sentencepiece.bpe.model",
    "chat_template.jinja",
    "chat_template.json",
)
CHAT_TEMPLATES = re.compile(r"additional_chat_templates/[A-Za-z0-9_.-]+\.jinja")
# Base weights copied byte for byte: a plain file name, no path.
_WEIGHTS = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*\.safetensors(\.index\.json)?")

KINDS: dict[str, str] = {
    CONFIG_FILE: "config",
    MODELING_FILE: "run-time",
    RANGES_FILE: "range tensors",
    REFERENCE_FILE: "reference logits",
    RECIPE_FILE: "recipe",
    MANIFEST_FILE: "manifest",
    CARD_FILE: "model card",
    **{name: "generation config" for name in COPY_FILES},
    **{name: "results" for name in RESULT_FILES},
    **{name: "tokenizer" for name in TOKENIZER_FILES},
}


def file_kind(rel: str) -> str | None:
    """What kind of export file ``rel`` (a POSIX path inside the export) is; None: not one
    nledit writes."""
    if rel in KINDS:
        return KINDS[rel]
    if CHAT_TEMPLATES.fullmatch(rel):
        return "tokenizer"
    if _WEIGHTS.fullmatch(rel) and rel not in (RANGES_FILE, REFERENCE_FILE):
        return "weights index" if rel.endswith(".json") else "weights"
    return None


def is_weight_file(name: str) -> bool:
    """A base weight file (or its index) as an export may hold or reference it."""
    return file_kind(name) in ("weights", "weights index")
