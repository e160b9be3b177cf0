"""edit_hash covers what defines an edit, and nothing about how it is tuned, swept or run."""

from __future__ import annotations

import hashlib
from pathlib import Path

from nledit.cli import main
from nledit.recipe import edit_hash, parse_recipe, set_dotted
from nledit.runtime.gate import RANGES_FILE

BASE = {
    "model": {"id": "some/model"},
    "data": {"source": "data.jsonl"},
    "edits": [{"concepts": ["Sports"], "layer": 3}],
}


def _hash(**changes: object) -> str:
    import copy

    d = copy.deepcopy(BASE)
    for dotted, value in changes.items():
        set_dotted(d, dotted.replace("__", "."), value)
    return edit_hash(parse_recipe(d))


def test_only_edit_defining_fields_count() -> None:
    base = _hash()
    for other in (
        {"tune__trials": 7},
        {"sweep__values": [1.0, 2.0]},
        {"eval__perplexity_windows": 2},
        {"output__dir": "elsewhere"},
        {"batch_size": 2},
        {"model__device": "meta"},
    ):
        assert _hash(**other) == base, other
    for defining in (
        {"edits__0__tau": 1.5},
        {"data__fit_per_class": 20},
        {"prompt__shots": 0},
        {"seed": 1},
        {"model__id": "other/model"},
    ):
        assert _hash(**defining) != base, defining


def test_range_file_bytes_ignore_tune_and_sweep(
    tiny_models, tiny_data, make_recipe, tmp_path: Path
) -> None:
    digests = []
    for i, extra in enumerate(({}, {"tune.trials": 3, "sweep.values": [0.5, 1.0]})):
        recipe = make_recipe(tiny_models["llama"], tiny_data, extra)
        out = tmp_path / f"out{i}"
        assert main(["run", str(recipe), "--out", str(out)]) == 0
        digests.append(hashlib.sha256((out / RANGES_FILE).read_bytes()).hexdigest())
    assert digests[0] == digests[1]
