"""`nledit verify`: file integrity, then the reference logits reproduced by a fresh load."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file

from .export import MANIFEST_FILE, REFERENCE_FILE, sha256_file


@dataclass
class VerifyReport:
    checks: list[tuple[str, bool, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(passed for _, passed, _ in self.checks)

    def add(self, name: str, passed: bool, detail: str = "") -> None:
        self.checks.append((name, passed, detail))

    def render(self) -> str:
        lines = [
            f"{'ok  ' if p else 'FAIL'} {n}" + (f": {d}" if d else "") for n, p, d in self.checks
        ]
        lines.append("verified" if self.ok else "verification FAILED")
        return "\n".join(lines)


def check_files(out: Path, report: VerifyReport) -> None:
    manifest = json.loads((out / MANIFEST_FILE).read_text())
    files: dict[str, str] = manifest.get("files", {})
    present = {p.name for p in out.iterdir() if p.is_file()} - {MANIFEST_FILE}
    missing = sorted(set(files) - present)
    extra = sorted(present - set(files))
    report.add("all files present", not missing, ", ".join(missing))
    report.add("no unlisted files", not extra, ", ".join(extra))
    bad = [
        name
        for name, digest in files.items()
        if name in present and sha256_file(out / name) != digest
    ]
    report.add("sha256 of every file", not bad, ", ".join(bad))


def check_logits(out: Path, report: VerifyReport, device: str, atol: float = 1e-4) -> None:
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
    report.add("reference logits reproduced", worst <= atol, f"max abs difference {worst:.2e}")


def verify(out: Path, device: str = "cpu") -> VerifyReport:
    report = VerifyReport()
    if not (out / MANIFEST_FILE).is_file():
        raise FileNotFoundError(f"{out}: no {MANIFEST_FILE}; is this an nledit export?")
    check_files(out, report)
    if report.ok:
        try:
            check_logits(out, report, device)
        except Exception as err:  # loading failed: that is the finding
            report.add("checkpoint loads", False, str(err).splitlines()[0])
    return report
