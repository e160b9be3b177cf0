"""At size: an export verifies in the dtype it was fitted in (one copy of the weights, never a
float32 copy of a bf16 base)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from nledit.cli import main
from nledit.integrity import logits_dtype, verify

FAST = ["--set", "eval.enabled=false"]


@pytest.mark.parametrize("dtype", ["bfloat16", "float32"])
def test_export_verifies_in_its_fit_dtype(
    dtype: str, tiny_models, tiny_data, make_recipe, tmp_path: Path
) -> None:
    recipe = make_recipe(tiny_models["llama"], tiny_data, extra={"model.dtype": dtype})
    out = tmp_path / "out"
    assert main(["run", str(recipe), "--out", str(out), *FAST]) == 0
    assert logits_dtype(out) == getattr(torch, dtype)
    findings = verify(out)
    assert findings.ok, findings.failures()
