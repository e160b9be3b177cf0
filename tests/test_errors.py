"""Every user-facing error derives from NleditError, so the command line reports it cleanly."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import nledit
from nledit.errors import NleditError

PACKAGE = Path(nledit.__file__).parent
# gate.py is copied into checkpoints and imports nothing from nledit; StopForward ends a forward
# pass early (control flow, never shown to a user).
EXEMPT = {"nledit.runtime.gate.NleditLoadError", "nledit.fitting.collect.StopForward"}


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def exception_classes() -> list[type]:
    """Every class defined in nledit that subclasses Exception (found by source, then imported)."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = [n.name for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.bases]
        if not names:
            continue
        module = importlib.import_module(_module_name(path))
        for name in names:
            cls = getattr(module, name, None)
            is_error = (
                isinstance(cls, type)
                and issubclass(cls, BaseException)
                and not issubclass(cls, Warning)  # a warning is shown, never raised to the user
            )
            if is_error and cls.__module__ == module.__name__:
                found.append(cls)
    return found


def test_every_error_derives_from_nledit_error() -> None:
    classes = exception_classes()
    assert len(classes) >= 12  # the walk really finds the error classes
    stray = [
        f"{c.__module__}.{c.__qualname__}"
        for c in classes
        if not issubclass(c, NleditError) and f"{c.__module__}.{c.__qualname__}" not in EXEMPT
    ]
    assert not stray, f"errors not derived from NleditError: {stray}"


def test_second_bases_kept() -> None:
    from nledit.checkpoint.write import ExportError
    from nledit.data.dataset import DataError
    from nledit.recipe import RecipeError

    assert issubclass(DataError, ValueError)
    assert issubclass(RecipeError, ValueError)
    assert issubclass(ExportError, RuntimeError)


def test_cli_reports_any_nledit_error(tmp_path: Path, capsys, monkeypatch) -> None:
    """An error class the command line never listed by name still gives exit code 2."""
    import nledit.commands.verify
    from nledit.cli import main
    from nledit.lmeval.tasks import TaskDataError

    def fail(*args: object, **kwargs: object) -> None:
        raise TaskDataError("tasks: the data directory holds no mmlu file")

    monkeypatch.setattr(nledit.commands.verify, "verify", fail)
    assert main(["verify", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "no mmlu file" in err and "Traceback" not in err
