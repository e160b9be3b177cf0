"""The evaluation of an ``Edit``: the one stage ``nledit.evaluate`` and ``nledit run`` call.

The erasure table (``erasure.measure``) of the edit's gates, each alone, and of its baselines;
the calibration choice; the firing rates and verdict of each row (``diagnostics``); perplexity
on general text (``perplexity.general_perplexity``); the transfer figure outside the fitting
prompt (``transfer``) and the linear probe (``probing``), as the evaluation settings (the
recipe's ``eval`` section, ``EvalSpec``) say. It takes the edit and what it is measured on, the
loaded concept model and the examples, never a recipe run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from ..data.concept import ConceptModel
from ..data.dataset import Examples
from ..recipe import EvalSpec
from ..runtime.edit import Edit
from . import diagnostics, transfer
from .erasure import Condition, conditions_of, measure, resolve_calibration
from .perplexity import general_perplexity
from .rows import ConceptRow, EvalResult


@dataclass
class EvalInputs:
    """What an edit is measured on: the held-out ``examples``, the fitting examples ``fit``
    (the ``auto`` calibration choice and the probe read them), the batch size and seed, and the
    calibration setting (``prompt.calibrate``; None: none applied and none recorded)."""

    examples: Examples
    batch_size: int
    fit: Examples = field(default_factory=lambda: Examples([], []))
    seed: int = 0
    calibrate: bool | str | None = None
    token_level: bool = False  # token-level concepts: no transfer figure
    perplexity_text: str | None = None  # general text given as text (else eval's source)
    perplexity_field: str = "eval.perplexity_source"  # the setting named in errors


def erasure_table(
    edit: Edit,
    cm: ConceptModel,
    inputs: EvalInputs,
    ev: EvalSpec,
    *,
    baselines: bool = True,
    fast: bool = True,
    diagnose: bool = True,
    timings: dict[str, float] | None = None,
) -> EvalResult:
    """The erasure table of ``edit``'s gates (``baselines``: and its baseline gates) on the
    held-out examples; with ``diagnose``, each range row also carries its gate's firing rates
    and verdict (``diagnostics``)."""
    conds = conditions_of(edit.gates + (edit.baseline if baselines else []))
    counter = diagnostics.FiringCounter([g for c in conds for g in c.gates])
    observe = counter.observe if diagnose and counter.gates else None
    choice = None
    if inputs.calibrate is not None:
        choice = resolve_calibration(cm, inputs.calibrate, inputs.fit, inputs.batch_size)
    result = measure(
        cm,
        inputs.examples,
        conds,
        inputs.batch_size,
        ev.curate,
        False,
        fast,
        observe,
        ev.collateral,
    )
    if choice is not None:
        result.calibration = choice
    if diagnose:
        t0 = time.perf_counter()
        add_firing(cm, inputs, ev, conds, result.rows, counter, result.competence)
        if timings is not None:
            timings["diagnostics_s"] = time.perf_counter() - t0
    return result


def evaluate_edit(
    edit: Edit,
    cm: ConceptModel,
    inputs: EvalInputs,
    ev: EvalSpec,
    *,
    baselines: bool = True,
    diagnose: bool = True,
    timings: dict[str, float] | None = None,
) -> EvalResult:
    """The erasure table and perplexity of ``edit`` (and, as ``ev`` says, its transfer figure
    and probe) for the concept model ``cm``; seconds per step go into ``timings``."""
    clock: dict[str, float] = {} if timings is None else timings
    t0 = time.perf_counter()
    result = erasure_table(
        edit, cm, inputs, ev, baselines=baselines, diagnose=diagnose, timings=clock
    )
    clock["eval_s"] = time.perf_counter() - t0
    t1 = time.perf_counter()
    result.perplexity = general_perplexity(
        cm,
        conditions_of(edit.gates + (edit.baseline if baselines else [])),
        ev.perplexity_window,
        ev.perplexity_windows,
        inputs.batch_size,
        text=inputs.perplexity_text,
        source=ev.perplexity_source or "",
        field=inputs.perplexity_field,
        steps=ev.perplexity_preprocess,
        intervals=result.ppl_ci,
    )
    if result.perplexity:
        clock["perplexity_s"] = time.perf_counter() - t1
    if transfer.applies(ev, cm, inputs.token_level):
        t2 = time.perf_counter()
        result.transfer = transfer.measure_transfer(
            edit, cm, inputs.examples, ev, inputs.batch_size
        )
        clock["transfer_s"] = time.perf_counter() - t2
    if ev.probe:
        from .probing import probe_rows

        t3 = time.perf_counter()
        gates = edit.gates + edit.baseline
        result.probe = probe_rows(
            cm, inputs.fit, inputs.examples, gates, inputs.batch_size, inputs.seed
        )
        clock["probe_s"] = time.perf_counter() - t3
    return result


def add_firing(
    cm: ConceptModel,
    inputs: EvalInputs,
    ev: EvalSpec,
    conds: list[Condition],
    rows: list[ConceptRow],
    counter: diagnostics.FiringCounter | None = None,
    comp: dict | None = None,
) -> None:
    """Firing rates of each range-mode gate (eval examples and the perplexity text) and a
    verdict on every row; ``rows`` follow the non-base ``conds`` in order."""
    general = None
    if ev.perplexity_source and ev.perplexity_windows and cm.is_lm:
        from ..data.text import load_text, windows

        text = load_text(ev.perplexity_source, steps=ev.perplexity_preprocess)
        general = windows(
            cm.tokenizer,
            text,
            ev.perplexity_window,
            ev.perplexity_windows,
            count_field="eval.perplexity_windows",
        )
    examples = inputs.examples
    edited = [c for c in conds if c.concept is not None]
    gates = [g for c in edited for g in c.gates if g.spec.mode == "range"]
    rates = diagnostics.firing_rates(
        cm, gates, examples.texts, examples.labels, inputs.batch_size, general, counter
    )
    for cond, row in zip(edited, rows):
        for g in cond.gates:
            if g.spec.mode == "neuron":  # acts on every activation of its neurons
                row.diag.update(dict.fromkeys(diagnostics.FIRING, 1.0))
            row.diag.update(rates.get(g.spec.name, {}))
        row.diag["verdict"], row.diag["selective"] = diagnostics.verdict(row.to_dict(), comp)
