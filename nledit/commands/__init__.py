"""The commands of the `nledit` command line, one module (or a few) per command.

Each command is a thin shell over the pipeline stages in ``nledit/`` (recipe, data, models,
collect, prepare, saliency, ranges, gate, evaluate, export, hub) and the Python API in
``nledit/api.py``; ``nledit/cli.py`` only parses arguments and reports errors.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable

# Command -> (its module here, its function). A module is imported only when its command runs,
# so `nledit --help` loads neither torch nor transformers.
RUNNERS = {
    "check": ("run", "cmd_check"),
    "run": ("run", "cmd_run"),
    "fit": ("run", "cmd_fit"),
    "export": ("run", "cmd_export"),
    "eval": ("eval", "cmd_eval"),
    "push": ("push", "cmd_push"),
    "inspect": ("inspection", "cmd_inspect"),
    "sweep": ("sweep", "cmd_sweep"),
    "tune": ("tune", "cmd_tune"),
    "generate": ("generate", "cmd_generate"),
    "verify": ("verify", "cmd_verify"),
    "train-head": ("finetune", "cmd_train_head"),
}


def runner(command: str) -> Callable[[argparse.Namespace], int]:
    """The function that runs ``command`` (a name of ``RUNNERS``) on the parsed arguments."""
    module, name = RUNNERS[command]
    function: Callable[[argparse.Namespace], int] = getattr(
        importlib.import_module(f"{__name__}.{module}"), name
    )
    return function
