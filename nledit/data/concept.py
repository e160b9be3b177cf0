"""The concept model: how a text becomes model input, which token is read, how labels are scored.

Decoder LMs classify by a few-shot prompt ``head + query(text) + tail``; the prediction is the
argmax over the label words' first tokens at the last prompt token. The head (instruction and
shots) is the same for every example: its key/value cache is computed once per pass and reused,
so each example costs only its own tokens. Encoder classifiers read their own head (CLS token).
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch

from ..errors import NleditError
from ..models.arch import Layout, read_positions
from ..models.compat import returned_cache, with_cache
from ..models.context import check_fits
from ..models.devices import input_device
from ..models.prefixcache import batch_cache
from ..recipe import PromptSpec
from .dataset import Examples
from .labelwords import label_tokens
from .prompting import clean, common_prefix, demo_text

_SLOT = "\x00nledit-query\x00"


class ConceptModelError(NleditError, ValueError):
    """The prompt or label words do not fit the model."""


@dataclass
class Batch:
    inputs: dict[str, Any]
    read: torch.Tensor  # (B,) position of the read token per row, in the input tensor
    rows: slice
    kept: bool = False  # the model returned logits at the read positions only


class ConceptModel:
    """Wraps (model, tokenizer) with the prompt, the read token and label scoring."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        task: str,
        layout: Layout,
        label_names: list[str],
        prompt: PromptSpec,
        shots: Examples,
        max_length: int,
    ) -> None:
        self.model, self.tokenizer, self.task, self.layout = model, tokenizer, task, layout
        self.label_names, self.spec, self.max_length = label_names, prompt, max_length
        self.is_lm = task == "causal-lm"
        self.calibration: torch.Tensor | None = None
        self.use_prefix_cache = self.is_lm
        # Models that take logits_to_keep project only the read token onto the vocabulary.
        params = inspect.signature(model.forward).parameters
        self.keep_logits = self.is_lm and "logits_to_keep" in params
        if not self.is_lm:
            n = getattr(model.config, "num_labels", len(label_names))
            if n != len(label_names):
                raise ConceptModelError(
                    f"data: {len(label_names)} labels but the classifier head has {n} outputs"
                )
            self.label_ids = torch.arange(n)
            self.head, self.tail, self.head_ids = "", "", []
            return
        words = prompt.label_words or [" " + n for n in label_names]
        if len(words) != len(label_names):
            raise ConceptModelError(
                f"prompt.label_words: {len(words)} words for {len(label_names)} labels"
            )
        field = "prompt.label_words" if prompt.label_words else "data.label_names"
        first = label_tokens(tokenizer, words, field)
        self.label_words, self.label_ids = words, torch.tensor(first)
        self.head, self.tail = self._frame(shots)
        self.whole = prompt.tokenization == "whole"
        self.head_ids: list[int] = self._ids(self.head, first=True)
        if self.whole:  # cache only the leading tokens every whole prompt shares
            probes = [self._ids(self.prompt(t), first=True) for t in ("a", "1 .", "\n")]
            self.head_ids = self.head_ids[: common_prefix(self.head_ids, *probes)]
        self.use_prefix_cache = len(self.head_ids) > 0

    def _ids(self, text: str, first: bool = False) -> list[int]:
        """Token ids of ``text``; at the start of the prompt (``first``) the BOS rule applies:
        the tokenizer's default (``auto``), always one BOS (``add``), or none (``none``)."""
        bos = self.spec.bos if first else "none"
        ids = self.tokenizer(text, add_special_tokens=bos == "auto")["input_ids"]
        if bos == "add":
            bos_id = self.tokenizer.bos_token_id
            if bos_id is None:
                raise ConceptModelError("prompt.bos: add, but the tokenizer has no BOS token")
            ids = ids if ids[:1] == [bos_id] else [bos_id, *ids]
        return ids

    # ---- prompts ----------------------------------------------------------------------------
    def _query(self, text: str, demo: bool = False) -> str:
        text = demo_text(text, self.spec) if demo else clean(text, self.spec)
        return self.spec.template.replace("{text}", text) + self.spec.answer_prefix

    def _frame(self, shots: Examples) -> tuple[str, str]:
        """The fixed text before and after the query (instruction, shots, chat markup)."""
        parts = [self.spec.instruction] if self.spec.instruction else []
        parts += [
            self._query(t, demo=True) + self.label_words[y]
            for t, y in zip(shots.texts, shots.labels)
        ]
        body = "".join(p + self.spec.shot_separator for p in parts) + _SLOT
        if self.spec.chat and getattr(self.tokenizer, "chat_template", None):
            body = self.tokenizer.apply_chat_template(
                [{"role": "user", "content": body}], tokenize=False, add_generation_prompt=True
            )
        head, tail = body.split(_SLOT)
        return head, tail

    def prompt(self, text: str) -> str:
        """The whole prompt as text (for display; the model sees head and query tokens)."""
        return self.head + self._query(text) + self.tail if self.is_lm else text

    # ---- batches ----------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return input_device(self.model)

    @torch.no_grad()
    def prefix_cache(self) -> Any:
        """Key/value cache of the shared prompt head, computed with the model as it is now."""
        ids = torch.tensor([self.head_ids], device=self.device)
        extra = {"logits_to_keep": 1} if self.keep_logits else {}
        out = self.model(input_ids=ids, use_cache=True, **extra)
        return returned_cache(out)

    def prompt_rows(self, texts: list[str]) -> list[list[int]]:
        """Each text's whole prompt as token ids, as an uncached batch feeds it."""
        return [self.head_ids + r for r in self._encode(texts)]

    def _encode(self, texts: list[str]) -> list[list[int]]:
        if not self.is_lm:
            enc = self.tokenizer(texts, truncation=True, max_length=self.max_length)
            return enc["input_ids"]
        if self.whole:
            return [self._whole_rest(t) for t in texts]
        queries = [self._query(t) for t in texts]
        enc = self.tokenizer(queries, add_special_tokens=False)["input_ids"]
        tail = self.tokenizer(self.tail, add_special_tokens=False)["input_ids"] if self.tail else []
        # Long texts keep their end: the tokens right before the answer matter most.
        return [q[-(self.max_length - len(tail)) :] + tail for q in enc]

    def _whole_rest(self, text: str) -> list[int]:
        """The whole prompt's tokens after the cached shared head (at most ``max_length``,
        keeping the end)."""
        ids = self._ids(self.prompt(text), first=True)
        p = len(self.head_ids)
        if ids[:p] != self.head_ids:
            raise ConceptModelError(
                "prompt.tokenization: whole: a prompt's tokens do not start with the shared "
                f"head's tokens (text {text[:40]!r}); use tokenization: split"
            )
        return ids[p:][-self.max_length :]

    def batches(
        self, texts: list[str], batch_size: int, prefix: Any | None = None
    ) -> Iterator[Batch]:
        """Right-padded batches; with the prefix cache, only query tokens are fed."""
        cached = self.use_prefix_cache
        if cached and prefix is None:
            prefix = self.prefix_cache()
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        for start in range(0, len(texts), batch_size):
            rows = self._encode(texts[start : start + batch_size])
            for text, r in zip(texts[start : start + batch_size], rows):
                check_fits(
                    self.model,
                    len(r) + (len(self.head_ids) if self.is_lm else 0),
                    f"the prompt of the text {text[:40]!r}",
                    "use fewer prompt.shots, shorter demonstrations or a smaller data.max_length",
                )
            if self.is_lm and not cached:
                rows = [self.head_ids + r for r in rows]
            width = max(len(r) for r in rows)
            ids = torch.full((len(rows), width), pad, dtype=torch.long)
            mask = torch.zeros((len(rows), width), dtype=torch.long)
            for i, r in enumerate(rows):
                ids[i, : len(r)] = torch.tensor(r)
                mask[i, : len(r)] = 1
            read = read_positions(mask, self.layout.is_encoder)
            inputs: dict[str, Any] = {"input_ids": ids.to(self.device)}
            if cached:
                p = len(self.head_ids)
                full = torch.cat([torch.ones((len(rows), p), dtype=torch.long), mask], dim=1)
                cache = batch_cache(prefix, len(rows))
                inputs["attention_mask"] = full.to(self.device)
                inputs = with_cache(self.model, inputs, cache)
                inputs["use_cache"] = True
            else:
                inputs["attention_mask"] = mask.to(self.device)
            if self.keep_logits:
                inputs["logits_to_keep"] = read.unsqueeze(1).to(self.device)
            yield Batch(inputs, read, slice(start, start + len(rows)), self.keep_logits)

    # ---- scoring ----------------------------------------------------------------------------
    def read_logits(self, output: Any, batch: Batch) -> torch.Tensor:
        """Logits (B, V) at the read token (LM) or of the classifier head (B, C)."""
        logits = output.logits if hasattr(output, "logits") else output
        if batch.kept:
            return logits[:, 0]
        if logits.dim() == 3:
            rows = torch.arange(logits.shape[0], device=logits.device)
            return logits[rows, batch.read.to(logits.device)]
        return logits

    def label_probs(self, logits: torch.Tensor) -> torch.Tensor:
        """Full-vocabulary (or full-head) probabilities of each label's first token (B, C)."""
        probs = torch.softmax(logits.float(), dim=-1)
        return probs[:, self.label_ids.to(probs.device)]

    def predict(self, label_probs: torch.Tensor) -> torch.Tensor:
        """Argmax over labels, after contextual calibration when it is set."""
        scores = label_probs
        if self.calibration is not None:
            scores = scores / self.calibration.to(scores.device).clamp_min(1e-12)
        return scores.argmax(dim=-1)
