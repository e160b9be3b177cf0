"""A neuron's range in the paper's shape, mu ± tau·sigma: the one place it is computed.

The bound and default of tau are ``gate.TAU`` (the recipe's ``edits.N.tau`` reads them there).
"""

from __future__ import annotations

from typing import Any

from ..runtime.gate import TAU

DEFAULT_TAU: float = TAU.default


def sigma_bounds(mu: Any, sigma: Any, tau: float) -> tuple[Any, Any]:
    """``(mu - tau·sigma, mu + tau·sigma)``, elementwise for tensors and arrays."""
    return mu - tau * sigma, mu + tau * sigma
