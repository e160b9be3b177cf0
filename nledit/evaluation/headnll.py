"""Per-token negative log-likelihood without materialising the logits.

A perplexity pass needs, per position, only the log-sum-exp of the logits and the target's
logit. Projecting every position through the LM head at once writes (and reads back) a
(positions x vocabulary) matrix far larger than the CPU caches; projecting it in blocks of rows
and vocabulary columns with a running log-sum-exp keeps each block cache-resident. This applies
when the model's logits are exactly its output embedding applied to that layer's input (no logit
cap or scale after it), which ``direct_head`` checks once per model against its own forward.
"""

from __future__ import annotations

import math
import weakref

import torch
import torch.nn.functional as F
from torch import nn

ROWS = 1024  # positions projected together
COLUMNS = 2048  # vocabulary entries projected together: a block of ROWS x COLUMNS logits

_DIRECT: weakref.WeakKeyDictionary[nn.Module, bool] = weakref.WeakKeyDictionary()


def token_nll(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Negative log-likelihood of ``targets`` under each row of ``logits`` (..., V); the fused
    log-softmax is faster on CPU than a log-sum-exp and a gather."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    return -logp.gather(-1, targets.to(logp.device).unsqueeze(-1)).squeeze(-1)


def blocked_nll(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    targets: torch.Tensor,
    rows: int = ROWS,
    columns: int = COLUMNS,
) -> torch.Tensor:
    """``token_nll(F.linear(x, weight, bias), targets)`` for ``x`` (N, d), computed in blocks
    of ``rows`` x ``columns`` logits with a running log-sum-exp (N,)."""
    targets = targets.to(x.device)
    out = torch.empty(x.shape[0], dtype=torch.float32, device=x.device)
    vocab = weight.shape[0]
    for r0 in range(0, x.shape[0], rows):
        xr, tr = x[r0 : r0 + rows], targets[r0 : r0 + rows]
        n = xr.shape[0]
        peak = torch.full((n,), -math.inf, device=x.device)
        total = torch.zeros(n, device=x.device)
        picked = torch.empty(n, device=x.device)
        for c0 in range(0, vocab, columns):
            b = None if bias is None else bias[c0 : c0 + columns]
            block = F.linear(xr, weight[c0 : c0 + columns], b).float()
            here = ((tr >= c0) & (tr < c0 + columns)).nonzero().squeeze(-1)
            picked[here] = block[here, tr[here] - c0]
            top = torch.maximum(peak, block.amax(dim=-1))
            total = total * torch.exp(peak - top) + block.sub_(top[:, None]).exp_().sum(dim=-1)
            peak = top
        out[r0 : r0 + n] = peak + total.log() - picked
    return out


class DeferredHead:
    """Inside the context, the model's output embedding records its input (the last hidden
    state after the final norm) and returns a one-column placeholder instead of the logits;
    ``nll`` then projects the recorded input in blocks."""

    def __init__(self, model: nn.Module) -> None:
        self.module = model.get_output_embeddings()
        self.seen: torch.Tensor | None = None

    def _record(self, x: torch.Tensor) -> torch.Tensor:
        self.seen = x
        return x.new_zeros((*x.shape[:-1], 1))

    def __enter__(self) -> DeferredHead:
        self.before = self.module.__dict__.get("forward")  # a wrapper someone installed
        self.module.forward = self._record  # an instance attribute shadows the method
        return self

    def __exit__(self, *exc: object) -> None:
        if self.before is None:
            del self.module.forward
        else:
            self.module.forward = self.before

    def take(self) -> torch.Tensor:
        """The input recorded by the last forward pass (..., d)."""
        assert self.seen is not None, "no forward pass ran inside the context"
        seen, self.seen = self.seen, None
        return seen

    def nll(self, x: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Per-token NLL of ``targets`` (...) given recorded inputs ``x`` (..., d)."""
        flat = x.reshape(-1, x.shape[-1])
        nll = blocked_nll(flat, self.module.weight, self.module.bias, targets.reshape(-1))
        return nll.view(targets.shape)


@torch.no_grad()
def direct_head(model: nn.Module) -> bool:
    """Whether ``model``'s logits are exactly its output embedding (a linear layer) applied to
    that layer's input, so that ``DeferredHead`` may stand in for it; checked once per model
    on a short input of varied tokens against the model's own forward."""
    if model in _DIRECT:
        return _DIRECT[model]
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    # dispatched weights (accelerate hooks, offloading) are left to the model's own forward
    ok = isinstance(head, nn.Linear) and not hasattr(head, "_hf_hook")
    ok = ok and not head.weight.is_meta
    if ok:
        device = head.weight.device
        ids = ((torch.arange(4) * 7919 + 1) % head.weight.shape[0]).view(1, -1).to(device)
        res = model(input_ids=ids, use_cache=False)
        logits = (res.logits if hasattr(res, "logits") else res[0]).float()
        with DeferredHead(model) as deferred:
            model(input_ids=ids, use_cache=False)
            direct = F.linear(deferred.take(), head.weight, head.bias).float()
        ok = direct.shape == logits.shape and bool(
            torch.allclose(direct, logits, rtol=1e-5, atol=1e-5)
        )
    _DIRECT[model] = ok
    return ok
