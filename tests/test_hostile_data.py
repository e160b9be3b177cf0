"""Hostile data files: every problem is a message naming the file and the line (or row).

Data is read before any model is loaded, so these runs name a model that does not exist: a bad
file that slipped through would surface as a different message and fail the case.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import write_data
from hostile import refused, write_recipe

LINE3 = "data.jsonl, line 3"


def _jsonl_with(folder: Path, line: int, content: bytes) -> Path:
    """The tiny data set with line ``line`` replaced by ``content``."""
    path = write_data(folder / "data.jsonl")
    lines = path.read_bytes().splitlines()
    lines[line - 1] = content
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def _row(text: object = "match goal coach", label: object = 1) -> bytes:
    return json.dumps({"text": text, "label": label}).encode()


# (id, line 3 of data.jsonl, fragments)
JSONL_LINES: list[tuple[str, bytes, list[str]]] = [
    ("array_line", b"[1, 2]", [LINE3, "expected a JSON object", "JSON array"]),
    ("number_line", b"42", [LINE3, "got a number"]),
    ("string_line", b'"match goal"', [LINE3, "got a string"]),
    ("null_line", b"null", [LINE3, "got null"]),
    ("true_line", b"true", [LINE3, "got a boolean"]),
    ("invalid_json", b'{"text": "a", "label": }', [LINE3, "invalid JSON"]),
    ("unclosed_object", b'{"text": "ab', [LINE3, "invalid JSON"]),
    ("single_quotes", b"{'text': 'a', 'label': 1}", [LINE3, "invalid JSON"]),
    ("latin1_text", b'{"text": "caf\xe9 goal", "label": 1}', [LINE3, "not UTF-8", "0xe9"]),
    ("nul_byte", b'{"text": "a\x00b", "label": 1}', [LINE3, "NUL byte", "binary"]),
    ("missing_text", b'{"label": 1}', [LINE3, "no 'text' field"]),
    ("missing_label", b'{"text": "match goal"}', [LINE3, "no 'label' field"]),
    ("label_fraction", _row(label=1.7), [LINE3, "label 1.7 is not a label id"]),
    ("label_true", _row(label=True), [LINE3, "label true is not a label id"]),
    ("label_null", _row(label=None), [LINE3, "label null"]),
    ("label_negative", _row(label=-1), [LINE3, "label -1 outside 0..3"]),
    ("label_too_big", _row(label=4), [LINE3, "label 4 outside 0..3"]),
    ("label_unknown_name", _row(label="Sprots"), [LINE3, "label 'Sprots' not in"]),
    ("label_list", _row(label=[1]), [LINE3, "is not a label id"]),
    ("label_object", _row(label={"id": 1}), [LINE3, "is not a label id"]),
    ("label_nan", b'{"text": "match goal", "label": NaN}', [LINE3, "label NaN"]),
    ("label_huge", b'{"text": "match goal", "label": 1e400}', [LINE3, "is not a label id"]),
    ("label_text_fraction", _row(label="1.5"), [LINE3, "label '1.5' not in"]),
    ("text_empty", _row(text=""), [LINE3, "empty or non-text 'text'"]),
    ("text_blank", _row(text="   "), [LINE3, "empty or non-text"]),
    ("text_number", _row(text=5), [LINE3, "empty or non-text"]),
    ("text_null", _row(text=None), [LINE3, "empty or non-text"]),
    ("text_list", _row(text=["match", "goal"]), [LINE3, "empty or non-text"]),
    ("key_twice", b'{"text": "a", "label": 1, "label": 2}', [LINE3, "'label' given twice"]),
    ("deep_nesting", b"[" * 100_000 + b"]" * 100_000, [LINE3, "nested too deeply"]),
]


@pytest.mark.parametrize(
    "content, fragments", [c[1:] for c in JSONL_LINES], ids=[c[0] for c in JSONL_LINES]
)
def test_bad_jsonl_line(tmp_path: Path, content: bytes, fragments: list[str], capsys) -> None:
    data = _jsonl_with(tmp_path, 3, content)
    recipe = write_recipe(tmp_path, tmp_path / "model", data, {})
    out = tmp_path / "out"
    refused(["run", str(recipe), "--out", str(out)], capsys, out, *fragments)


HEADER = b"text,label\n"
GOOD_CSV = b"match goal,1\nshares profit,2\n"
# (id, file name, content, fragments)
FILES: list[tuple[str, str, bytes, list[str]]] = [
    ("empty_jsonl", "data.jsonl", b"", ["data.source", "data.jsonl is empty"]),
    ("blank_jsonl", "data.jsonl", b"\n  \n\n", ["data.jsonl is empty"]),
    ("binary_jsonl", "data.jsonl", bytes(range(256)) * 4, ["data.jsonl, line 1", "NUL byte"]),
    ("utf16_jsonl", "data.jsonl", _row().decode().encode("utf-16"), ["line 1: NUL byte"]),
    ("cp1252_quotes", "data.jsonl", "“match”".encode("cp1252"), ["line 1: not UTF-8", "0x93"]),
    ("first_row_no_text", "data.jsonl", b'{"txt": "a", "label": 1}\n', ["column 'text' not in"]),
    ("empty_csv", "data.csv", b"", ["data.csv is empty"]),
    ("header_only_csv", "data.csv", HEADER, ["data.csv holds no rows"]),
    (
        "unterminated_quote",
        "data.csv",
        HEADER + b'"match goal,1\nshares profit,2\nchip data,3\n',
        ["data.csv, the row starting at line 2", "quote"],
    ),
    (
        "stray_quote",
        "data.csv",
        HEADER + GOOD_CSV + b'"chip data,3\nrobot "phone,3\n',
        ["data.csv, the row starting at line 4"],
    ),
    ("extra_field", "data.csv", HEADER + b"match,goal,1\n", ["row 1 (line 2): 3 field(s)"]),
    ("missing_field", "data.csv", HEADER + GOOD_CSV + b"chip\n", ["row 3 (line 4): 1 field"]),
    ("latin1_csv", "data.csv", HEADER + b"caf\xe9,1\n", ["data.csv, line 2", "not UTF-8"]),
    ("csv_no_label", "data.csv", b"text,topic\nmatch,1\n", ["column 'label' not in"]),
    ("csv_label_fraction", "data.csv", HEADER + b"match goal,1.7\n", ["row 1 (line 2)", "1.7"]),
    ("csv_label_empty", "data.csv", HEADER + b"match goal,\n", ["row 1 (line 2)", "label ''"]),
    ("json_scalar", "data.json", b"3", ["data.json: expected a list of objects, got a number"]),
    ("json_item", "data.json", b'[{"text": "a", "label": 1}, 5]', ["data.json, item 2"]),
    ("json_invalid", "data.json", b'[{"text": "a",\n', ["data.json, line 2: invalid JSON"]),
    ("json_empty_list", "data.json", b"[]", ["data.json holds no rows"]),
    ("json_null", "data.json", b"null", ["expected a list of objects, got null"]),
    ("json_deep", "data.json", b"[" * 100_000 + b"]" * 100_000, ["data.json: JSON nested too"]),
    (
        "csv_huge_field",
        "data.csv",
        HEADER + b"x" * 200_000 + b",1\n",
        ["data.csv, the row starting at line 2", "field larger than field limit"],
    ),
]


@pytest.mark.parametrize(
    "name, content, fragments", [c[1:] for c in FILES], ids=[c[0] for c in FILES]
)
def test_bad_data_file(
    tmp_path: Path, name: str, content: bytes, fragments: list[str], capsys
) -> None:
    write_data(tmp_path / "good.jsonl")  # labels.json beside the file
    data = tmp_path / name
    data.write_bytes(content)
    recipe = write_recipe(tmp_path, tmp_path / "model", data, {})
    out = tmp_path / "out"
    refused(["run", str(recipe), "--out", str(out)], capsys, out, *fragments)


# (id, labels.json content, fragments)
LABELS: list[tuple[str, bytes, list[str]]] = [
    ("invalid_json", b'["World", ', ["labels.json, line 1: invalid JSON"]),
    ("a_number", b"4", ["labels.json: expected a non-empty list"]),
    ("empty_list", b"[]", ["labels.json: expected a non-empty list"]),
    ("numbers", b"[1, 2, 3, 4]", ["label names must be text, got 1"]),
    ("blank_name", b'["World", " ", "Business", "Tech"]', ["label names must be text"]),
    ("duplicate", b'["World", "World", "Business", "Tech"]', ["'World' is listed twice"]),
    ("bad_keys", b'{"a": "World", "b": "Sports"}', ["keys must be the label ids 0..1"]),
    ("latin1", b'["Caf\xe9", "Sports", "Business", "Tech"]', ["labels.json, line 1", "UTF-8"]),
    ("binary", b"\x00\x01\x02", ["labels.json, line 1: NUL byte"]),
    ("key_twice", b'{"0": "World", "0": "Sports"}', ["key '0' given twice"]),
    ("deep_nesting", b"[" * 100_000 + b"]" * 100_000, ["nested too deeply"]),
    ("too_few", b'["World", "Sports"]', ["data.jsonl, line 61: label 2 outside 0..1"]),
    ("nested", b'[["World"], "Sports", "Business", "Tech"]', ["must be text, got ['World']"]),
]


@pytest.mark.parametrize("content, fragments", [c[1:] for c in LABELS], ids=[c[0] for c in LABELS])
def test_bad_labels_json(tmp_path: Path, content: bytes, fragments: list[str], capsys) -> None:
    data = write_data(tmp_path / "data.jsonl")
    (tmp_path / "labels.json").write_bytes(content)
    recipe = write_recipe(tmp_path, tmp_path / "model", data, {})
    out = tmp_path / "out"
    if "outside" not in fragments[0]:  # a problem of the file itself
        fragments = ["data.label_names", str(tmp_path / "labels.json"), *fragments]
    refused(["run", str(recipe), "--out", str(out)], capsys, out, *fragments)


BINARY = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256))
LATIN1 = b"the match and the goal\nle caf\xe9 du coin\n" * 3
TOKEN_PROMPT = [
    "template: '{text}'",
    "answer_prefix: ''",
    "shots: 0",
    "label_words: [' he', ' she']",
]
TOKENS = {
    "data": ["source: {t}", "token_classes: {he: he, she: she}"],
    "prompt": TOKEN_PROMPT,
    "edit": ["concepts: [he]"],
}
# (id, file content, recipe lines per section, fragments)
TEXTS: list[tuple[str, bytes, dict[str, list[str]], list[str]]] = [
    (
        "ppl_binary",
        BINARY,
        {"eval": ["perplexity_source: {t}", "perplexity_windows: 2"]},
        ["eval.perplexity_source", "text.raw, line 3: NUL byte"],
    ),
    (
        "ppl_latin1",
        LATIN1,
        {"eval": ["perplexity_source: {t}", "perplexity_windows: 2"]},
        ["eval.perplexity_source", "text.raw, line 2: not UTF-8"],
    ),
    (
        "mean_binary",
        BINARY,
        {"operator": ["name: mean", "mean_source: {t}"]},
        ["edits.0.operator.mean_source", "NUL byte"],
    ),
    (
        "mean_latin1",
        LATIN1,
        {"operator": ["name: mean", "mean_source: {t}"]},
        ["edits.0.operator.mean_source", "not UTF-8"],
    ),
    ("token_binary", BINARY, TOKENS, ["data.source", "text.raw, line 3: NUL byte"]),
    ("token_latin1", LATIN1, TOKENS, ["data.source", "not UTF-8"]),
    (
        "eval_source_latin1",
        b'{"text": "caf\xe9", "label": 1}\n',
        {"data": ["eval_source: {t}"]},
        ["data.eval_source", "text.raw"],
    ),
]


@pytest.mark.parametrize(
    "content, extra, fragments", [c[1:] for c in TEXTS], ids=[c[0] for c in TEXTS]
)
def test_bad_text_file(
    tmp_path: Path, content: bytes, extra: dict[str, list[str]], fragments: list[str], capsys
) -> None:
    data = write_data(tmp_path / "data.jsonl")
    text = tmp_path / "text.raw"
    text.write_bytes(content)
    if "eval_source" in str(extra):  # a data file needs a data suffix
        text = text.rename(tmp_path / "text.raw.jsonl")
    lines = {k: [x.replace("{t}", json.dumps(str(text))) for x in v] for k, v in extra.items()}
    recipe = write_recipe(tmp_path, tmp_path / "model", data, lines)
    out = tmp_path / "out"
    refused(["run", str(recipe), "--out", str(out)], capsys, out, *fragments)
    refused(["check", str(recipe)], capsys, None, *fragments)  # check finds it too


def test_check_names_a_concept_missing_from_labels_json(tmp_path: Path, capsys) -> None:
    data = write_data(tmp_path / "data.jsonl")
    recipe = write_recipe(tmp_path, tmp_path / "model", data, {"edit": ["concepts: [Sprots]"]})
    refused(["check", str(recipe)], capsys, None, "edits.0.concepts: 'Sprots' is not a label")


def test_json_lines_keep_unicode_line_separators(tmp_path: Path) -> None:
    """U+2028, U+0085 and form feeds are valid inside JSON strings; only "\\n" ends a row."""
    from nledit.data.files import read_rows

    path = tmp_path / "rows.jsonl"
    texts = ["a\u2028b", "c\x85d", "e\x0cf", "g\rh"]
    path.write_text(
        "".join(json.dumps({"text": t, "label": 0}, ensure_ascii=False) + "\r\n" for t in texts),
        encoding="utf-8",
    )
    rows = read_rows(path, "data.source", ValueError)
    assert [r["text"] for r in rows] == texts
