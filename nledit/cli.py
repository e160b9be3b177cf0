"""The `nledit` command line."""

from __future__ import annotations

import argparse
import json
import os
import sys
import textwrap
from pathlib import Path

from .cli_errors import UNFORESEEN, describe, user_errors
from .cli_help import EXAMPLES
from .overrides import parse_set
from .recipe import Recipe, load_recipe
from .threads import apply_threads, threads_option

# Exit code for bad input: the message names the problem, no traceback.
USAGE_ERROR = 2


def _check_outputs(*pairs: tuple[str, str | None]) -> None:
    """Every output folder the command will write, checked before any model work."""
    from .outputs import check_outputs

    check_outputs(list(pairs))


def _export_options(p: argparse.ArgumentParser) -> None:
    """--method and --weights: what the checkpoint carries."""
    p.add_argument(
        "--method",
        choices=["range", "neuron"],
        help="gates the checkpoint carries: the range edit, or the neuron-masking baseline "
        "(output.method)",
    )
    p.add_argument(
        "--weights",
        choices=["copy", "reference"],
        help="copy the base weights into the checkpoint, or reference them by local folder or "
        "pinned Hub commit and sha256: a checkpoint of a few MB (output.weights)",
    )


def _recipe(args: argparse.Namespace) -> tuple[Recipe, str]:
    overrides = parse_set(args.set or [])
    for flag, key in (
        ("out", "output.dir"),
        ("device", "model.device"),
        ("dtype", "model.dtype"),
        ("batch_size", "batch_size"),
        ("seed", "seed"),
        ("method", "output.method"),
        ("weights", "output.weights"),
        ("threads", "threads"),
    ):
        value = getattr(args, flag, None)
        if value is not None:
            overrides[key] = value
    if getattr(args, "overwrite", False):
        overrides["output.overwrite"] = True
    recipe, text = load_recipe(args.recipe, overrides or None)
    apply_threads(recipe.threads)
    return recipe, text


def cmd_check(args: argparse.Namespace) -> int:
    from .plan import make_plan

    recipe, _ = _recipe(args)
    plan = make_plan(recipe)
    if plan.problems:  # never "valid" first and a problem after
        print(f"recipe {args.recipe} has {len(plan.problems)} problem(s)")
        print(plan.render())
        print(
            f"error: recipe {args.recipe}: {len(plan.problems)} problem(s), see above",
            file=sys.stderr,
        )
        return USAGE_ERROR
    print(f"recipe {args.recipe} is valid")
    print(plan.render())
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from .pipeline import run

    recipe, text = _recipe(args)
    _check_outputs(("output.dir", recipe.output.dir))
    run(recipe, text, Path(recipe.output.dir), recipe.output.overwrite)
    return 0


def cmd_fit(args: argparse.Namespace) -> int:
    from .distributed import fit_distributed_or_local
    from .pipeline import save_fit

    recipe, text = _recipe(args)
    out = Path(args.out or (recipe.output.dir + "-fit"))
    from .outdir import check_destination
    from .pipeline import FIT_MARKERS

    field = "--out" if args.out else "output.dir (+ -fit)"
    check_destination(out, recipe.output.overwrite, FIT_MARKERS, field)
    fitted = fit_distributed_or_local(recipe, text)
    if fitted is not None:  # the main process writes
        save_fit(fitted, out, recipe.output.overwrite)
        print(f"fit written to {out} ({len(fitted.gates)} range gate(s))")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .export import EXPORT_MARKERS
    from .outdir import check_destination
    from .pipeline import evaluate, export_fitted, load_fit
    from .results import summary

    fit_dir = Path(args.fit_dir)
    if not (fit_dir / "nledit_fit.json").is_file():
        raise FileNotFoundError(f"{fit_dir}: not a fit directory (no nledit_fit.json)")
    args.recipe = str(fit_dir / "nledit_recipe.yaml")
    recipe, text = _recipe(args)
    _check_outputs(("output.dir", recipe.output.dir))
    out = Path(recipe.output.dir)
    check_destination(out, recipe.output.overwrite, EXPORT_MARKERS)
    fitted = load_fit(fit_dir, recipe, text)
    result = evaluate(fitted) if (recipe.eval.enabled and not args.no_eval) else None
    if result is not None:
        print(summary(result))
    export_fitted(fitted, out, result, recipe.output.overwrite)
    print(f"exported checkpoint to {out}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from .lmeval_cli import run_eval

    return run_eval(args)


def cmd_generate(args: argparse.Namespace) -> int:
    from .generate_cli import run_generate

    return run_generate(args)


def cmd_push(args: argparse.Namespace) -> int:
    from .hub import push

    result = push(
        Path(args.out),
        args.repo,
        private=args.private,
        revision=args.revision,
        dry_run=args.dry_run,
    )
    print(result.summary())
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    from .inspection import inspect

    recipe, text = _recipe(args)
    _check_outputs(("--report", args.report or "runs/inspect"))
    path = inspect(
        recipe,
        text,
        Path(args.report or "runs/inspect"),
        recipe.output.overwrite,
        all_layers=args.all_layers,
    )
    print(f"report written to {path}")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from .recipe import load_recipe_text
    from .sweep import run_sweep

    extra, shown = [], [f"nledit sweep {args.recipe}"]
    if args.over:
        extra.append(f"sweep.over={args.over}")
        shown.append(f"--over {args.over}")
    values = ",".join(v.strip(",") for v in args.values or [])
    if values:
        extra.append(f"sweep.values=[{values}]")
        shown.append(f"--values {values}")
    elif args.over:  # the recipe's values belong to the recipe's own `over`
        _, raw = load_recipe_text(args.recipe)
        section = raw.get("sweep") if isinstance(raw, dict) else None
        if isinstance(section, dict) and section.get("over", "tau") != args.over:
            extra.append("sweep.values=null")
    if args.sweep_out:
        extra.append(f"sweep.out={args.sweep_out}")
        shown.append(f"--out {args.sweep_out}")
    shown += [f"--set {item}" for item in args.set or []]
    args.set = (args.set or []) + extra
    recipe, text = _recipe(args)
    _check_outputs(("sweep.out", recipe.sweep.out))
    run_sweep(recipe, text, command=" ".join(shown))
    return 0


def cmd_tune(args: argparse.Namespace) -> int:

    from .tune import run_tune

    flags = {
        "tune.trials": args.trials,
        "tune.pick": args.pick,
        "tune.keep": args.keep,
        "tune.dir": args.tune_out,
        "tune.storage": args.storage,
        "tune.sampler": args.sampler,
        "tune.evaluate": False if args.no_eval else None,
    }
    extra = [f"{k}={json.dumps(v)}" for k, v in flags.items() if v is not None]
    args.set = (args.set or []) + extra
    recipe, text = _recipe(args)
    storage = recipe.tune.storage or ""
    db = storage.removeprefix("sqlite:///") if storage.startswith("sqlite:///") else None
    _check_outputs(("tune.dir", recipe.tune.dir), ("tune.storage", db and str(Path(db).parent)))
    run_tune(recipe, text)
    return 0


def cmd_train_head(args: argparse.Namespace) -> int:
    from .train_head import cmd_train_head as train

    return train(args)


def cmd_verify(args: argparse.Namespace) -> int:
    from .verify import render, verify

    findings = verify(Path(args.out), device=args.device)
    print(render(findings))
    return 0 if findings.ok else 1


def _common(p: argparse.ArgumentParser, recipe: bool = True) -> None:
    if recipe:
        p.add_argument("recipe", help="recipe YAML file")
    p.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override a recipe field, e.g. edits.0.tau=1.5 (repeatable)",
    )
    p.add_argument(
        "--overwrite", action="store_true", help="replace an existing output (output.overwrite)"
    )
    p.add_argument("--device", help="torch device (model.device)")
    p.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], help="model.dtype")
    p.add_argument("--batch-size", type=int, help="batch_size")
    p.add_argument("--seed", type=int, help="seed")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nledit",
        description="Edit what a language model knows about a concept by gating the activation "
        "ranges of its neurons (NeuronLens), evaluate the edit, and export a patched checkpoint.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:" + "".join(textwrap.dedent(e) for e in EXAMPLES.values()),
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(
            name,
            help=help_,
            description=help_,
            epilog="examples:" + textwrap.dedent(EXAMPLES[name]),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        return threads_option(p)  # every command: torch CPU threads

    p = add("check", "validate a recipe and print the plan, without loading weights")
    _common(p)
    p.set_defaults(func=cmd_check)

    p = add("run", "fit, evaluate and export in one go")
    _common(p)
    p.add_argument("--out", help="checkpoint directory (output.dir)")
    _export_options(p)
    p.set_defaults(func=cmd_run)

    p = add("fit", "one streaming pass: statistics, ranges and gates, into a fit directory")
    _common(p)
    p.add_argument("--out", help="fit directory (default: <output.dir>-fit)")
    p.set_defaults(func=cmd_fit)

    p = add("export", "evaluate a fit directory and export the patched checkpoint")
    p.add_argument("fit_dir", help="directory written by `nledit fit`")
    _common(p, recipe=False)
    p.add_argument("--out", help="checkpoint directory (output.dir)")
    p.add_argument("--no-eval", action="store_true", help="skip the erasure table (eval.enabled)")
    _export_options(p)
    p.set_defaults(func=cmd_export)

    p = add("eval", "run lm-evaluation-harness on an exported checkpoint and its base")
    p.add_argument("out", help="exported checkpoint directory")
    p.add_argument("--tasks", default="mmlu,wikitext", help="comma-separated: mmlu, wikitext")
    p.add_argument("--data-dir", help="local data folder with mmlu/ and wikitext2/ (offline)")
    p.add_argument("--hub", action="store_true", help="use the stock Hub tasks instead")
    p.add_argument("--limit", type=float, help="examples per task (or fraction)")
    p.add_argument("--num-fewshot", type=int, help="few-shot examples (MMLU: 0 as in the paper)")
    p.add_argument("--batch-size", default="1", help="lm-eval batch size")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32")
    p.add_argument("--no-base", action="store_true", help="skip evaluating the base model")
    p.set_defaults(func=cmd_eval)

    p = add("push", "publish an exported checkpoint to the Hugging Face Hub")
    p.add_argument("out", help="exported checkpoint directory")
    p.add_argument("--repo", required=True, help="user/name")
    p.add_argument("--private", action="store_true")
    p.add_argument("--revision", help="branch to push to (created if missing)")
    p.add_argument("--dry-run", action="store_true", help="list what would be uploaded")
    p.set_defaults(func=cmd_push)

    p = add("inspect", "distribution statistics, plots and an HTML report for a recipe's layer")
    _common(p)
    p.add_argument("--report", help="report directory (default runs/inspect)")
    p.add_argument("--all-layers", action="store_true", help="Table 9: statistics of every layer")
    p.set_defaults(func=cmd_inspect)

    p = add("sweep", "range vs neuron masking over tau, top_p or the layer: table and plot")
    _common(p)
    p.add_argument("--over", choices=["tau", "top_p", "layer"], help="setting to vary (sweep.over)")
    p.add_argument(
        "--values",
        nargs="+",
        metavar="V",
        help="values, comma- or space-separated (sweep.values; default: App. I taus "
        "0.3..4.5, Fig. 4 fractions 0.05..1, or six layers from first to last)",
    )
    p.add_argument(
        "--out", dest="sweep_out", metavar="DIR", help="directory for the four files (sweep.out)"
    )
    p.set_defaults(func=cmd_sweep)

    p = add("tune", "multi-objective search (Optuna) for an edit on a validation split")
    _common(p)
    p.add_argument("--trials", type=int, help="finished trials the study should hold (tune.trials)")
    p.add_argument("--pick", type=int, metavar="N", help="evaluate trial N (tune.pick)")
    p.add_argument(
        "--keep",
        type=float,
        help="pick rule: trials within this share of the best selectivity compete on ΔPPL "
        "(tune.keep)",
    )
    p.add_argument("--out", dest="tune_out", help="output folder (tune.dir)")
    p.add_argument("--storage", help="Optuna storage URL (tune.storage; default sqlite in --out)")
    p.add_argument("--sampler", choices=["tpe", "nsga2", "random"], help="tune.sampler")
    p.add_argument("--no-eval", action="store_true", help="skip the held-out evaluation")
    p.set_defaults(func=cmd_tune)

    p = add("generate", "base and edited continuations of prompts, side by side")
    from .generate_cli import add_arguments as generate_arguments

    generate_arguments(p)
    p.set_defaults(func=cmd_generate)

    p = add("verify", "check an exported checkpoint's files and reproduce its reference logits")
    p.add_argument("out", help="exported checkpoint directory")
    p.add_argument("--device", default="cpu")
    p.set_defaults(func=cmd_verify)

    from .train_head import add_arguments as train_head_arguments

    p = add("train-head", "fine-tune a classification head on a plain encoder and save it")
    train_head_arguments(p)
    p.set_defaults(func=cmd_train_head)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    args = build_parser().parse_args(argv)
    try:
        apply_threads(getattr(args, "threads", None))
        return int(args.func(args) or 0)
    except user_errors() as err:
        print(f"error: {err}", file=sys.stderr)
        return USAGE_ERROR
    except UNFORESEEN as err:
        # Input the checks above did not foresee: still a message, never a traceback.
        print(f"error: {describe(err)}", file=sys.stderr)
        return USAGE_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
