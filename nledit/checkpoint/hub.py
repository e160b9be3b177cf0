"""Publish an exported checkpoint to the Hugging Face Hub in one commit.

The token is never handled here: huggingface_hub reads it from ``HF_TOKEN`` or the cached login
for each request, so it cannot end up in a file, a log line or the returned result.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from huggingface_hub import CommitOperationAdd, HfApi, ModelCard, get_token
from huggingface_hub.errors import HfHubHTTPError, HFValidationError, OfflineModeIsEnabled
from huggingface_hub.utils import validate_repo_id

from ..errors import NleditError
from ..version import __version__
from .integrity import MANIFEST_FILE, IntegrityError
from .integrity import check_export as check_nledit_export

try:  # the HTTP library under huggingface_hub: httpx2 from 2.x, httpx in 1.x
    from httpx2 import HTTPError as _TransportError
except ImportError:  # pragma: no cover
    from httpx import HTTPError as _TransportError

REQUIRED_FILES = ("config.json", "modeling_nledit.py", "nledit_ranges.safetensors", "README.md")
DEFAULT_MESSAGE = "Upload nledit checkpoint"
_STATUS_HINTS = {
    401: "the token was rejected; set HF_TOKEN or run `hf auth login`",
    403: "the token has no write access to this namespace or repository",
    404: "the repository or revision does not exist or is not visible with this token",
    409: "conflict with the current state of the repository",
    429: "rate limited by the Hub; try again later",
}


class NleditHubError(NleditError):
    """A push that cannot go ahead; the message says why, no traceback needed."""


@dataclass(frozen=True)
class FileEntry:
    path: str  # relative, POSIX
    size: int
    sha256: str


@dataclass(frozen=True)
class PushResult:
    repo_id: str
    revision: str | None
    files: list[FileEntry]
    dry_run: bool
    commit_url: str | None = None
    commit_oid: str | None = None

    def summary(self) -> str:
        """Human-readable listing for the CLI."""
        total = sum(f.size for f in self.files)
        where = self.repo_id + (f"@{self.revision}" if self.revision else "")
        verb = "would upload" if self.dry_run else "uploaded"
        lines = [f"{verb} {len(self.files)} files ({_human(total)}) to {where}"]
        lines += [f"  {f.sha256}  {_human(f.size):>9}  {f.path}" for f in self.files]
        if self.commit_url:
            lines.append(f"commit {self.commit_oid}: {self.commit_url}")
        return "\n".join(lines)


def check_export(out_dir: Path) -> list[Path]:
    """The files to upload: an export that passes every check ``nledit verify`` makes, the
    reference logits included (``integrity.check_export``), listed by its manifest.

    Nothing outside the manifest leaves the machine: no symlinks (never followed), no unlisted
    files, no file of a kind nledit does not write.
    """
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        raise NleditHubError(f"{out_dir} is not a directory")
    for name in REQUIRED_FILES:
        if not (out_dir / name).is_file():
            raise NleditHubError(f"{out_dir} is not an nledit export: {name} is missing")
    unresolvable = local_base(out_dir)
    if unresolvable:
        raise NleditHubError(
            f"{out_dir} is a weight-free checkpoint whose base weights cannot be fetched from "
            f"the Hub ({unresolvable}); nobody who downloads it could load it. Export it with "
            "its weights (output.weights: copy, or --weights copy) to publish it"
        )
    try:
        manifest = check_nledit_export(out_dir, "push it", logits=True).manifest
    except IntegrityError as err:
        raise NleditHubError(str(err)) from None
    try:
        ModelCard.load(out_dir / "README.md")
    except (ValueError, TypeError) as e:
        raise NleditHubError(f"{out_dir / 'README.md'} has invalid metadata: {e}") from None
    return [out_dir / name for name in sorted([*manifest["files"], MANIFEST_FILE])]


def local_base(out_dir: Path) -> str | None:
    """Why a weight-free export's base weights cannot be resolved from the Hub (None when it
    carries its weights, or records a Hub repository and commit for them)."""
    try:
        config = json.loads((Path(out_dir) / "config.json").read_text(encoding="utf-8"))
        ref = config["nledit"].get("base_weights")
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None  # not an export: integrity's checks say so
    if not isinstance(ref, dict):
        return None
    if isinstance(ref.get("repo_id"), str) and isinstance(ref.get("revision"), str):
        return None
    return str(ref.get("local") or "no Hub repository and commit are recorded")


def push(
    out_dir: Path,
    repo_id: str,
    *,
    private: bool = False,
    revision: str | None = None,
    dry_run: bool = False,
    commit_message: str | None = None,
    endpoint: str | None = None,
) -> PushResult:
    """Upload the export in ``out_dir`` to ``repo_id`` (created if missing) in one commit."""
    out_dir = Path(out_dir)
    paths = check_export(out_dir)
    try:
        validate_repo_id(repo_id)
    except HFValidationError as e:
        raise NleditHubError(f"invalid repository id {repo_id!r}: {e}") from None
    ops = [
        CommitOperationAdd(path_in_repo=p.relative_to(out_dir).as_posix(), path_or_fileobj=p)
        for p in paths
    ]
    files = [
        FileEntry(op.path_in_repo, op.upload_info.size, op.upload_info.sha256.hex()) for op in ops
    ]
    if dry_run:
        return PushResult(repo_id, revision, files, dry_run=True)

    if get_token() is None:
        raise NleditHubError("not logged in to the Hub: set HF_TOKEN or run `hf auth login`")
    api = HfApi(endpoint=endpoint, library_name="nledit", library_version=__version__)
    try:
        repo_id = api.create_repo(repo_id, private=private, exist_ok=True).repo_id
        if revision is not None:
            api.create_branch(repo_id, branch=revision, exist_ok=True)
        info = api.create_commit(
            repo_id,
            ops,
            commit_message=commit_message or DEFAULT_MESSAGE,
            revision=revision,
        )
    except HfHubHTTPError as e:
        raise NleditHubError(_http_message(e, repo_id)) from None
    except OfflineModeIsEnabled:
        raise NleditHubError("HF_HUB_OFFLINE is set; unset it to push") from None
    except _TransportError as e:
        raise NleditHubError(f"cannot reach the Hub: {_scrub(str(e))}") from None
    except (HFValidationError, ValueError) as e:
        raise NleditHubError(f"the Hub refused the upload: {_scrub(str(e))}") from None
    return PushResult(
        repo_id,
        revision,
        files,
        dry_run=False,
        commit_url=info.commit_url,
        commit_oid=info.oid,
    )


def _http_message(e: HfHubHTTPError, repo_id: str) -> str:
    status = e.response.status_code if e.response is not None else None
    hint = _STATUS_HINTS.get(status or 0, "request failed")
    msg = f"Hub error for {repo_id} (HTTP {status}): {hint}"
    if e.server_message:
        msg += f"\n  server: {e.server_message.strip()}"
    return _scrub(msg)


def _scrub(text: str) -> str:
    # Belt and braces: a server echoing the token back must not put it in our message.
    token = get_token()
    return text.replace(token, "***") if token else text


def _human(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"  # pragma: no cover
