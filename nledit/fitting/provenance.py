"""Which model a fit or a saved edit was fitted on, recorded at fit time and checked at load.

A fit folder or a saved edit is a file a user may receive from anyone; what it says about its
model must not redirect nledit to another model (and, at export, another model's weights).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import NleditError
from ..models.loading import ModelSource, sha256_file


class ProvenanceError(NleditError, ValueError):
    """A fit or edit folder names a model other than the one it is used with."""


def model_fingerprint(source: ModelSource) -> dict[str, Any]:
    """What identifies ``source``'s model: where it is and, for local files, the sha256 of its
    config and weight files (a Hub model: its id and revision)."""
    doc: dict[str, Any] = {"origin": source.origin, "kind": source.kind}
    if source.kind == "hub":
        return {**doc, "revision": source.revision}
    folder = Path(source.location)
    names = sorted(
        p.name for p in folder.iterdir() if p.name == "config.json" or p.suffix == ".safetensors"
    )
    return {**doc, "gguf_sha256": source.gguf_sha256, "files": _hashes(folder, names)}


def _hashes(folder: Path, names: list[str]) -> dict[str, str]:
    return {name: sha256_file(folder / name) for name in names}


def check_fingerprint(recorded: Any, source: ModelSource, where: str) -> None:
    """Refuse unless ``recorded`` (from the file ``where``) is ``source``'s fingerprint."""
    if not isinstance(recorded, dict):
        raise ProvenanceError(
            f"{where}: does not record the model it was fitted on (written by an older nledit, "
            "or edited); fit again"
        )
    current = model_fingerprint(source)
    if recorded != current:
        differs = sorted(
            k for k in set(recorded) | set(current) if recorded.get(k) != current.get(k)
        )
        raise ProvenanceError(
            f"{where}: fitted on {recorded.get('origin')!r}, but the recipe loads "
            f"{source.origin!r} and they differ ({', '.join(differs)}); refusing to use this fit "
            "with another model"
        )


def same_model_id(a: str, b: str) -> bool:
    """Whether two model ids name the same model (local paths compared resolved)."""
    if a == b:
        return True
    pa, pb = Path(a).expanduser(), Path(b).expanduser()
    return pa.exists() and pb.exists() and pa.resolve() == pb.resolve()
