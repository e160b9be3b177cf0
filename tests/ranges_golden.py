"""The range file every shipped recipe gives on a small sample, as a SHA-256 per recipe.

``python tests/ranges_golden.py`` writes ``tests/data/ranges_golden.json``;
``tests/test_ranges_golden.py`` fits again and compares, so a change to the fitting code that
alters any gate (a value, an order, a spec field) shows as a changed digest.
"""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "data" / "ranges_golden.json"
RECIPES = sorted((ROOT / "recipes").glob("*.yaml"))
# a small sample: few examples, short texts, no shots, no evaluation
SMALL = {
    "data.fit_per_class": 6,
    "data.eval_per_class": 2,
    "data.max_length": 40,
    "prompt.shots": 0,
    "threads": 1,
}


def ranges_digest(path: Path) -> str:
    """Fit ``path`` on the small sample; the SHA-256 of its ``nledit_ranges.safetensors``."""
    from nledit.fitting.recipe_fit import fit
    from nledit.pipeline import checkpoint_gates
    from nledit.recipe import edit_hash, load_recipe
    from nledit.runtime import gate

    recipe, text = load_recipe(path, SMALL)
    fitted = fit(recipe, text)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / gate.RANGES_FILE
        gate.save_ranges(str(out), checkpoint_gates(fitted), {"edit_sha256": edit_hash(recipe)})
        return hashlib.sha256(out.read_bytes()).hexdigest()


def main() -> None:
    """Write the golden digests of every shipped recipe that runs on this machine."""
    import os

    os.chdir(ROOT)
    digests = {}
    for path in RECIPES:
        try:
            digests[path.name] = ranges_digest(path)
        except Exception as err:  # a recipe this machine cannot run (a missing model)
            print(f"{path.name}: skipped ({type(err).__name__}: {err})", file=sys.stderr)
            continue
        print(path.name, digests[path.name], flush=True)
    GOLDEN.write_text(json.dumps(digests, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
