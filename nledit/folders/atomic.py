"""Output folders written atomically, replacing only what nledit itself wrote.

Every command that writes a folder (export, fit directory, inspect report, trained head) builds
it in a hidden sibling folder nledit owns (``owned``: unguessable name, owner marker) and renames
it into place at the end, so an
interrupted run never leaves a half-written folder at the destination. ``--overwrite`` replaces
an existing folder only when it carries the marker file of that kind of output (an export's
manifest, a fit directory's ``nledit_fit.json``, ...) and, where the marker lists the folder's
files, holds nothing else: a user's own folder is never deleted.

A run killed with SIGKILL cannot clean up after itself; the next run into the same destination
removes the folders a dead nledit process created for it and says so (and restores a previous
output that the kill left aside). A folder without nledit's owner marker is never touched,
whatever its name.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from ..errors import OutputError
from .owned import make_owned, remove_owned, stale
from .preflight import output_problem

_FICLONE = 0x40049409  # ioctl: share the blocks of a file copy-on-write (btrfs, xfs)


def check_writable(out: Path, field: str) -> None:
    """Refuse a destination that cannot be created (before any model work starts)."""
    problem = output_problem(field, str(out))
    if problem:
        raise OutputError(problem)


def _owned(out: Path, markers: Sequence[str]) -> str | None:
    """Why ``out`` is not a replaceable nledit output (None when it is)."""
    for name in markers:
        if not (out / name).is_file() or (out / name).is_symlink():
            return f"it is not an nledit output ({name} is missing)"
    try:
        doc = json.loads((out / markers[0]).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return f"its {markers[0]} is not valid JSON"
    listed = doc.get("files") if isinstance(doc, dict) else None
    if not isinstance(listed, dict):
        return None
    foreign = []
    for p in sorted(out.rglob("*")):
        rel = p.relative_to(out).as_posix()
        odd = p.is_symlink() or not (p.is_dir() or p.is_file())
        if odd or (p.is_file() and rel not in listed and rel not in markers):
            foreign.append(rel)
        elif p.is_dir() and not any(f.startswith(rel + "/") for f in listed):
            foreign.append(rel + "/")
    if foreign:
        shown = ", ".join(foreign[:5]) + (" …" if len(foreign) > 5 else "")
        return f"it holds files nledit did not write: {shown}"
    return None


def check_destination(
    out: Path, overwrite: bool, markers: Sequence[str], field: str = "output.dir"
) -> None:
    """Refuse an existing destination unless ``overwrite`` and it is nledit's own output."""
    if out.is_symlink():
        raise OutputError(f"{field}: {out} is a symbolic link; give the real folder")
    if not out.exists():
        check_writable(out, field)
        return
    if not overwrite:
        raise OutputError(f"{field}: {out} already exists (pass --overwrite to replace it)")
    if not out.is_dir():
        raise OutputError(f"{field}: {out} exists and is not a folder; not replacing it")
    real, cwd = out.resolve(), Path.cwd().resolve()
    if real == cwd or real in cwd.parents:
        raise OutputError(f"{field}: {out} is the current folder or holds it; not replacing it")
    if os.path.ismount(real):
        raise OutputError(f"{field}: {out} is a mount point; not replacing it")
    why = _owned(out, markers)
    if why:
        raise OutputError(f"{field}: not replacing {out}: {why}")
    check_writable(out, field)


def _target(out: Path) -> str:
    """The absolute path of ``out`` as owner markers record it (its parent resolved)."""
    return str(out.parent.resolve() / out.name)


def workspace(out: Path, kind: str = "tmp") -> Path:
    """A new hidden folder beside ``out`` that nledit owns (``owned.make_owned``): ``tmp``
    for an output being written, ``old`` for the output it replaces."""
    return make_owned(out.parent, f".{out.name}.{kind}-", kind, _target(out))


def clean_stale_temp(purpose: str) -> list[str]:
    """Remove the system temp folders nledit created for ``purpose`` whose process is gone."""
    gone = [str(o.folder) for o in stale(Path(tempfile.gettempdir()), (purpose,))]
    for path in gone:
        remove_owned(Path(path))
        print(f"note: removed {path} left by an interrupted run", file=sys.stderr)
    return gone


@contextlib.contextmanager
def scratch_dir(purpose: str) -> Iterator[Path]:
    """A folder nledit owns in the system temp folder, removed on exit (or, after a kill, by
    the next run for the same ``purpose``)."""
    clean_stale_temp(purpose)
    work = make_owned(Path(tempfile.gettempdir()), f"nledit-{purpose}-", purpose)
    try:
        yield work
    finally:
        remove_owned(work)


def clean_leftovers(out: Path) -> list[str]:
    """Remove what dead runs left beside ``out``; restore an output a kill left aside.

    Only folders nledit created for ``out`` (``owned.owner_of``) are touched, never by name.
    """
    notes: list[str] = []
    if not out.parent.is_dir():
        return notes
    for kind in ("old", "tmp"):  # restore first, so a leftover tmp never shadows it
        for owned in stale(out.parent, (kind,), _target(out)):
            kept = owned.folder / out.name
            if kind == "old" and kept.is_dir() and not kept.is_symlink() and not out.exists():
                os.replace(kept, out)
                notes.append(f"restored {out} from an interrupted run")
            if remove_owned(owned.folder):
                notes.append(f"removed {owned.folder} left by an interrupted run")
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    return notes


def shareable(folder: Path) -> None:
    """Files and folders as the umask allows (safetensors and mkdtemp make them owner-only)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(folder, 0o777 & ~umask)
    for p in folder.rglob("*"):
        if p.is_symlink():
            continue
        os.chmod(p, (0o777 if p.is_dir() else 0o666) & ~umask)


def copy_file(src: Path, dst: Path) -> None:
    """An independent copy of ``src`` (copy-on-write where the file system can): never a link."""
    with src.open("rb") as fin, dst.open("wb") as fout:
        try:
            import fcntl

            fcntl.ioctl(fout.fileno(), _FICLONE, fin.fileno())
            return
        except (ImportError, OSError):
            pass
    shutil.copyfile(src, dst)


@contextlib.contextmanager
def atomic_dir(
    out: Path, overwrite: bool, markers: Sequence[str], field: str = "output.dir"
) -> Iterator[Path]:
    """A hidden sibling of ``out`` that replaces ``out`` only if the block succeeds."""
    clean_leftovers(out)
    check_destination(out, overwrite, markers, field)
    work = workspace(out, "tmp")
    tmp = work / out.name
    tmp.mkdir()
    try:
        yield tmp
        shareable(tmp)
        if out.exists():
            check_destination(out, overwrite, markers, field)  # still ours after the work?
            trash = workspace(out, "old")
            os.replace(out, trash / out.name)
            try:
                os.replace(tmp, out)
            except BaseException:
                os.replace(trash / out.name, out)
                remove_owned(trash)
                raise
            remove_owned(trash)
        else:
            os.replace(tmp, out)
    finally:
        remove_owned(work)
