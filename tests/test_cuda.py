"""Every path on a CUDA device: fit, evaluation, export and verify, the blocked head projection
and an accelerate device map. Skipped where no CUDA device exists (marker ``cuda``)."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from nledit.checkpoint.integrity import verify
from nledit.cli import main
from nledit.evaluation.headnll import blocked_nll, token_nll

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device"),
]
FAST = ["--set", "eval.enabled=false"]


def test_fit_on_cuda_gives_the_cpu_ranges(tiny_models, tiny_data, make_recipe, tmp_path) -> None:
    ranges = {}
    for device in ("cpu", "cuda"):
        recipe = make_recipe(tiny_models["llama"], tiny_data, extra={"model.device": device})
        out = tmp_path / device
        assert main(["fit", str(recipe), "--out", str(out)]) == 0
        ranges[device] = load_file(str(out / "nledit_fit_ranges.safetensors"))
    assert ranges["cpu"].keys() == ranges["cuda"].keys()
    for key, t in ranges["cpu"].items():
        got = ranges["cuda"][key]
        if t.is_floating_point():
            assert torch.allclose(t, got, rtol=1e-3, atol=1e-4), key
        else:
            assert torch.equal(t, got), key


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_run_and_verify_on_cuda(dtype, tiny_models, tiny_data, make_recipe, tmp_path) -> None:
    extra = {"model.device": "cuda", "model.dtype": dtype}
    recipe = make_recipe(tiny_models["llama"], tiny_data, extra=extra)
    out = tmp_path / "out"
    assert main(["run", str(recipe), "--out", str(out)]) == 0  # with the evaluation
    findings = verify(out, device="cuda")
    assert findings.ok, findings.failures()


def test_device_map_auto_on_cuda(tiny_models, tiny_data, make_recipe, tmp_path) -> None:
    """An accelerate device map (over every visible GPU) fits and exports."""
    extra = {"model.device_map": "auto"}
    recipe = make_recipe(tiny_models["llama"], tiny_data, extra=extra)
    assert main(["run", str(recipe), "--out", str(tmp_path / "out"), *FAST]) == 0


def test_blocked_head_projection_on_cuda_memory() -> None:
    g = torch.Generator().manual_seed(0)
    x, w = torch.randn(37, 16, generator=g), torch.randn(300, 16, generator=g)
    targets = torch.randint(0, 300, (37,), generator=g)
    want = token_nll(x @ w.T, targets)
    got = blocked_nll(x.cuda(), w.cuda(), None, targets, rows=8, columns=64)
    assert got.device.type == "cuda"
    assert torch.allclose(got.cpu(), want, rtol=1e-4, atol=1e-4)
