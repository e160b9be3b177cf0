"""The samples in recipes/data/ match their documented sources and fit their recipes."""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from pathlib import Path

import pytest

from nledit.recipe import load_recipe

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "recipes" / "data"
SECTIONS = re.split(r"^## ", (DATA / "SOURCES.md").read_text("utf-8"), flags=re.M)[1:]
TUNE = sorted((ROOT / "recipes").glob("tune_*.yaml"))


@pytest.mark.parametrize("section", SECTIONS, ids=[s.split("\n", 1)[0] for s in SECTIONS])
def test_documented_sample_has_its_sha256(section: str) -> None:
    name = section.split("\n", 1)[0].strip()
    digests = re.findall(r"^- sha256: ([0-9a-f]{64})$", section, flags=re.M)
    assert len(digests) == 1, f"{name}: one '- sha256:' line expected"
    assert hashlib.sha256((DATA / name).read_bytes()).hexdigest() == digests[0], name


@pytest.mark.parametrize("path", TUNE, ids=[p.name for p in TUNE])
def test_tune_sample_is_balanced_and_covers_every_split(path: Path) -> None:
    recipe, _ = load_recipe(path)
    source = ROOT / str(recipe.data.source)
    names = recipe.data.label_names
    if source.suffix != ".jsonl" or not source.is_file() or not names:
        pytest.skip("not a shipped JSON-lines sample with label names")
    rows = [json.loads(line) for line in source.read_text("utf-8").split("\n") if line]
    counts = Counter(names[r["label"]] if isinstance(r["label"], int) else r["label"] for r in rows)
    assert sorted(counts) == sorted(names), f"labels {sorted(counts)} are not {names}"
    assert len(set(counts.values())) == 1, f"unbalanced: {counts}"
    need = -(-recipe.prompt.shots // len(names)) + recipe.data.fit_per_class
    need += recipe.data.eval_per_class + (recipe.tune.val_per_class if recipe.tune else 0)
    assert min(counts.values()) >= need, f"{min(counts.values())} rows a class, {need} needed"
    assert recipe.edits[0].concepts[0] in names
