"""`nledit generate OUT --prompt TEXT`: base and edited continuations of an export, side by side."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import yaml

from ..checkpoint.integrity import IntegrityError, check_export
from ..checkpoint.write import RECIPE_FILE
from ..data.blank import blank
from ..evaluation.generation import Decoding, compare, render
from ..recipe.flags import checked_flags


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


def prompts_of(args: argparse.Namespace) -> list[str]:
    prompts = list(args.prompt)
    if args.prompts_file:
        path = Path(args.prompts_file)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise IntegrityError(f"--prompts-file: cannot read {path}: {err}") from None
        prompts += [line for line in text.split("\n") if not blank(line)]
    if not prompts:
        raise IntegrityError("give at least one --prompt or a --prompts-file")
    return prompts


def check_json_target(path: Path) -> None:
    """--json may replace only an earlier comparison, never another file."""
    if path.is_symlink() or (path.exists() and not path.is_file()):
        raise IntegrityError(f"--json: {path} is not a regular file")
    if path.exists():
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError):
            doc = None
        if not (isinstance(doc, dict) and "comparisons" in doc):
            raise IntegrityError(f"--json: {path} exists and is not an nledit comparison")
    if not path.parent.is_dir():
        raise IntegrityError(f"--json: folder {path.parent} does not exist")


def cmd_generate(args: argparse.Namespace) -> int:
    """Check the export, load it with transformers, print both continuations of each prompt."""
    args = argparse.Namespace(**checked_flags("generate", args).model_dump())
    out = Path(args.out)
    prompts = prompts_of(args)
    if args.json_out:
        check_json_target(Path(args.json_out))
    manifest = check_export(out, "run its code", logits=True).manifest
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(out, trust_remote_code=True)
    model = AutoModelForCausalLM.from_pretrained(out, trust_remote_code=True, dtype=torch.float32)
    model.to(args.device).eval()
    decoding = Decoding(
        args.max_new_tokens, args.sample, args.temperature, args.top_p, args.seed, args.chat
    )
    comparisons = compare(model, tokenizer, prompts, label_words(out, manifest), decoding)
    print(render(comparisons), end="")
    if args.json_out:
        doc = {"decoding": vars(decoding), "comparisons": [c.to_dict() for c in comparisons]}
        Path(args.json_out).write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    return 0
