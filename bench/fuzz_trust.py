"""The trust rules under a larger fuzzing budget than the fast suite's.

    .venv/bin/python bench/fuzz_trust.py [--examples 300] [--seed N]

Runs tests/test_fuzz_trust.py and tests/test_fuzz_inputs.py with ``--examples`` random
mutations per property (a quarter of them for fit folders, each of which exports, a fifth for
recipes that fit, five times as many for data files and API data) from a random seed (or
``--seed``), and prints the seed, the outcome counts per property and the time taken. A
failure prints hypothesis' shrunk example; re-run with the same ``--seed`` to reproduce it.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--examples", type=int, default=300)
    ap.add_argument("--seed", type=int, default=None)
    args = ap.parse_args()
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**31)
    env = {
        **os.environ,
        "NLEDIT_FUZZ_EXAMPLES": str(args.examples),
        "NLEDIT_FUZZ_SEED": str(seed),
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": str(ROOT),
    }
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    argv += [
        "tests/test_fuzz_trust.py",
        "tests/test_fuzz_inputs.py",
        "--hypothesis-show-statistics",
    ]
    t0 = time.perf_counter()
    proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    lines = [
        line
        for line in proc.stdout.splitlines()
        if ("test_fuzz_" in line and ".py::" in line)
        or "passing" in line
        or "%," in line
        or "passed" in line
        or "failed" in line
    ]
    print(f"seed {seed}, {args.examples} examples per property")
    print("\n".join(lines))
    print(f"{elapsed:.0f} s")
    if proc.returncode:
        print(proc.stdout[-8000:], proc.stderr[-4000:], sep="\n")
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
