"""`nledit push`: publish an exported checkpoint to the Hugging Face Hub
(``nledit.checkpoint.hub``)."""

from __future__ import annotations

import argparse
from pathlib import Path


def cmd_push(args: argparse.Namespace) -> int:
    """Upload the checkpoint ``args.out`` to ``args.repo`` (or list the files: ``--dry-run``)."""
    from ..checkpoint import push
    from ..recipe.flags import checked_flags

    args = argparse.Namespace(**checked_flags("push", args).model_dump())
    result = push(
        Path(args.out),
        args.repo,
        private=args.private,
        revision=args.revision,
        dry_run=args.dry_run,
    )
    print(result.summary())
    return 0
