"""docs/api.md runs: its python code blocks, in order, on a tiny random model.

The walk-through reads the model from ``NLEDIT_DOCS_MODEL``; here it points at the tiny Llama
of ``conftest.py``. Blocks marked ``python notest`` (a recipe needing a Hub model) are skipped.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[1] / "docs" / "api.md"
BLOCK = re.compile(r"^```(python[^\n]*)\n(.*?)^```", re.S | re.M)


def code_blocks(text: str) -> list[str]:
    """The python blocks of a Markdown text that are meant to run."""
    return [code for tag, code in BLOCK.findall(text) if tag.strip() == "python"]


def test_blocks_are_found() -> None:
    text = "a\n```python\nx = 1\n```\n```python notest\ny\n```\n```bash\nz\n```\n"
    assert code_blocks(text) == ["x = 1\n"]


def test_api_walkthrough_runs(
    tiny_models, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setenv("NLEDIT_DOCS_MODEL", str(tiny_models["llama"]))
    monkeypatch.chdir(tmp_path)
    blocks = code_blocks(DOC.read_text(encoding="utf-8"))
    assert len(blocks) >= 6
    namespace: dict[str, object] = {"__name__": "docs_api"}
    for i, code in enumerate(blocks):
        exec(compile(code, f"{DOC.name}[block {i}]", "exec"), namespace)
    assert (tmp_path / "out" / "no-sports" / "nledit_ranges.safetensors").is_file()
    assert (tmp_path / "my-edit" / "edit.json").is_file()
    assert "largest logit change" in capsys.readouterr().out
