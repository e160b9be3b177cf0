"""LEACE (Belrose et al. 2023, arXiv 2306.03819): closed-form linear concept erasure.

The affine eraser x' = x - L R (x - b) removes every linearly decodable trace of a concept with
the least change to x. It is fitted from means and covariances, so it joins the one streaming
statistics pass: per layer, one ``concept_erasure.LeaceFitter`` with z = one-hot concept labels
(memory O(d² + d·C) per layer, flat in the number of examples). The eraser of concept c uses the
indicator of c: the same covariance of x and column c of the cross-covariance. So there is one
eraser per target concept, fitted on the read-token activations of the edit's layer.

It serves twice: as a baseline (``eval.baselines: [leace]``, method ``leace``) and as an edit
(``operator: leace``), a whole-vector gate whose matrices travel in the range file.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from concept_erasure import LeaceEraser, LeaceFitter

from ..errors import NleditError
from ..runtime.gate import RangeGate
from ..runtime.vector_gates import whole_vector_gate


class LeaceError(NleditError, ValueError):
    """LEACE statistics that are missing or cannot give an eraser."""


class LeaceStats:
    """Streaming LEACE statistics at some layers, for every concept at once (float64)."""

    def __init__(self, d: int, n_concepts: int, layers: Iterable[int]) -> None:
        self.n_concepts = n_concepts
        self.fitters = {
            layer: LeaceFitter(d, n_concepts, dtype=torch.float64) for layer in sorted(layers)
        }

    def update(self, layer: int, h: torch.Tensor, labels: torch.Tensor) -> None:
        """Add rows ``h`` (B, d) with concept ids ``labels`` (B,); other layers are ignored."""
        fitter = self.fitters.get(layer)
        if fitter is not None:
            z = torch.nn.functional.one_hot(labels.to("cpu", torch.long), self.n_concepts)
            fitter.update(h.detach().to("cpu", torch.float64), z.to(torch.float64))

    def state(self, layer: int) -> list[torch.Tensor]:
        """The statistics at ``layer`` as tensors: count, means of x and z, co-moments."""
        f = self.fitters[layer]
        return [f.n.reshape(1).to(torch.float64), f.mean_x, f.mean_z, f.sigma_xx_, f.sigma_xz_]

    def pool(self, layer: int, parts: list[list[torch.Tensor]]) -> None:
        """Replace the statistics at ``layer`` by those of every shard in ``parts`` (each a
        ``state``) taken together: the pairwise merge of means and co-moments (Chan, Golub and
        LeVeque), folded in the order given so every process computes the same."""
        n, mx, mz, sxx, sxz = (t.clone() for t in parts[0])
        for nb, mxb, mzb, sxxb, sxzb in parts[1:]:
            if not nb.item():
                continue
            total = n + nb
            dx, dz = mxb - mx, mzb - mz
            w = (n * nb / total).item()
            sxx = sxx + sxxb + w * torch.outer(dx, dx)
            sxz = sxz + sxzb + w * torch.outer(dx, dz)
            mx, mz, n = mx + dx * (nb / total), mz + dz * (nb / total), total
        f = self.fitters[layer]
        f.n = torch.tensor(int(n.item()))
        f.mean_x, f.mean_z, f.sigma_xx_, f.sigma_xz_ = mx, mz, sxx, sxz

    def fitter(self, layer: int, concept: int) -> LeaceFitter:
        """The fitter of concept ``concept`` alone (z = its indicator) at ``layer``."""
        whole = self.fitters.get(layer)
        if whole is None or int(whole.n) == 0:
            raise LeaceError(f"no LEACE statistics were collected at layer {layer}")
        one = LeaceFitter(whole.x_dim, 1, dtype=torch.float64)
        one.n = whole.n.clone()
        one.mean_x = whole.mean_x.clone()
        one.sigma_xx_ = whole.sigma_xx_
        one.mean_z = whole.mean_z[concept : concept + 1].clone()
        one.sigma_xz_ = whole.sigma_xz_[:, concept : concept + 1].clone()
        return one

    def eraser(self, layer: int, concept: int) -> LeaceEraser:
        """The LEACE eraser of ``concept`` at ``layer``."""
        return self.fitter(layer, concept).eraser


def eraser_gate(
    eraser: LeaceEraser,
    *,
    name: str,
    method: str,
    edit: str,
    concept: str,
    layer: int,
    positions: str,
) -> RangeGate:
    """A whole-vector gate applying ``eraser`` to the hidden state at ``positions``."""
    d = int(eraser.proj_left.shape[0])
    bias = eraser.bias if eraser.bias is not None else torch.zeros(d)
    extra = {"proj_left": eraser.proj_left, "proj_right": eraser.proj_right}
    return whole_vector_gate(
        name=name,
        method=method,
        edit=edit,
        concept=concept,
        layer=layer,
        operator="leace",
        params={},
        positions=positions,
        value=bias,
        extra=extra,
    )
