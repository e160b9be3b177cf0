"""What a fit costs at a given size, read off the scale benchmark's measurements.

``bench/scale.py`` measures random-weight models of real shapes (135M to 3B parameters, fp32 and
bf16) and writes ``docs/benchmarks/models.scale.json``; the figures ``nledit check`` quotes are
the rows below, kept equal to that file by ``bench/scale.py --render`` (and a test). A size
between two measured ones is interpolated on log-log axes between them; a size outside is
scaled from the nearest by parameter count. The estimate names the sizes it came from.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Measured:
    """One measured size and dtype (bytes, seconds, tokens/s)."""

    model: str
    dtype: str
    params: int
    weights_bytes: int
    fit_tokens_per_s: float
    overhead_bytes: int  # the interpreter and its imports, before any weight is read
    fit_peak_bytes: int  # the fit's peak resident memory
    export_bytes_per_s: float | None  # export with the weights copied (None: not measured)
    verify_peak_bytes: int | None


# BEGIN MEASURED (written by bench/scale.py --render from docs/benchmarks/models.scale.json)
MEASURED: tuple[Measured, ...] = (
    Measured(
        model="smollm2-135m",
        dtype="bfloat16",
        params=134515008,
        weights_bytes=269060552,
        fit_tokens_per_s=11.7,
        overhead_bytes=393568256,
        fit_peak_bytes=722526208,
        export_bytes_per_s=98765887.0,
        verify_peak_bytes=742129664,
    ),
    Measured(
        model="smollm2-360m",
        dtype="bfloat16",
        params=361821120,
        weights_bytes=723674912,
        fit_tokens_per_s=9.43,
        overhead_bytes=394276864,
        fit_peak_bytes=1175154688,
        export_bytes_per_s=63157579.0,
        verify_peak_bytes=1197547520,
    ),
    Measured(
        model="llama-3.2-1b",
        dtype="bfloat16",
        params=1235814400,
        weights_bytes=2471645584,
        fit_tokens_per_s=1.39,
        overhead_bytes=394055680,
        fit_peak_bytes=2204860416,
        export_bytes_per_s=20619493.0,
        verify_peak_bytes=2947284992,
    ),
    Measured(
        model="smollm2-1.7b",
        dtype="bfloat16",
        params=1711376384,
        weights_bytes=3422777848,
        fit_tokens_per_s=1.99,
        overhead_bytes=394137600,
        fit_peak_bytes=3501682688,
        export_bytes_per_s=60759088.0,
        verify_peak_bytes=3896532992,
    ),
    Measured(
        model="smollm2-135m",
        dtype="float32",
        params=134515008,
        weights_bytes=538090408,
        fit_tokens_per_s=25.49,
        overhead_bytes=393314304,
        fit_peak_bytes=907423744,
        export_bytes_per_s=49044437.0,
        verify_peak_bytes=1009938432,
    ),
    Measured(
        model="smollm2-360m",
        dtype="float32",
        params=361821120,
        weights_bytes=1447317080,
        fit_tokens_per_s=9.68,
        overhead_bytes=393408512,
        fit_peak_bytes=1713049600,
        export_bytes_per_s=29048458.0,
        verify_peak_bytes=1917931520,
    ),
    Measured(
        model="llama-3.2-1b",
        dtype="float32",
        params=1235814400,
        weights_bytes=4943274224,
        fit_tokens_per_s=4.28,
        overhead_bytes=393441280,
        fit_peak_bytes=3775655936,
        export_bytes_per_s=74513343.0,
        verify_peak_bytes=5416517632,
    ),
    Measured(
        model="smollm2-1.7b",
        dtype="float32",
        params=1711376384,
        weights_bytes=6845530480,
        fit_tokens_per_s=5.92,
        overhead_bytes=394199040,
        fit_peak_bytes=6540697600,
        export_bytes_per_s=87424158.0,
        verify_peak_bytes=7318929408,
    ),
)
# END MEASURED


def basis_rows(doc: dict[str, Any]) -> tuple[Measured, ...]:
    """The rows of the scale benchmark's JSON document (in-memory fits only)."""
    out = []
    for r in doc["rows"]:
        if r["mode"] != "ram":
            continue
        fit = r["fit"]
        out.append(
            Measured(
                model=r["model"],
                dtype=r["dtype"],
                params=int(r["params"]),
                weights_bytes=int(r["weights_bytes"]),
                # the longer of the two fit passes (4N examples) when it was run
                fit_tokens_per_s=round(float(r.get("fit_4n", fit)["fit_tokens_per_s"]), 2),
                overhead_bytes=int(fit["before_load_rss"]),
                fit_peak_bytes=int(max(fit["peak_rss"], r.get("fit_4n", fit)["peak_rss"])),
                export_bytes_per_s=(
                    round(r["weights_bytes"] / r["run"]["export_s"], 0) if "run" in r else None
                ),
                verify_peak_bytes=int(r["verify"]["peak_rss"]) if "verify" in r else None,
            )
        )
    return tuple(sorted(out, key=lambda m: (m.dtype, m.params)))


@dataclass(frozen=True)
class Estimate:
    """A fit's cost at one size, and where it came from."""

    fit_tokens_per_s: float
    fit_peak_bytes: float
    export_bytes: float  # the weights a copying export writes
    export_s: float
    verify_peak_bytes: float
    basis: str


def _rows(dtype: str) -> list[Measured]:
    want = "bfloat16" if dtype in ("bfloat16", "float16") else "float32"
    rows = [m for m in MEASURED if m.dtype == want] or [m for m in MEASURED if m.dtype == "float32"]
    return sorted(rows, key=lambda m: m.params)


def _between(n: float, rows: list[Measured]) -> tuple[Measured, Measured, float]:
    """The two measured rows around ``n`` and the log-position of ``n`` between them (0..1;
    outside the measured range: the nearest row twice)."""
    if n <= rows[0].params:
        return rows[0], rows[0], 0.0
    if n >= rows[-1].params:
        return rows[-1], rows[-1], 0.0
    for lo, hi in itertools.pairwise(rows):
        if lo.params <= n <= hi.params:
            t = math.log(n / lo.params) / math.log(hi.params / lo.params) if hi != lo else 0.0
            return lo, hi, t
    return rows[-1], rows[-1], 0.0  # not reached: the rows are sorted


def _log_mix(a: float, b: float, t: float) -> float:
    return math.exp((1 - t) * math.log(a) + t * math.log(b))


def estimate(n_params: int, dtype: str) -> Estimate | None:
    """The fit's throughput, peak memory, export size and time, and verify's peak memory for a
    model of ``n_params`` parameters in ``dtype``; None when nothing was measured."""
    rows = _rows(dtype)
    if not rows:
        return None
    lo, hi, t = _between(n_params, rows)
    width = 4 if dtype == "float32" else 2
    weights = n_params * width

    def ratio(m: Measured, peak: int) -> float:  # memory above the interpreter, per weight byte
        return (peak - m.overhead_bytes) / m.weights_bytes

    def mix(f: Any) -> float:
        return _log_mix(f(lo), f(hi), t)

    # export and verify: between the nearest sizes where they were measured
    staged = [m for m in rows if m.export_bytes_per_s and m.verify_peak_bytes] or [
        m for m in MEASURED if m.export_bytes_per_s and m.verify_peak_bytes
    ]
    slo, shi, st = _between(n_params, sorted(staged, key=lambda m: m.params))

    def staged_mix(f: Any) -> float:
        return _log_mix(f(slo), f(shi), st)

    overhead = mix(lambda m: m.overhead_bytes)
    if lo is hi:
        rate = lo.fit_tokens_per_s * lo.params / n_params  # throughput ~ 1 / parameters
        near = abs(math.log(n_params / lo.params)) < 0.05  # within 5 %: that size itself
        how = "measured at" if near else "scaled by parameter count from"
        basis = f"{how} {lo.model} ({lo.params / 1e9:.2f}B, {lo.dtype})"
    else:
        rate = mix(lambda m: m.fit_tokens_per_s)
        basis = (
            f"interpolated between {lo.model} ({lo.params / 1e9:.2f}B) and {hi.model} "
            f"({hi.params / 1e9:.2f}B), {lo.dtype}"
        )
    return Estimate(
        fit_tokens_per_s=rate,
        fit_peak_bytes=overhead + weights * mix(lambda m: ratio(m, m.fit_peak_bytes)),
        export_bytes=weights,
        export_s=weights / staged_mix(lambda m: m.export_bytes_per_s),
        verify_peak_bytes=overhead + weights * staged_mix(lambda m: ratio(m, m.verify_peak_bytes)),
        basis=basis
        + (
            ""
            if (slo, shi) == (lo, hi)
            else f"; export and verify from {slo.model}"
            + (f" to {shi.model}" if shi is not slo else "")
        )
        + " (bench/scale.py, docs/BENCHMARKS.md)",
    )
