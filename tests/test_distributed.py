"""Fitting across 2 CPU processes (gloo) gives the single-process ranges."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

from nledit.cli import main


@pytest.mark.skipif(
    shutil.which("accelerate") is None
    and not Path(sys.executable).with_name("accelerate").exists(),
    reason="accelerate CLI not installed",
)
def test_two_process_fit_equals_single(tiny_models, tiny_data, make_recipe, tmp_path: Path) -> None:
    recipe = make_recipe(tiny_models["llama"], tiny_data, layer=1)
    single, multi = tmp_path / "single", tmp_path / "multi"
    assert main(["fit", str(recipe), "--out", str(single)]) == 0
    launcher = Path(sys.executable).with_name("accelerate")
    env = {**os.environ, "TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [
            str(launcher),
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
            str(multi),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    a = load_file(str(single / "nledit_stats.safetensors"))
    b = load_file(str(multi / "nledit_stats.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        assert (a[key] - b[key]).abs().max().item() <= 1e-6 * max(1.0, a[key].abs().max().item())
    ra = load_file(str(single / "nledit_fit_ranges.safetensors"))
    rb = load_file(str(multi / "nledit_fit_ranges.safetensors"))
    for key in ra:
        assert (ra[key].double() - rb[key].double()).abs().max().item() <= 1e-6, key
