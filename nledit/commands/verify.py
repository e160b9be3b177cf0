"""`nledit verify`: integrity of every file and of the code, then the reference logits.

The code of the export runs only after ``integrity.inspect_export`` found the folder intact and
its ``modeling_nledit.py`` identical to a run-time nledit knows.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from safetensors.torch import load_file

from ..export import REFERENCE_FILE
from ..integrity import Findings, inspect_export, read_manifest


def render(findings: Findings) -> str:
    """One line per check, then the verdict."""
    lines = [
        f"{'ok  ' if p else 'FAIL'} {n}" + (f": {d}" if d else "") for n, p, d in findings.checks
    ]
    lines.append("verified" if findings.ok else "verification FAILED")
    return "\n".join(lines)


def check_logits(out: Path, findings: Findings, device: str, atol: float = 1e-4) -> None:
    """Load the export (its code was checked) and compare with the stored reference logits."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSequenceClassification

    config = AutoConfig.from_pretrained(out, trust_remote_code=True)
    auto = (
        AutoModelForCausalLM
        if "AutoModelForCausalLM" in config.auto_map
        else AutoModelForSequenceClassification
    )
    model = auto.from_pretrained(out, trust_remote_code=True, dtype=torch.float32).to(device).eval()
    ref = load_file(str(out / REFERENCE_FILE))
    worst = 0.0
    with torch.no_grad():
        for key in sorted(k for k in ref if k.startswith("input_ids.")):
            i = key.split(".", 1)[1]
            logits = model(input_ids=ref[key][None].to(device)).logits[0]
            logits = logits[-1] if logits.dim() == 2 else logits
            worst = max(worst, (logits.float().cpu() - ref[f"logits.{i}"]).abs().max().item())
    findings.add("reference logits reproduced", worst <= atol, f"max abs difference {worst:.2e}")


def verify(out: Path, device: str = "cpu") -> Findings:
    """Every check on ``out``; loads the model only when the files and the code are intact."""
    findings = inspect_export(out)
    resaved = read_manifest(out).get("resaved")
    if isinstance(resaved, dict):  # save_pretrained wrote the weights; no reference logits
        findings.add(
            "re-saved, not the original export",
            True,
            f"by {resaved.get('by')} in {resaved.get('dtype')} (transformers "
            f"{resaved.get('transformers')}); reference logits and card were not carried over",
        )
        return findings
    if findings.ok:
        try:
            check_logits(out, findings, device)
        except Exception as err:  # loading failed: that is the finding
            findings.add("checkpoint loads", False, str(err).splitlines()[0])
    return findings


def cmd_verify(args: argparse.Namespace) -> int:
    """`nledit verify`: exit code 0 when every check passes, 1 otherwise."""
    findings = verify(Path(args.out), device=args.device)
    print(render(findings))
    return 0 if findings.ok else 1
