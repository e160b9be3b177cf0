"""A GGUF file's header, read once per file version.

Parsing a GGUF header walks every metadata field, the tokenizer's vocabulary included: seconds
for a small model. The plan, the model card and the loader each need a few of its values, so the
header is read once per process and file version (path, size, modification time, inode) and
reused while the file is unchanged. Errors are never cached."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_CACHE: dict[tuple[str, int, int, int], GgufHeader] = {}
_KEEP = 8  # header versions kept per process


@dataclass(frozen=True)
class GgufHeader:
    """The scalar metadata of a GGUF file and its parameter count."""

    strings: dict[str, str]
    numbers: dict[str, int | float]
    n_params: int


def _scalar(field: Any) -> Any:
    try:
        value = field.contents()
    except Exception:  # a field the reader cannot decode: not a value nledit reads
        return None
    return value if isinstance(value, (str, int, float)) and not isinstance(value, bool) else None


def read_header(path: Path) -> GgufHeader:
    """The header of the GGUF file at ``path``; raises what the ``gguf`` reader raises."""
    st = os.stat(path)
    key = (str(Path(path).resolve()), st.st_size, st.st_mtime_ns, st.st_ino)
    if (found := _CACHE.get(key)) is not None:
        return found
    from gguf import GGUFReader

    reader = GGUFReader(str(path))
    strings: dict[str, str] = {}
    numbers: dict[str, int | float] = {}
    for name, field in reader.fields.items():
        if len(field.types) != 1:  # arrays (the vocabulary, merges): never read here
            continue
        value = _scalar(field)
        if isinstance(value, str):
            strings[name] = value
        elif value is not None:
            numbers[name] = value
    header = GgufHeader(strings, numbers, sum(int(t.n_elements) for t in reader.tensors))
    if len(_CACHE) >= _KEEP:
        _CACHE.pop(next(iter(_CACHE)))
    _CACHE[key] = header
    return header
