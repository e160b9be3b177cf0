"""Where a local base folder came from on the Hub: the repository id and commit a weight-free
checkpoint records, so that it loads on any machine that reaches the Hub or holds its cache.

Two layouts record it, and only for weights that are the bytes the Hub published:

- a snapshot of the Hub cache, ``…/models--<owner>--<name>/snapshots/<commit>/`` (what
  ``snapshot_download`` and ``from_pretrained`` leave): the id and the commit are in the path,
  and each weight file links to a blob named by its sha256;
- a ``hf download --local-dir`` folder: ``.cache/huggingface/download/<file>.metadata`` holds the
  commit and the Hub's etag of each file, which for the LFS-stored weights is their sha256; the
  id is the base's Hub id as the card names it (``model.base_model``, or what ``basemodel``
  reads), since that layout does not record it.

Any other folder (a GGUF conversion, a model saved by hand) has no Hub origin.
"""

from __future__ import annotations

import re
from pathlib import Path

from .base_id import as_hub_id

_COMMIT = re.compile(r"[0-9a-f]{40}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
METADATA_DIR = Path(".cache") / "huggingface" / "download"


def from_snapshot(folder: Path, files: dict[str, str]) -> tuple[str, str] | None:
    """(repo id, commit) of a Hub cache snapshot folder whose weight files are the blobs the
    Hub named by their sha256 (``files``: name -> sha256); None for any other folder."""
    snap = Path(folder).absolute()
    repo_dir = snap.parent.parent.name
    if snap.parent.name != "snapshots" or not _COMMIT.fullmatch(snap.name):
        return None
    if not repo_dir.startswith("models--"):
        return None
    repo = as_hub_id(repo_dir[len("models--") :].replace("--", "/"))
    if repo is None:
        return None
    for name, digest in files.items():
        path = snap / name
        if path.is_symlink():  # a blob of the cache: named by the Hub's sha256 of the file
            blob = Path(path.resolve()).name
            if _SHA256.fullmatch(blob) and blob != digest:
                return None  # the file was changed after the download
    return repo, snap.name


def from_local_dir(
    folder: Path, files: dict[str, str], hub_id: str | None
) -> tuple[str, str] | None:
    """(``hub_id``, commit) of a ``--local-dir`` download whose every weight file's recorded
    etag is its sha256, all from one commit; None otherwise."""
    repo = as_hub_id(hub_id)
    if repo is None:
        return None
    commits = set()
    for name in files:
        meta = Path(folder) / METADATA_DIR / f"{name}.metadata"
        try:
            lines = meta.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError):
            return None
        if len(lines) < 2 or not _COMMIT.fullmatch(lines[0].strip()):
            return None
        if lines[1].strip().strip('"') != files[name]:  # not (or no longer) the Hub's bytes
            return None
        commits.add(lines[0].strip())
    return (repo, commits.pop()) if len(commits) == 1 else None


def hub_origin(folder: Path, files: dict[str, str], hub_id: str | None) -> tuple[str, str] | None:
    """(repo id, commit) the weights ``files`` (name -> sha256) in ``folder`` were downloaded
    from, when the folder's layout records it (see the module's docstring)."""
    return from_snapshot(folder, files) or from_local_dir(folder, files, hub_id)
