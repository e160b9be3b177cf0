"""`nledit eval`: lm-evaluation-harness on an exported checkpoint and on its base.

The base is the same checkpoint loaded with every gate off (``nledit_enabled=False``): same
weights, same code path, so the difference is the edit alone. Results are merged into the
checkpoint's results.json, manifest and model card (``nledit.lmeval.evaluate_export``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..lmeval import evaluate_export
from ..recipe.flags import checked_flags


def cmd_eval(args: argparse.Namespace) -> int:
    """`nledit eval`: lm-eval on an export and its base, recorded in the export."""
    flags = checked_flags("eval", args)
    lm = evaluate_export(Path(flags.out), flags)
    print(json.dumps({k: v for k, v in lm.items() if k != "_meta"}, indent=2, default=str))
    return 0
