"""The erasure table's rows and result (``evaluate`` fills them; ``results`` writes them)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


def ppl_key(row: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    """The perplexity entry of a row's condition (``evaluate.Condition.key``)."""
    several = len({r.get("edit", "") for r in rows}) > 1
    return f"{row['method']}:{row['concept']}" + (f"@{row.get('edit', '')}" if several else "")


@dataclass
class ConceptRow:
    """One line of the erasure table."""

    concept: str
    method: str
    acc: float
    conf: float
    cacc: float
    cconf: float
    base_acc: float
    base_conf: float
    base_cacc: float
    base_cconf: float
    n_target: int
    n_other: int
    edit: str = ""
    operator: str = ""
    diag: dict[str, Any] = field(default_factory=dict)  # ``diagnostics``: firing, label mass
    collateral: str = "macro"  # which definition cacc/cconf use; both are in ``both``
    both: dict[str, float] = field(default_factory=dict)  # ``collateral_both``
    ci: dict[str, list[float]] = field(default_factory=dict)  # ``bootstrap.delta_intervals``
    assessable: bool = True  # ``competence.assessable``: can the base carry a claim on it?

    @property
    def deltas(self) -> dict[str, float]:
        return {
            "d_acc": self.acc - self.base_acc,
            "d_conf": self.conf - self.base_conf,
            "d_cacc": self.cacc - self.base_cacc,
            "d_cconf": self.cconf - self.base_cconf,
        }

    def to_dict(self) -> dict[str, Any]:
        flat = {k: v for k, v in asdict(self).items() if k not in ("diag", "both", "ci")}
        ci = dict(self.ci)
        for k in ("cacc", "cconf"):  # the headline definition's interval under its plain name
            if f"d_{k}_{self.collateral}" in ci:
                ci[f"d_{k}"] = ci[f"d_{k}_{self.collateral}"]
        return {**flat, **self.deltas, **self.both, **self.diag, "ci": ci}


@dataclass
class EvalResult:
    rows: list[ConceptRow]
    perplexity: dict[str, float] = field(default_factory=dict)  # condition key -> PPL
    n_eval: int = 0
    curated: bool = False
    calibrated: bool = False
    probe: list[dict[str, Any]] = field(default_factory=list)  # see ``probing`` (eval.probe)
    competence: dict[str, Any] = field(default_factory=dict)  # ``competence.competence``
    calibration: dict[str, Any] = field(default_factory=dict)  # ``calibration.resolve``
    ppl_ci: dict[str, list[float]] = field(default_factory=dict)  # condition key -> ΔPPL interval
    seeds: dict[str, Any] = field(default_factory=dict)  # ``seeds.summarise`` and each seed's run
    transfer: dict[str, Any] = field(default_factory=dict)  # ``transfer.measure_transfer``

    def to_dict(self) -> dict[str, Any]:
        return {
            "erasure": [r.to_dict() for r in self.rows],
            "perplexity": self.perplexity,
            "n_eval": self.n_eval,
            "curated": self.curated,
            "calibrated": self.calibrated,
            **({"probe": self.probe} if self.probe else {}),
            "competence": self.competence,
            "calibration": self.calibration,
            "perplexity_ci": self.ppl_ci,
            **({"seeds": self.seeds} if self.seeds else {}),
            **({"transfer": self.transfer} if self.transfer else {}),
        }
