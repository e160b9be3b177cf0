"""How far an edit reaches outside the prompt it was fitted in (``eval.transfer``).

The same held-out examples, the same gates, three other ways of asking:

- ``zero_shot``: the recipe's prompt without its demonstrations;
- ``template``: the instruction and demonstrations with a second query template and answer
  prefix (``eval.transfer_template`` / ``eval.transfer_answer_prefix``, or ``derived``);
- ``free_text``: the bare example text, no instruction, template or answer prefix: the label
  word's probability as the model's next token when it continues the text freely.

Each gives the target's ΔAcc and ΔConf (paired bootstrap 95 % intervals, as the erasure table)
and the share of examples whose label probabilities the edit changes at all. All uncalibrated:
contextual calibration belongs to the fitting prompt. A setting where the edit changes no
example, or where both intervals include 0, is where the edit stops acting.
"""

from __future__ import annotations

from typing import Any

import torch

from ..data.concept import ConceptModel
from ..data.dataset import Examples
from ..recipe import EvalSpec, PromptSpec
from ..runtime.edit import Edit
from .erasure import conditions_of, label_probs, rows_from_probs
from .transfer_table import stops as stops

SETTINGS = ("zero_shot", "template", "free_text")
LABELS = {
    "zero_shot": "0-shot prompt",
    "template": "second template",
    "free_text": "free text (no prompt)",
}
CHANGED = 1e-6  # a label probability that moves by more than this counts as changed


def derived(prompt: PromptSpec) -> tuple[str, str]:
    """The default second template and answer prefix: the query without the recipe's field
    label (``"Article: {text}"`` → ``"{text}"``; a bare ``"{text}"`` becomes
    ``"Input: {text}"``), answered after ``"\\nAnswer:"`` (``"\\nLabel:"`` when the recipe
    already uses ``"\\nAnswer:"``)."""
    template = "Input: {text}" if prompt.template.strip() == "{text}" else "{text}"
    answer = "\nLabel:" if prompt.answer_prefix.strip() == "Answer:" else "\nAnswer:"
    return template, answer


def prompts(edit: Edit, ev: EvalSpec) -> dict[str, tuple[PromptSpec, Examples]]:
    """Each transfer setting's prompt and demonstrations (``edit``'s own prompt and shots,
    the settings ``ev`` names)."""
    p = edit.prompt
    template, answer = derived(p)
    none = Examples([], [])
    second = {
        "template": ev.transfer_template or template,
        "answer_prefix": answer if ev.transfer_answer_prefix is None else ev.transfer_answer_prefix,
    }
    bare = {"instruction": "", "template": "{text}", "answer_prefix": "", "chat": False}
    return {
        "zero_shot": (p.updated(shots=0, demonstrations=None), none),
        "template": (p.updated(**second), edit.shots),
        "free_text": (p.updated(**bare, shots=0, demonstrations=None), none),
    }


def applies(ev: EvalSpec, cm: ConceptModel, token_level: bool = False) -> bool:
    """Whether ``ev`` asks for the figure and it can be measured (a prompted language model on
    sequence examples, not token-level concepts)."""
    return ev.transfer and cm.is_lm and not token_level


def _verdict(row: dict[str, Any], changed: float) -> tuple[bool, str]:
    """Whether the edit acts in a setting, and why, in words."""
    if changed == 0:
        return False, "does not act: the edit changes no example's label probabilities"
    ci = row.get("ci") or {}
    still = [k for k in ("d_acc", "d_conf") if k in ci and ci[k][0] <= 0 <= ci[k][1]]
    if len(still) == 2:
        return False, (
            f"no measurable effect: it changes {changed:.0%} of examples, but the intervals "
            "of ΔAcc and ΔConf both include 0"
        )
    return True, f"acts: ΔAcc {row['d_acc']:+.3f}, ΔConf {row['d_conf']:+.3f}"


def measure_transfer(
    edit: Edit, cm0: ConceptModel, examples: Examples, ev: EvalSpec, batch_size: int
) -> dict[str, Any]:
    """The transfer figure of the edit's own gates (``edit.gates``) on ``examples`` (the
    evaluation split): per setting, the prompt used and each target's row with its intervals
    and verdict."""
    conds = conditions_of(edit.gates)
    gold = torch.tensor(examples.labels)
    out: dict[str, Any] = {}
    for name, (prompt, shots) in prompts(edit, ev).items():
        cm = ConceptModel(
            cm0.model,
            cm0.tokenizer,
            cm0.task,
            cm0.layout,
            list(cm0.label_names),
            prompt,
            shots,
            edit.max_length,
        )
        probs = label_probs(cm, examples.texts, conds, batch_size)
        rows, comp, _ = rows_from_probs(cm, probs, gold, conds, collateral=ev.collateral)
        entries = []
        for cond, row in zip([c for c in conds if c.concept is not None], rows):
            moved = (probs[cond.key] - probs["base"]).abs().amax(1) > CHANGED
            d = row.to_dict()
            changed = float(moved.double().mean())
            acts, why = _verdict(d, changed)
            keep = ("concept", "method", "edit", "acc", "conf", "base_acc", "base_conf")
            keep += ("d_acc", "d_conf", "d_cacc", "d_cconf", "ci", "assessable")
            entries.append(
                {**{k: d[k] for k in keep}, "changed": changed, "acts": acts, "why": why}
            )
        out[name] = {
            "label": LABELS[name],
            "prompt": cm.prompt("{text}"),
            "balanced_acc": comp["balanced_acc"],
            "rows": entries,
        }
    return out
