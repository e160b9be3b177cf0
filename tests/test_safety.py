"""No pickle anywhere: safetensors, JSON and safe YAML only."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted((ROOT / "nledit").rglob("*.py")) + sorted((ROOT / "bench").rglob("*.py"))


def _calls(tree: ast.AST) -> list[str]:
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name):
                names.append(f"{f.value.id}.{f.attr}")
            elif isinstance(f, ast.Name):
                names.append(f.id)
    return names


def test_sources_found() -> None:
    assert len(SOURCES) > 10


def test_no_pickle_loading_or_unsafe_yaml() -> None:
    offenders = []
    for path in SOURCES:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                mods = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
                if any(m.split(".")[0] in ("pickle", "cPickle", "dill", "joblib") for m in mods):
                    offenders.append(f"{path.name}: imports pickle-like module")
        for call in _calls(tree):
            if call in (
                "torch.load",
                "pickle.load",
                "pickle.loads",
                "yaml.load",
                "yaml.unsafe_load",
                "np.load",
                "numpy.load",
                "torch.save",
            ):
                offenders.append(f"{path.name}: {call}")
    assert offenders == []


def test_export_writes_no_pickle(tmp_path: Path) -> None:
    # Every file type an export may contain is JSON, YAML, Markdown, Python or safetensors.
    import importlib

    export = importlib.import_module("nledit.checkpoint.write")  # nledit.export is the API function

    allowed = (".json", ".yaml", ".md", ".py", ".safetensors", ".txt", ".jinja", ".csv", ".model")
    assert export.REFERENCE_FILE.endswith(".safetensors")
    assert all(s.endswith(allowed) for s in (export.MANIFEST_FILE, export.RECIPE_FILE))
