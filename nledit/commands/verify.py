"""`nledit verify`: integrity of every file and of the code, then the reference logits.

The code of the export runs only after ``integrity.inspect_export`` found the folder to be an
nledit export, intact, its ``modeling_nledit.py`` identical to a run-time nledit knows
(``integrity.verify``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..checkpoint import Findings, verify
from ..recipe.flags import checked_flags


def render(findings: Findings) -> str:
    """One line per check, then the verdict."""
    lines = [
        f"{'ok  ' if p else 'FAIL'} {n}" + (f": {d}" if d else "") for n, p, d in findings.checks
    ]
    lines.append("verified" if findings.ok else "verification FAILED")
    return "\n".join(lines)


def cmd_verify(args: argparse.Namespace) -> int:
    """`nledit verify`: exit code 0 when every check passes, 1 otherwise."""
    flags = checked_flags("verify", args)
    findings = verify(Path(flags.out), device=flags.device)
    print(render(findings))
    return 0 if findings.ok else 1
