"""Fine-tune a causal LM to answer a classification prompt with the label word (``mode: answer``).

The model stays an ordinary causal LM: the recipe's zero-shot prompt (instruction, template,
answer prefix, built by ``ConceptModel`` exactly as evaluation builds it) is followed by the
label word, and training minimises the cross-entropy of the label word's first token over the
whole vocabulary at the answer position. Perplexity, lm-eval and nledit's prompted-LM edit path
therefore apply to the result unchanged.

Only the top ``train_layers`` decoder layers and the final norm learn. The embeddings and the
output head stay frozen: several families (SmolLM2, Gemma) tie the head to the input
embeddings, so training it would also change what the frozen lower layers see. Because the
lower layers never change, their output is computed once per example under ``no_grad`` and
cached; every epoch then runs only the top layers. The cached path is checked against a full
forward on the first batch; where a family's layer loop does not allow it, training runs every
layer each step (same result, slower) and says so. Dropout stays off (``eval`` mode), so the
cache is exact and runs are reproducible.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..errors import NleditError
from ..evaluation.competence import competence
from ..models.arch import find_layout

# Where the final norm sits (between the last block and the output head), per family.
FINAL_NORMS = (
    "model.norm",
    "transformer.ln_f",
    "model.final_layernorm",
    "gpt_neox.final_layer_norm",
)
CACHE_TOLERANCE = 1e-3  # max |logit difference| (relative) between the cached and full forward


class TrainSettingsError(NleditError, ValueError):
    """Training settings that do not fit the model or the data."""


@dataclass
class Encoded:
    """Prompt token ids per example, the answer token id and label per example."""

    rows: list[list[int]]
    labels: list[int]


@dataclass
class EpochReport:
    """Held-out figures after one epoch."""

    epoch: int
    loss: float
    balanced_acc: float
    balanced_acc_ci: list[float]
    per_class: dict[str, float]
    seconds: float


def trainable_parameters(model: Any, k: int) -> list[nn.Parameter]:
    """Freeze ``model`` except its top ``k`` decoder layers and final norm; return those."""
    layout = find_layout(model)
    if not 1 <= k <= layout.n_layers:
        raise TrainSettingsError(
            f"train_head.train_layers: {k} is not between 1 and the model's {layout.n_layers} "
            "decoder layers"
        )
    for p in model.parameters():
        p.requires_grad_(False)
    blocks = model.get_submodule(layout.layers_path)
    modules = [blocks[i] for i in range(layout.n_layers - k, layout.n_layers)]
    modules += [m for m in (_final_norm(model),) if m is not None]
    # A tied head shares its tensor with the embeddings: it stays frozen with them.
    frozen = {
        id(p)
        for m in (model.get_input_embeddings(), model.get_output_embeddings())
        if m
        for p in m.parameters()
    }
    params = []
    for m in modules:
        for p in m.parameters():
            if id(p) not in frozen:
                p.requires_grad_(True)
                params.append(p)
    return params


def _final_norm(model: Any) -> nn.Module | None:
    for path in FINAL_NORMS:
        try:
            return model.get_submodule(path)
        except AttributeError:
            continue
    return None


class _Skip(nn.Module):
    """Stands in for a frozen lower block: passes its input on; the last one hands the next
    block the cached states instead."""

    def __init__(self, tuple_out: int) -> None:
        super().__init__()
        self.tuple_out = tuple_out  # 0: the real block returns a tensor, else the tuple length
        self.states: torch.Tensor | None = None
        self.seen: torch.Tensor | None = None  # the input it was given

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        self.seen = args[0] if args else kwargs["hidden_states"]
        hidden = self.states if self.states is not None else self.seen
        return hidden if not self.tuple_out else (hidden, *([None] * (self.tuple_out - 1)))


class LowerCache:
    """The frozen lower layers' output per example, and a forward that runs only the top."""

    def __init__(self, model: Any, k: int) -> None:
        self.model, self.k = model, k
        self.layout = find_layout(model)
        self.blocks = model.get_submodule(self.layout.layers_path)
        self.cut = self.layout.n_layers - k  # index of the first trained block
        self.tuple_out = -1  # not known until the first ``states`` call
        self.usable = self.cut > 0

    @torch.no_grad()
    def states(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor | None:
        """Hidden states entering the first trained block (None when nothing is frozen); the
        trained blocks and the head are not run."""
        if not self.usable:
            return None
        if self.tuple_out < 0:  # what a block returns: a tensor, or a tuple of this length
            seen: dict[str, Any] = {}
            hook = self.blocks[0].register_forward_hook(lambda m, a, o: seen.setdefault("o", o))
            try:
                self.model.base_model(input_ids=ids[:1, :2], attention_mask=mask[:1, :2])
            finally:
                hook.remove()
            o = seen.get("o")
            self.tuple_out = len(o) if isinstance(o, tuple) else 0
        top = [self.blocks[i] for i in range(self.cut, self.layout.n_layers)]
        skips = [_Skip(self.tuple_out) for _ in top]
        for i, skip in enumerate(skips):
            self.blocks[self.cut + i] = skip
        try:
            self.model.base_model(input_ids=ids, attention_mask=mask)
        finally:
            for i, m in enumerate(top):
                self.blocks[self.cut + i] = m
        assert skips[0].seen is not None
        return skips[0].seen.detach()

    @contextmanager
    def top_only(self, states: torch.Tensor | None) -> Iterator[None]:
        """Within the block, the model's forward skips the lower blocks and starts the top ones
        from ``states``."""
        if states is None or not self.usable:
            yield
            return
        real = [self.blocks[i] for i in range(self.cut)]
        skips = [_Skip(self.tuple_out) for _ in range(self.cut)]
        skips[-1].states = states
        for i, s in enumerate(skips):
            self.blocks[i] = s
        try:
            yield
        finally:
            for i, m in enumerate(real):
                self.blocks[i] = m


def pad(rows: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-padded ids, attention mask and the last real position per row."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r)
        mask[i, : len(r)] = 1
    return ids, mask, mask.sum(1) - 1


def answer_logits(
    model: Any, ids: torch.Tensor, mask: torch.Tensor, last: torch.Tensor
) -> torch.Tensor:
    """Vocabulary logits at each row's answer position (the last prompt token)."""
    hidden = model.base_model(input_ids=ids, attention_mask=mask).last_hidden_state
    logits = model.get_output_embeddings()(hidden[torch.arange(len(last)), last])
    cap = getattr(model.config, "final_logit_softcapping", None)  # Gemma's, as its forward does
    return torch.tanh(logits / cap) * cap if cap else logits


def cache_batches(
    cache: LowerCache, enc: Encoded, size: int, pad_id: int, desc: str, log: Callable[[str], None]
) -> list[tuple[list[int], torch.Tensor | None]]:
    """The lower layers' states of every example, in length-sorted batches of ``size``."""
    from tqdm.auto import tqdm

    order = sorted(range(len(enc.rows)), key=lambda i: len(enc.rows[i]))
    out: list[tuple[list[int], torch.Tensor | None]] = []
    chunks = [order[i : i + size] for i in range(0, len(order), size)]
    for rows in tqdm(chunks, desc=desc, unit="batch", leave=False, disable=not cache.usable):
        ids, mask, _ = pad([enc.rows[i] for i in rows], pad_id)
        out.append((rows, cache.states(ids, mask)))
    return out


def check_cache(cache: LowerCache, enc: Encoded, pad_id: int, log: Callable[[str], None]) -> None:
    """Turn the cache off when the top-only forward does not reproduce the full forward."""
    if not cache.usable:
        return
    rows = [enc.rows[i] for i in range(min(4, len(enc.rows)))]
    ids, mask, last = pad(rows, pad_id)
    with torch.no_grad():
        full = answer_logits(cache.model, ids, mask, last)
        states = cache.states(ids, mask)
        with cache.top_only(states):
            top = answer_logits(cache.model, ids, mask, last)
    gap = float((full - top).abs().max()) / (1.0 + float(full.abs().max()))
    if not gap <= CACHE_TOLERANCE:
        cache.usable = False
        log(
            f"  note: {type(cache.model).__name__} cannot start at a cached layer "
            f"(gap {gap:.1e}); running every layer each step"
        )


def predict(
    cache: LowerCache,
    batches: list[tuple[list[int], torch.Tensor | None]],
    enc: Encoded,
    label_ids: torch.Tensor,
    pad_id: int,
) -> torch.Tensor:
    """Argmax over the label words' first tokens per example (in ``enc`` order)."""
    pred = torch.zeros(len(enc.rows), dtype=torch.long)
    with torch.no_grad():
        for rows, states in batches:
            ids, mask, last = pad([enc.rows[i] for i in rows], pad_id)
            with cache.top_only(states):
                logits = answer_logits(cache.model, ids, mask, last)
            pred[rows] = logits[:, label_ids].argmax(-1)
    return pred


def held_out(
    pred: torch.Tensor, enc: Encoded, names: list[str]
) -> tuple[float, list[float], dict[str, float]]:
    """Balanced accuracy with its bootstrap interval and per-class accuracy (``competence``)."""
    comp = competence(pred, torch.tensor(enc.labels), names, [])
    per = {k: v["acc"] for k, v in comp["per_class"].items()}
    return comp["balanced_acc"], comp["balanced_acc_ci"], per


def train_answer(
    model: Any,
    train: Encoded,
    held: Encoded,
    names: list[str],
    label_ids: torch.Tensor,
    pad_id: int,
    settings: Any,
    log: Callable[[str], None] = print,
) -> tuple[int, float, list[EpochReport]]:
    """AdamW on the top ``settings.train_layers`` layers; held-out figures after every epoch.
    Returns (steps, last smoothed loss, per-epoch reports)."""
    from tqdm.auto import tqdm

    from .optim import make_optimizer, take_step

    torch.manual_seed(settings.seed)
    rng = random.Random(settings.seed)
    model.eval()  # no dropout: the lower cache stays exact and runs reproducible
    params = trainable_parameters(model, settings.train_layers)
    cache = LowerCache(model, settings.train_layers)
    check_cache(cache, train, pad_id, log)
    size = settings.batch_size
    train_batches = cache_batches(cache, train, size, pad_id, "lower layers (train)", log)
    held_batches = cache_batches(cache, held, size, pad_id, "lower layers (held-out)", log)
    total = len(train_batches) * settings.epochs
    opt, sched = make_optimizer(params, settings, total)
    loss_fn = nn.CrossEntropyLoss()
    answers = label_ids[torch.tensor(train.labels)]
    step, ema, reports = 0, math.nan, []
    t0 = time.perf_counter()
    for epoch in range(1, settings.epochs + 1):
        order = list(range(len(train_batches)))
        rng.shuffle(order)
        bar = tqdm(order, desc=f"epoch {epoch}/{settings.epochs}", unit="batch", leave=False)
        for b in bar:
            rows, states = train_batches[b]
            ids, mask, last = pad([train.rows[i] for i in rows], pad_id)
            with cache.top_only(states):
                logits = answer_logits(model, ids, mask, last)
            loss = loss_fn(logits, answers[rows])
            ema = take_step(loss, params, opt, sched, ema)
            step += 1
            bar.set_postfix(loss=f"{ema:.3f}")
        bar.close()
        pred = predict(cache, held_batches, held, label_ids, pad_id)
        bal, ci, per = held_out(pred, held, names)
        reports.append(EpochReport(epoch, ema, bal, ci, per, time.perf_counter() - t0))
        log(
            f"  epoch {epoch}/{settings.epochs}: loss {ema:.3f}, held-out balanced accuracy "
            f"{bal:.3f} [{ci[0]:.3f}, {ci[1]:.3f}] ("
            + ", ".join(f"{k} {v:.2f}" for k, v in per.items())
            + f"), {time.perf_counter() - t0:.0f}s"
        )
    for p in model.parameters():
        p.requires_grad_(False)
    return step, ema, reports
