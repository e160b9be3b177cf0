"""Scratch folders nledit creates, and proof that it created them.

A temporary, backup or scratch folder gets an unguessable name (``tempfile.mkdtemp``) and an
owner marker file holding a random token, the owning process, what the folder is for and, for
folders beside an output, which output. The token is also recorded under nledit's cache
(``<cache>/owned/<token>``, naming the folder). Cleanup acts only on a folder whose marker
parses, whose token is recorded for that very folder and whose process is gone; it never goes by
name, so a folder nledit did not create is never removed or moved, whatever it is called.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

OWNER_FILE = ".nledit-owner.json"
_TOKEN = re.compile(r"[0-9a-f]{32}")


def cache_dir() -> Path:
    """nledit's cache folder (``NLEDIT_CACHE``, default ``~/.cache/nledit``)."""
    return Path(os.environ.get("NLEDIT_CACHE", Path.home() / ".cache" / "nledit"))


def registry() -> Path:
    """Where the tokens of the folders nledit created are recorded."""
    return cache_dir() / "owned"


@dataclass(frozen=True)
class Owned:
    """A folder nledit created: its marker's contents."""

    folder: Path
    token: str
    pid: int
    purpose: str
    target: str

    def alive(self) -> bool:
        """Whether the process that created the folder is still running."""
        if self.pid == os.getpid():
            return True
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except (PermissionError, OverflowError):  # another user's process; a bad pid
            return self.pid > 0
        return True


def make_owned(parent: Path, prefix: str, purpose: str, target: str = "") -> Path:
    """A new empty folder in ``parent`` with an unguessable name and nledit's owner marker."""
    parent.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    token = secrets.token_hex(16)
    reg = registry()
    reg.mkdir(parents=True, exist_ok=True)
    (reg / token).write_text(str(folder.resolve()), encoding="utf-8")
    doc = {"token": token, "pid": os.getpid(), "purpose": purpose, "target": target}
    (folder / OWNER_FILE).write_text(json.dumps(doc), encoding="utf-8")
    return folder


def owner_of(folder: Path) -> Owned | None:
    """The marker of ``folder`` if nledit created it (token recorded for it), else None."""
    marker = folder / OWNER_FILE
    if folder.is_symlink() or not folder.is_dir() or marker.is_symlink() or not marker.is_file():
        return None
    try:
        doc = json.loads(marker.read_text(encoding="utf-8"))
        token, pid = doc["token"], doc["pid"]
        purpose, target = doc["purpose"], doc["target"]
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError):
        return None
    if not (isinstance(token, str) and _TOKEN.fullmatch(token)) or type(pid) is not int:
        return None
    if not isinstance(purpose, str) or not isinstance(target, str):
        return None
    record = registry() / token
    try:
        recorded = record.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    if record.is_symlink() or recorded != str(folder.resolve()):
        return None
    return Owned(folder, token, pid, purpose, target)


def remove_owned(folder: Path) -> bool:
    """Delete ``folder`` if nledit created it; returns whether it did."""
    owned = owner_of(folder)
    if owned is None:
        return False
    shutil.rmtree(folder, ignore_errors=True)
    if not folder.exists():
        (registry() / owned.token).unlink(missing_ok=True)
    return True


def stale(parent: Path, purposes: tuple[str, ...], target: str = "") -> list[Owned]:
    """Folders in ``parent`` nledit created for one of ``purposes`` (and ``target``) whose
    process is gone: the leftovers of a killed run."""
    found = []
    try:
        entries = sorted(parent.iterdir())
    except OSError:
        return found
    for p in entries:
        if not (p / OWNER_FILE).is_file():  # cheap test first; owner_of decides
            continue
        owned = owner_of(p)
        if owned and owned.purpose in purposes and owned.target == target and not owned.alive():
            found.append(owned)
    return found
