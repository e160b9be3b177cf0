"""The `nledit` command line."""

from __future__ import annotations

import argparse
import os
import sys
import textwrap

from .cli_errors import UNFORESEEN, USAGE_ERROR, describe, from_checkpoint_runtime, user_errors
from .cli_help import EXAMPLES
from .commands import runner
from .models.threads import apply_threads, threads_option


def batch_size(value: str) -> int | str:
    """``--batch-size``: a whole number, or ``auto`` (the recipe checks the range)."""
    return value if value == "auto" else int(value)


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


def _generate_options(p: argparse.ArgumentParser) -> None:
    """The options of `nledit generate`."""
    p.add_argument("out", help="exported checkpoint directory")
    p.add_argument("--prompt", action="append", default=[], help="a prompt (repeatable)")
    p.add_argument("--prompts-file", help="a text file, one prompt per line")
    p.add_argument("--max-new-tokens", type=int, default=40)
    p.add_argument("--sample", action="store_true", help="sample instead of greedy decoding")
    p.add_argument("--temperature", type=float, default=1.0, help="with --sample")
    p.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling, with --sample")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (the same for both sides)")
    p.add_argument("--chat", action="store_true", help="wrap prompts in the chat template")
    p.add_argument("--json", dest="json_out", help="also write the comparison as JSON here")
    p.add_argument("--device", default="cpu")


def _train_head_options(p: argparse.ArgumentParser) -> None:
    """The options of `nledit train-head`."""
    p.add_argument("recipe", nargs="?", help="recipe YAML with a train_head section (optional)")
    p.add_argument("--base", help="model to fine-tune: Hub id, local folder or pypi:<package>")
    p.add_argument(
        "--mode",
        choices=["head", "answer"],
        help="head: encoder + classification head; answer: causal LM answers the recipe's "
        "prompt with the label word (needs a recipe)",
    )
    p.add_argument("--train-layers", type=int, help="mode answer: top decoder layers trained")
    p.add_argument("--data", help="labelled training data (jsonl/json/csv or Hub id)")
    p.add_argument("--eval-data", help="held-out data (default: split off --data)")
    p.add_argument("--train-examples", type=int, help="training examples (balanced)")
    p.add_argument("--eval-examples", type=int, help="held-out examples")
    p.add_argument("--epochs", type=int)
    p.add_argument("--lr", type=float, help="AdamW learning rate")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--max-length", type=int, help="tokens per example")
    p.add_argument("--seed", type=int)
    p.add_argument(
        "--out",
        help="checkpoint folder (default: the recipe's model.id; with model.id "
        "nledit:train_head, nledit's cache)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing folder")
    p.add_argument(
        "--set", action="append", metavar="KEY=VALUE", help="override a recipe field (repeatable)"
    )


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
    p.add_argument("--batch-size", type=batch_size, help="batch_size: rows per batch, or auto")
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

    p = add("run", "fit, evaluate and export in one go")
    _common(p)
    p.add_argument("--out", help="checkpoint directory (output.dir)")
    p.add_argument(
        "--strict",
        action="store_true",
        help="exit with code 3 when the base model cannot do the task or the target "
        "(outputs are still written)",
    )
    p.add_argument(
        "--seeds",
        type=int,
        help="eval.seeds: repeat data draw, fit and evaluation under N seeds (seed, seed + 1, "
        "...) and report mean ± sd across them",
    )
    _export_options(p)

    p = add("fit", "one streaming pass: statistics, ranges and gates, into a fit directory")
    _common(p)
    p.add_argument("--out", help="fit directory (default: <output.dir>-fit)")

    p = add("export", "evaluate a fit directory and export the patched checkpoint")
    p.add_argument("fit_dir", help="directory written by `nledit fit`")
    _common(p, recipe=False)
    p.add_argument("--out", help="checkpoint directory (output.dir)")
    p.add_argument("--no-eval", action="store_true", help="skip the erasure table (eval.enabled)")
    _export_options(p)

    p = add("eval", "run lm-evaluation-harness on an exported checkpoint and its base")
    p.add_argument("out", help="exported checkpoint directory")
    p.add_argument(
        "--tasks",
        default="mmlu,wikitext",
        help="comma-separated: mmlu, wikitext (offline), any registered lm-eval task, or tasks "
        "of an --include-path",
    )
    p.add_argument("--data-dir", help="local data folder with mmlu/ and wikitext2/ (offline)")
    p.add_argument("--hub", action="store_true", help="use the stock Hub tasks instead")
    p.add_argument("--limit", type=float, help="examples per task (or fraction)")
    p.add_argument("--num-fewshot", type=int, help="few-shot examples (MMLU: 0 as in the paper)")
    p.add_argument("--batch-size", default="1", help="lm-eval batch size")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32")
    p.add_argument("--no-base", action="store_true", help="skip evaluating the base model")
    p.add_argument(
        "--include-path",
        action="append",
        metavar="DIR",
        help="a folder of lm-eval task YAML files (repeatable); --tasks may name its tasks",
    )

    p = add("push", "publish an exported checkpoint to the Hugging Face Hub")
    p.add_argument("out", help="exported checkpoint directory")
    p.add_argument("--repo", required=True, help="user/name")
    p.add_argument("--private", action="store_true")
    p.add_argument("--revision", help="branch to push to (created if missing)")
    p.add_argument("--dry-run", action="store_true", help="list what would be uploaded")

    p = add("inspect", "distribution statistics, plots and an HTML report for a recipe's layer")
    _common(p)
    p.add_argument("--report", help="report directory (default runs/inspect)")
    p.add_argument("--all-layers", action="store_true", help="Table 9: statistics of every layer")

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

    p = add("generate", "base and edited continuations of prompts, side by side")
    _generate_options(p)

    p = add("verify", "check an exported checkpoint's files and reproduce its reference logits")
    p.add_argument("out", help="exported checkpoint directory")
    p.add_argument("--device", default="cpu")

    p = add(
        "train-head",
        "fine-tune a classifier and save it: a head on a plain encoder, or a causal LM that "
        "answers with the label word",
    )
    _train_head_options(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    args = build_parser().parse_args(argv)
    try:
        apply_threads(getattr(args, "threads", None), "--threads")
        return int(runner(args.command)(args) or 0)
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
    except RuntimeError as err:
        if not from_checkpoint_runtime(err):
            raise
        print(f"error: {err}", file=sys.stderr)
        return USAGE_ERROR


if __name__ == "__main__":
    sys.exit(main())
