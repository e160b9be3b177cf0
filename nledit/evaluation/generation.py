"""What an edit does to generated text: base and edited continuations side by side.

The same model generates twice per prompt, once with every gate off (the base model, exactly)
and once with the gates on, with the same decoding settings and seed. Along the way the
probability of each concept's label word (its first token) is recorded at every step, so one
sees where the edited model stops reaching for the erased concept.
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from ..data.labelwords import label_tokens
from ..models.compat import returned_cache, with_cache
from ..models.context import check_fits
from ..models.devices import input_device
from ..runtime.gate import RangeGate, gates_disabled, install_gates, remove_gates


@dataclass
class Decoding:
    """How to continue a prompt: greedy by default, sampled with a seed otherwise."""

    max_new_tokens: int = 40
    sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int = 0
    chat: bool = False  # wrap the prompt in the tokenizer's chat template


@dataclass
class Continuation:
    """One continuation and the label-word probabilities at each generated step."""

    text: str
    label_probs: dict[str, list[float]] = field(default_factory=dict)

    def peak(self) -> dict[str, float]:
        """Each label word's highest probability over the steps."""
        return {w: max(p) if p else 0.0 for w, p in self.label_probs.items()}


@dataclass
class Comparison:
    """Base and edited continuations of one prompt."""

    prompt: str
    base: Continuation
    edited: Continuation

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _encode(tokenizer: Any, prompt: str, chat: bool) -> torch.Tensor:
    if chat:
        messages = [{"role": "user", "content": prompt}]
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return tokenizer(text, return_tensors="pt", add_special_tokens=False)["input_ids"]
    return tokenizer(prompt, return_tensors="pt")["input_ids"]


def label_token_ids(tokenizer: Any, label_words: list[str]) -> dict[str, int]:
    """The first token of each label word (how nledit scores labels, checked as there)."""
    return dict(zip(label_words, label_tokens(tokenizer, label_words, "label_words")))


@torch.inference_mode()
def continue_text(
    model: Any, tokenizer: Any, prompt: str, labels: dict[str, int], decoding: Decoding
) -> Continuation:
    """Generate one continuation of ``prompt`` with the model as it is (gates on or off)."""
    device = input_device(model)
    ids = _encode(tokenizer, prompt, decoding.chat).to(device)
    check_fits(
        model,
        ids.shape[1] + decoding.max_new_tokens,
        f"the prompt {prompt[:40]!r} with {decoding.max_new_tokens} new tokens",
        "shorten the prompt or ask for fewer new tokens (--max-new-tokens)",
    )
    generator = torch.Generator(device="cpu").manual_seed(decoding.seed)
    probs: dict[str, list[float]] = {w: [] for w in labels}
    new: list[int] = []
    cache = None
    step_ids = ids
    eos = tokenizer.eos_token_id
    for _ in range(decoding.max_new_tokens):
        out = model(**with_cache(model, {"input_ids": step_ids, "use_cache": True}, cache))
        cache = returned_cache(out)
        logits = out.logits[0, -1].float().cpu()
        p = torch.softmax(logits, dim=-1)
        for word, tid in labels.items():
            probs[word].append(float(p[tid]))
        if decoding.sample:
            scaled = torch.softmax(logits / max(decoding.temperature, 1e-5), -1)
            token = int(torch.multinomial(_nucleus(scaled, decoding.top_p), 1, generator=generator))
        else:
            token = int(torch.argmax(logits))
        if eos is not None and token == eos:
            break
        new.append(token)
        step_ids = torch.tensor([[token]], device=device)
    return Continuation(tokenizer.decode(new, skip_special_tokens=True), probs)


def _nucleus(p: torch.Tensor, top_p: float) -> torch.Tensor:
    """Keep the smallest set of tokens whose probability reaches ``top_p``; renormalise."""
    if top_p >= 1.0:
        return p
    sorted_p, order = torch.sort(p, descending=True)
    keep = torch.cumsum(sorted_p, 0) - sorted_p < top_p
    kept = torch.zeros_like(p)
    kept[order[keep]] = sorted_p[keep]
    return kept / kept.sum()


def compare(
    model: Any,
    tokenizer: Any,
    prompts: list[str],
    label_words: list[str] | None = None,
    decoding: Decoding | None = None,
) -> list[Comparison]:
    """Base (gates off) and edited (gates on) continuations of each prompt, side by side.

    ``model`` carries nledit gates: an exported checkpoint loaded with transformers, or a model
    inside ``Edit.applied``. Greedy by default; sampled runs reuse the seed for both sides.
    """
    decoding = decoding or Decoding()
    labels = label_token_ids(tokenizer, label_words or [])
    out = []
    for prompt in prompts:
        with _gates_off(model):
            base = continue_text(model, tokenizer, prompt, labels, decoding)
        edited = continue_text(model, tokenizer, prompt, labels, decoding)
        out.append(Comparison(prompt, base, edited))
    return out


def _gates_off(model: Any) -> contextlib.AbstractContextManager[None]:
    # An exported model carries the gate classes of its own modeling_nledit.py, which
    # isinstance checks against nledit.runtime.gate do not match; it switches itself off.
    return model.nledit_disabled() if hasattr(model, "nledit_disabled") else gates_disabled(model)


def render(comparisons: list[Comparison]) -> str:
    """Markdown: per prompt, base and edited text and the label words' peak probabilities."""
    parts = []
    for c in comparisons:
        lines = [f"**Prompt:** {_one_line(c.prompt)}", ""]
        lines += ["| | continuation | peak label-word probability |", "|---|---|---|"]
        for name, cont in (("base", c.base), ("edited", c.edited)):
            peaks = ", ".join(f"`{w.strip()}` {v:.3f}" for w, v in cont.peak().items())
            lines.append(f"| {name} | {_one_line(cont.text)} | {peaks} |")
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"


def _one_line(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", "⏎ ").strip() or "(nothing)"


def card_examples(
    model: Any,
    tokenizer: Any,
    layers_path: str,
    gates: list[RangeGate],
    prompts: list[str],
    label_words: list[str],
    max_new_tokens: int,
) -> str:
    """Markdown of greedy base and edited continuations, ``gates`` installed for the call only
    (the examples ``eval.generate_prompts`` puts in the model card); only the prompts whose
    continuations differ, "" when none does."""
    if not prompts:
        return ""
    install_gates(model, layers_path, gates)
    try:
        comparisons = compare(model, tokenizer, prompts, label_words, Decoding(max_new_tokens))
    finally:
        remove_gates(model, gates)
    acting = [c for c in comparisons if c.base.text != c.edited.text]
    return render(acting) if acting else ""  # identical continuations show nothing
