"""Base and edited continuations of an export, side by side (`nledit generate`'s job): the
export is checked, loaded with plain transformers and both continuations of each prompt are
produced with the gates on and off."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ..data.blank import blank
from ..evaluation.generation import Decoding, compare, render
from .integrity import IntegrityError, check_export
from .write import RECIPE_FILE


def label_words(out: Path, manifest: dict[str, Any]) -> list[str]:
    """The export's label words: the recipe's prompt.label_words, else ' ' + each label name."""
    try:
        recipe = yaml.safe_load((out / RECIPE_FILE).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        recipe = {}
    words = (recipe.get("prompt") or {}).get("label_words") if isinstance(recipe, dict) else None
    if isinstance(words, list) and all(isinstance(w, str) for w in words):
        return words
    names = (manifest.get("data") or {}).get("label_names") or []
    return [" " + str(n) for n in names]


def read_prompts(prompts: list[str], prompts_file: str | None) -> list[str]:
    """The prompts given one by one plus the non-blank lines of ``prompts_file``."""
    found = list(prompts)
    if prompts_file:
        path = Path(prompts_file)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise IntegrityError(f"--prompts-file: cannot read {path}: {err}") from None
        found += [line for line in text.split("\n") if not blank(line)]
    if not found:
        raise IntegrityError("give at least one --prompt or a --prompts-file")
    return found


def compare_export(
    out: Path, prompts: list[str], decoding: dict[str, Any], device: str
) -> tuple[str, dict[str, Any]]:
    """Check the export ``out``, load it and continue each prompt with and without its gates.

    ``decoding``: the ``Decoding`` fields (max_new_tokens, sample, temperature, top_p, seed,
    chat). Returns the side-by-side text and the comparison as a JSON document.
    """
    manifest = check_export(out, "run its code", logits=True).manifest
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(out, trust_remote_code=True)
    model = AutoModelForCausalLM.from_pretrained(out, trust_remote_code=True, dtype=torch.float32)
    model.to(device).eval()
    how = Decoding(**decoding)
    comparisons = compare(model, tokenizer, prompts, label_words(out, manifest), how)
    doc = {"decoding": vars(how), "comparisons": [c.to_dict() for c in comparisons]}
    return render(comparisons), doc
