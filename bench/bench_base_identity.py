"""Base identity check of a weight-free checkpoint: full re-hash against the fast identity.

    PYTHONPATH=. .venv/bin/python bench/bench_base_identity.py OUT [--base FOLDER] [--repeat 3]

``OUT`` is a weight-free export (``output.weights: reference``); ``--base`` the folder holding
its base weights when it records a Hub repository (a Hub cache snapshot, say). Times
``gate.resolve_base_weights`` alone, as ``from_pretrained`` runs it, in each mode: ``full``
(every file hashed), ``fast`` on its first load (no record yet: one full hash, recorded), ``fast``
afterwards (the recorded hash, or the Hub cache blob's name), ``off``. A scratch
``NLEDIT_CACHE`` keeps the machine's own record out of it. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine

from nledit.runtime import gate


def timed(block: dict, base: str | None, mode: object, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        gate.resolve_base_weights(block, base, gate.check_mode(mode), {})
        out.append(time.perf_counter() - t0)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("out")
    ap.add_argument("--base")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    block = json.loads((Path(args.out) / "config.json").read_text())["nledit"]
    if not block.get("base_weights"):
        raise SystemExit(f"{args.out} carries its weights; export with output.weights: reference")
    size = sum(block["base_weights"].get("sizes", {}).values())
    with tempfile.TemporaryDirectory(prefix="nledit-bench-") as scratch:
        os.environ["NLEDIT_CACHE"] = scratch
        rows = {"full": timed(block, args.base, "full", args.repeat)}
        Path(scratch, "base_sha256.json").unlink(missing_ok=True)
        rows["fast, first load"] = timed(block, args.base, True, 1)
        rows["fast"] = timed(block, args.base, True, args.repeat)
        rows["off"] = timed(block, args.base, False, args.repeat)
    print(json.dumps({"machine": machine(), "base_bytes": size}, indent=2))
    for mode, times in rows.items():
        print(f"{mode:18s} median {statistics.median(times) * 1000:10.2f} ms  (n={len(times)})")


if __name__ == "__main__":
    main()
