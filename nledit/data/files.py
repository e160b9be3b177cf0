"""Local data files read strictly: every problem names the file and the line (or row).

Text must be UTF-8 without NUL bytes; JSON lines must each be one object; a CSV must have a header
and the same number of fields on every row, and a quote left open is an error rather than rows
silently merged into one field.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

WHERE = "__where__"  # key added to each local row: "line 3" / "row 2 (line 3)" / "item 4"


def not_a_file(path: Path | str) -> str:
    """Why ``path`` cannot be read as a file: missing, a folder, or not a regular file."""
    path = Path(path)
    if path.is_dir():
        return f"{path} is a folder, not a file"
    if path.exists():
        return f"{path} is not a regular file (a pipe, socket or device)"
    return f"no such file: {path}"


def read_text(path: Path, field: str, error: type[Exception]) -> str:
    """The UTF-8 text of ``path``; a binary or non-UTF-8 file raises ``error`` naming the line."""
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise error(f"{field}: cannot read {path} ({err.strerror or err})") from None
    nul = raw.find(b"\0")
    if nul >= 0:
        line = raw.count(b"\n", 0, nul) + 1
        raise error(f"{field}: {path}, line {line}: NUL byte; this is a binary file, not text")
    try:
        return raw.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        raise error(
            f"{field}: {path}, line {line}: not UTF-8 text (byte 0x{raw[err.start]:02x}); "
            "save the file as UTF-8"
        ) from None


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"key {k!r} given twice in one object (JSON would keep the last)")
        out[k] = v
    return out


def loads(text: str) -> Any:
    """``json.loads`` that refuses an object with a key given twice or nesting without end
    (a ``ValueError``)."""
    try:
        return json.loads(text, object_pairs_hook=_unique)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def read_rows(path: Path, field: str, error: type[Exception]) -> list[dict[str, Any]]:
    """The records of a local .jsonl, .json or .csv file, each tagged with where it was read."""
    text = read_text(path, field, error)
    if not text.strip():
        raise error(f"{field}: {path} is empty (expected labelled rows)")
    if path.suffix == ".csv":
        rows = _csv_rows(text, path, field, error)
    elif path.suffix == ".jsonl":
        rows = _json_lines(text, path, field, error)
    else:
        rows = _json_document(text, path, field, error)
    if not rows:
        raise error(f"{field}: {path} holds no rows")
    return rows


def _json_lines(text: str, path: Path, field: str, error: type[Exception]) -> list[dict]:
    rows = []
    # JSON Lines are separated by "\n" only: str.splitlines would also cut at U+2028, U+0085
    # and other characters that JSON strings may hold unescaped.
    for n, line in enumerate(text.split("\n"), 1):
        line = line.removesuffix("\r")
        if not line.strip():
            continue
        try:
            row = loads(line)
        except json.JSONDecodeError as err:
            raise error(
                f"{field}: {path}, line {n}: invalid JSON ({err.msg}, column {err.colno})"
            ) from None
        except ValueError as err:  # a key given twice
            raise error(f"{field}: {path}, line {n}: {err}") from None
        rows.append(_record(row, f"line {n}", path, field, error))
    return rows


def _json_document(text: str, path: Path, field: str, error: type[Exception]) -> list[dict]:
    try:
        doc = loads(text)
    except json.JSONDecodeError as err:
        if err.msg == "Extra data":  # several documents: JSON lines in a .json file
            return _json_lines(text, path, field, error)
        raise error(
            f"{field}: {path}, line {err.lineno}: invalid JSON ({err.msg}, column {err.colno})"
        ) from None
    except ValueError as err:
        raise error(f"{field}: {path}: {err}") from None
    if isinstance(doc, dict):
        return [_record(doc, "line 1", path, field, error)]
    if not isinstance(doc, list):
        raise error(f"{field}: {path}: expected a list of objects, got {_kind(doc)}")
    return [_record(item, f"item {i}", path, field, error) for i, item in enumerate(doc, 1)]


def _record(row: Any, where: str, path: Path, field: str, error: type[Exception]) -> dict:
    if not isinstance(row, dict):
        raise error(
            f"{field}: {path}, {where}: expected a JSON object such as "
            f'{{"text": ..., "label": ...}}, got {_kind(row)}'
        )
    return {**row, WHERE: where}


def _csv_rows(text: str, path: Path, field: str, error: type[Exception]) -> list[dict]:
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    rows: list[dict] = []
    header: list[str] | None = None
    n = 0
    while True:
        start = reader.line_num + 1
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error as err:
            raise error(
                f"{field}: {path}, the row starting at line {start}: {err} "
                "(a quote left open joins the rows after it)"
            ) from None
        if not record:
            continue
        if header is None:
            twice = sorted({c for c in record if record.count(c) > 1})
            if twice:  # a dict of the row would keep the last column of that name
                raise error(
                    f"{field}: {path}, line {start}: column {twice[0]!r} is named twice in the "
                    "header"
                )
            header = record
            continue
        n += 1
        if len(record) != len(header):
            raise error(
                f"{field}: {path}, row {n} (line {start}): {len(record)} field(s), "
                f"the header has {len(header)}"
            )
        rows.append({**dict(zip(header, record)), WHERE: f"row {n} (line {start})"})
    return rows


def _kind(value: Any) -> str:
    kinds = {bool: "a boolean", int: "a number", float: "a number", str: "a string"}
    kinds |= {list: "a list (JSON array)", dict: "an object", type(None): "null"}
    return kinds.get(type(value), type(value).__name__)


def where(row: dict[str, Any], n: int) -> str:
    """Where a row was read (``line 3``), or its position for rows from the Hub."""
    return str(row.get(WHERE, f"row {n}"))
