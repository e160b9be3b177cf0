"""The study of `nledit tune`: its name, storage and sampler, and the trials it runs."""

from __future__ import annotations

import hashlib
import json
import logging
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from ..recipe import Recipe
from ..runtime import operators
from .pick import selectivity
from .trial import DIRECTIONS, TuneContext, TuneError, edit_mapping, suggest, to_edit, trial_metrics

# ---- the study -------------------------------------------------------------------------------


def study_name(recipe: Recipe) -> str:
    """A name that changes whenever the search would measure something else."""
    if recipe.tune.study:
        return recipe.tune.study
    t = recipe.tune
    doc = {
        "model": recipe.model.model_dump(mode="json"),
        "data": recipe.data.model_dump(mode="json"),
        "prompt": recipe.prompt.model_dump(mode="json"),
        "edit": recipe.edits[t.edit].model_dump(mode="json"),
        "eval": recipe.eval.model_dump(mode="json"),
        "seed": recipe.seed,
        "tune": t.model_dump(mode="json", include={"space", "objectives", "val_per_class"})
        | {"windows": t.perplexity_windows, "sampler": t.sampler, "edit": t.edit},
    }
    digest = hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()
    return f"nledit-{digest[:12]}"


def storage_url(recipe: Recipe) -> str:
    if recipe.tune.storage:
        return recipe.tune.storage
    path = Path(recipe.tune.dir).expanduser().resolve() / "tune.db"
    return f"sqlite:///{path}"


def make_sampler(recipe: Recipe, offset: int) -> Any:
    """The sampler, seeded by the seed plus the number of trials already in the study, so a
    resumed study draws new points rather than repeating its first ones."""
    import optuna

    t = recipe.tune
    seed = (recipe.seed if t.seed is None else t.seed) + offset
    if t.sampler == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=max(4, t.trials // 4))
    if t.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    startup = max(4, min(10, t.trials // 3))
    with warnings.catch_warnings():  # multivariate/group: experimental flags, stable in use
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(
            seed=seed, n_startup_trials=startup, multivariate=True, group=True
        )


def open_study(recipe: Recipe, offset: int | None = None) -> Any:
    import optuna

    optuna.logging.set_verbosity(logging.WARNING)
    directions = [DIRECTIONS[o] for o in recipe.tune.objectives]
    Path(recipe.tune.dir).expanduser().mkdir(parents=True, exist_ok=True)
    name, url = study_name(recipe), storage_url(recipe)
    if offset is None:
        try:
            existing = optuna.load_study(study_name=name, storage=url)
            offset = len(existing.trials)
        except KeyError:
            offset = 0
    return optuna.create_study(
        storage=url,
        study_name=name,
        directions=directions,
        sampler=make_sampler(recipe, offset),
        load_if_exists=True,
    )


def complete_trials(study: Any) -> list[Any]:
    import optuna

    return [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]


def describe_trial(p: dict[str, Any]) -> str:
    """One trial's settings in a line of the tuner's log; the operator carries the values of
    the parameters the registry says ``nledit tune`` searches for it (``Operator.tuned``)."""
    parts = [f"L{p['layer']}", p["saliency"], f"p={p['top_p']:.3f}"]
    if p["saliency"] == "selective":
        parts.append(f"{p['selectivity']}^{p['magnitude_weight']:.2f}")
    if p["range"] == "quantile":
        parts.append(f"q=[{p['quantiles'][0]:.3f},{p['quantiles'][1]:.3f}]")
    else:
        parts.append(f"tau={p['tau']:.2f}")
    if p["trim_overlap"]:
        parts.append("trim")
    if p.get("quorum", "none") != "none":
        parts.append(f"quorum {p['quorum']}")
    if p.get("positions", "all") != "all":
        parts.append(f"at {p['positions']}")
    tuned = operators.get(p["operator"]).tuned
    op = p["operator"] + "".join(f"({p[name]:.2f})" for name in tuned if name in p)
    return " ".join([*parts, op])


def fmt_metrics(m: dict[str, Any]) -> str:
    s = f"dAcc {m['d_acc']:+.3f} dConf {m['d_conf']:+.3f} dCAcc {m['d_cacc']:+.3f}"
    s += f" dCConf {m['d_cconf']:+.3f}"
    return s + (f" dPPL {m['d_ppl']:+.2f}" if "d_ppl" in m else "")


def run_trials(ctx: TuneContext, study: Any, log: Callable[[str], None] = print) -> None:
    """Run trials until the study holds ``tune.trials`` finished ones."""
    tune = ctx.recipe.tune
    base_edit = _raw_edit(ctx)
    done = len(complete_trials(study))
    todo = max(0, tune.trials - done)
    if todo == 0:
        log(f"tune: study {study.study_name} already holds {done} finished trial(s)")
        return
    log(f"tune: study {study.study_name}: {done} finished, running {todo} more")

    def objective(trial: Any) -> tuple[float, ...]:
        p = suggest(trial, tune.space, ctx.layers)
        mapping = edit_mapping(base_edit, p)
        m = trial_metrics(ctx, to_edit(mapping))
        trial.set_user_attr("edit", mapping)
        trial.set_user_attr("params", p)
        for key, value in m.items():
            trial.set_user_attr(key, value)
        return tuple(float(m[o]) for o in tune.objectives)

    def progress(study: Any, trial: Any) -> None:
        n = len(complete_trials(study))
        if trial.state.name != "COMPLETE":
            log(f"[{n}/{tune.trials}] trial {trial.number} {trial.state.name.lower()}")
            return
        a = trial.user_attrs
        log(
            f"[{n}/{tune.trials}] trial {trial.number}: {describe_trial(a['params'])} k={a['k']}: "
            f"{fmt_metrics(a)} ({a['seconds']:.1f}s)"
        )

    study.optimize(objective, n_trials=todo, callbacks=[progress], catch=(TuneError,))


def _raw_edit(ctx: TuneContext) -> dict[str, Any]:
    raw = yaml.safe_load(ctx.text)
    return dict(raw["edits"][ctx.recipe.tune.edit])


def reference_metrics(ctx: TuneContext, study: Any) -> dict[str, Any]:
    """The recipe's own edit on the validation split (stored in the study once)."""
    ref = study.user_attrs.get("reference")
    if ref is None:
        ref = trial_metrics(ctx, ctx.edit)
        study.set_user_attr("reference", ref)
    return {**ref, "selectivity": selectivity(ref)}
