"""`nledit generate OUT --prompt TEXT`: base and edited continuations of an export, side by side."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..checkpoint import IntegrityError, compare_export, read_prompts
from ..recipe.flags import checked_flags


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
    prompts = read_prompts(args.prompt, args.prompts_file)
    if args.json_out:
        check_json_target(Path(args.json_out))
    fields = ("max_new_tokens", "sample", "temperature", "top_p", "seed", "chat")
    text, doc = compare_export(out, prompts, {f: getattr(args, f) for f in fields}, args.device)
    print(text, end="")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    return 0
