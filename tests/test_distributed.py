"""Fitting across 2 CPU processes (gloo) gives the single-process ranges, byte for byte, also
for the settings that read the activation sample (quorum: auto, quantile ranges, probe)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from nledit.cli import main
from nledit.fitting.reservoir import Reservoir, shard_placement

LAUNCHER = Path(sys.executable).with_name("accelerate")
needs_accelerate = pytest.mark.skipif(
    shutil.which("accelerate") is None and not LAUNCHER.exists(),
    reason="accelerate CLI not installed",
)


def _launch(recipe: Path, out: Path, extra: tuple[str, ...] = ()) -> None:
    env = {**os.environ, "TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [
            str(LAUNCHER),
            "launch",
            "--cpu",
            "--num_processes",
            "2",
            "--num_machines",
            "1",
            "--mixed_precision",
            "no",
            "--dynamo_backend",
            "no",
            "-m",
            "nledit",
            "fit",
            str(recipe),
            "--out",
            str(out),
            *extra,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]


def _same_bytes(a: Path, b: Path) -> None:
    assert a.read_bytes() == b.read_bytes(), a.name


@needs_accelerate
def test_two_process_fit_equals_single(tiny_models, tiny_data, make_recipe, tmp_path: Path) -> None:
    recipe = make_recipe(tiny_models["llama"], tiny_data, layer=1)
    single, multi = tmp_path / "single", tmp_path / "multi"
    assert main(["fit", str(recipe), "--out", str(single)]) == 0
    _launch(recipe, multi)
    a = load_file(str(single / "nledit_stats.safetensors"))
    b = load_file(str(multi / "nledit_stats.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        assert (a[key] - b[key]).abs().max().item() <= 1e-6 * max(1.0, a[key].abs().max().item())
    _same_bytes(single / "nledit_fit_ranges.safetensors", multi / "nledit_fit_ranges.safetensors")


@needs_accelerate
def test_two_process_sample_settings_equal_single(
    tiny_models, tiny_data, make_recipe, tmp_path: Path
) -> None:
    """preset selective (trimmed, quorum auto) and a quantile-range probe edit."""
    edits = [
        {"concepts": ["Sports"], "preset": "selective", "layer": 1},
        {"concepts": ["World"], "layer": 2, "saliency": "probe", "range": "quantile"},
    ]
    recipe = make_recipe(tiny_models["llama"], tiny_data, extra={"edits": edits})
    single, multi = tmp_path / "single", tmp_path / "multi"
    assert main(["fit", str(recipe), "--out", str(single)]) == 0
    _launch(recipe, multi)
    _same_bytes(single / "nledit_fit_ranges.safetensors", multi / "nledit_fit_ranges.safetensors")


# the quick start, shrunk: fewer examples, shots and tokens (its edit's settings stay the
# recipe's: quorum auto and trimmed ranges still read the activation sample)
QUICK = ("data.fit_per_class=4", "prompt.shots=1", "data.max_length=32", "eval.enabled=false")


@pytest.mark.slow
@needs_accelerate
def test_two_process_quickstart_equals_single(tmp_path: Path) -> None:
    """recipes/quickstart.yaml (the selective edit: trimmed, quorum auto, calibrated) on the
    real SmolLM2: the same range file from 2 processes as from one."""
    recipe = Path(__file__).resolve().parents[1] / "recipes" / "quickstart.yaml"
    extra = tuple(a for kv in QUICK for a in ("--set", kv))
    single, multi = tmp_path / "single", tmp_path / "multi"
    assert main(["fit", str(recipe), "--out", str(single), *extra]) == 0
    _launch(recipe, multi, extra)
    _same_bytes(single / "nledit_fit_ranges.safetensors", multi / "nledit_fit_ranges.safetensors")


def _stream(res: Reservoir, h: torch.Tensor, y: torch.Tensor, batch: int) -> None:
    for lo in range(0, len(y), batch):
        res.add(0, h[lo : lo + batch], y[lo : lo + batch], list(range(lo, min(lo + batch, len(y)))))


@pytest.mark.parametrize("shards", [2, 3])
def test_shard_reservoirs_merge_to_the_single_sample(shards: int) -> None:
    """Small capacity so later rows evict earlier ones, across shards."""
    g = torch.Generator().manual_seed(1)
    n, d, cap = 97, 5, 7
    h = torch.randn(n, d, generator=g)
    y = torch.randint(0, 3, (n,), generator=g)
    single = Reservoir(cap, seed=4)
    _stream(single, h, y, 8)
    metas, rows = [], []
    for index in range(shards):
        placement = shard_placement(y.tolist(), index, shards)
        part = Reservoir(cap, seed=4, placement=placement)
        _stream(part, h[index::shards], y[index::shards], 4)
        meta, row = part.local_rows([0], d)
        metas.append(meta)
        rows.append(row)
    merged = Reservoir(cap, seed=4, placement=shard_placement(y.tolist(), 0, shards))
    merged.absorb(torch.cat(metas), torch.cat(rows))
    for c in range(3):
        assert merged.example_ids(0, c) == single.example_ids(0, c)
        assert np.array_equal(merged.samples(0, 3)[c], single.samples(0, 3)[c])
        assert merged.seen[(0, c)] == single.seen[(0, c)] == int((y == c).sum())
    assert min(single.seen.values()) > cap  # the case with evictions


def test_single_process_draw_is_algorithm_r() -> None:
    """The unsharded sample is unchanged: the same rows as a plain algorithm R replay."""
    import random

    n, cap = 50, 6
    h = torch.arange(n, dtype=torch.float32).unsqueeze(1)
    res = Reservoir(cap, seed=0)
    res.add(3, h, torch.zeros(n, dtype=torch.long), list(range(n)))
    rng, kept = random.Random("0/3/0"), list(range(cap))
    for i in range(cap, n):
        j = rng.randrange(i + 1)
        if j < cap:
            kept[j] = i
    assert res.example_ids(3, 0) == kept


@needs_accelerate
def test_two_process_leace_equals_single_to_rounding(
    tiny_models, tiny_data, make_recipe, tmp_path: Path
) -> None:
    """A LEACE edit and the LEACE baseline: the pooled statistics give the single-process
    erasers up to float rounding (the range gates of the same fit stay byte-identical)."""
    edits = [
        {"concepts": ["Sports"], "layer": 1, "operator": "leace", "positions": "all"},
        {"concepts": ["World"], "layer": 2},
    ]
    extra = {"edits": edits, "eval.baselines": ["leace"]}
    recipe = make_recipe(tiny_models["llama"], tiny_data, extra=extra)
    single, multi = tmp_path / "single", tmp_path / "multi"
    assert main(["fit", str(recipe), "--out", str(single)]) == 0
    _launch(recipe, multi)
    a = load_file(str(single / "nledit_fit_ranges.safetensors"))
    b = load_file(str(multi / "nledit_fit_ranges.safetensors"))
    assert a.keys() == b.keys()
    leace = {k.rsplit(".", 1)[0] for k in a if k.endswith(".proj_left")}
    erasers = [k for k in a if k.rsplit(".", 1)[0] in leace]
    assert len(leace) == 3  # the edit and the baseline of each (concept, layer)
    for key in a:
        if key in erasers:
            assert torch.allclose(a[key].double(), b[key].double(), rtol=1e-4, atol=1e-5), key
        else:
            assert torch.equal(a[key], b[key]), key


def test_pooled_leace_shards_equal_one_pass() -> None:
    """Means and co-moments of shards pooled in order equal one running pass over all rows."""
    from nledit.fitting.leace import LeaceStats

    g = torch.Generator().manual_seed(2)
    n, d, c = 90, 6, 3
    h = torch.randn(n, d, generator=g, dtype=torch.float64) * 3 + 1
    y = torch.randint(0, c, (n,), generator=g)
    whole = LeaceStats(d, c, [0])
    for lo in range(0, n, 8):
        whole.update(0, h[lo : lo + 8], y[lo : lo + 8])
    shards = []
    for index in range(3):
        part = LeaceStats(d, c, [0])
        part.update(0, h[index::3], y[index::3])
        shards.append(part.state(0))
    pooled = LeaceStats(d, c, [0])
    pooled.pool(0, [LeaceStats(d, c, [0]).state(0), *shards])  # an empty shard is skipped
    for got, want in zip(pooled.state(0), whole.state(0)):
        assert torch.allclose(got, want, rtol=1e-10, atol=1e-10)
    e1, e2 = pooled.eraser(0, 1), whole.eraser(0, 1)
    assert torch.allclose(e1.proj_left, e2.proj_left, atol=1e-8)
