"""The package's shape: no import cycles (module-level or inside functions), bounded modules."""

from __future__ import annotations

import ast
import subprocess
from pathlib import Path

import pytest

import nledit

PACKAGE = Path(nledit.__file__).parent
MAX_LINES = 400
# Modules already over the limit; the list may only shrink (it is empty: keep it so).
OVERSIZE: set[str] = set()
# The run-time copied into every checkpoint as modeling_nledit.py must stay one self-contained
# file (transformers runs it alone), so it is exempt from the limit.
SELF_CONTAINED = {"runtime/gate.py"}
# The command layer, and the entry points above it.
COMMANDS = "nledit.commands"
ENTRY_POINTS = {"nledit.cli", "nledit.__main__"}


def module_files() -> dict[str, Path]:
    """Dotted module name -> file, for every module of nledit (packages by __init__.py)."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def imports_of(name: str, path: Path, modules: set[str]) -> set[str]:
    """The nledit modules ``name`` imports anywhere in its source (TYPE_CHECKING included)."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            # `from . import gate` imports the module nledit.runtime.gate, not the package alone
            subs = [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in modules]
            found |= set(subs) if subs else {target}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
    return {m for m in found if m in modules and m != name}


def import_graph() -> dict[str, set[str]]:
    files = module_files()
    return {name: imports_of(name, path, set(files)) for name, path in files.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path ``[a, b, ..., a]``, or None (depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_finder_sees_cycles() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_graph_sees_function_level_imports() -> None:
    graph = import_graph()
    assert "nledit.runtime.gate" in graph["nledit.checkpoint.write"]  # `from . import gate`
    # imported inside a function
    assert "nledit.sweep.plot" in graph["nledit.sweep.files"]


def test_no_import_cycles() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_module_size() -> None:
    over = {
        str(p.relative_to(PACKAGE)): n
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert set(over) <= OVERSIZE | SELF_CONTAINED, f"modules over {MAX_LINES} lines: {over}"


def test_stages_do_not_import_commands() -> None:
    """Pipeline stages stand below the commands: no stage imports ``nledit.commands`` or the
    command line, and no command imports the command line."""
    upward = {
        (name, dep)
        for name, deps in import_graph().items()
        for dep in deps
        if name not in ENTRY_POINTS
        and (dep == "nledit.cli" or (dep.startswith(COMMANDS) and not name.startswith(COMMANDS)))
    }
    assert not upward, f"imports from below the commands layer: {sorted(upward)}"


def test_every_command_has_a_runner() -> None:
    """Each subcommand of the parser runs a function of nledit.commands, and only those exist."""
    import argparse

    from nledit.cli import build_parser
    from nledit.commands import RUNNERS, runner

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert set(sub.choices) == set(RUNNERS)
    assert all(callable(runner(command)) for command in RUNNERS)
    # one naming rule: command `a-b` runs `cmd_a_b`
    assert all(name == "cmd_" + c.replace("-", "_") for c, (_, name) in RUNNERS.items())


# What a checkout's root holds; anything else committed there is a stray file.
ROOT_ENTRIES = {
    ".ci", ".gitignore", "README.md", "pyproject.toml", "bench", "docs", "nledit", "recipes",
    "scripts", "tests",
}  # fmt: skip


def private_imports(name: str, source: str) -> set[tuple[str, str, str]]:
    """``(importer, module, name)`` for every underscore name ``name``'s ``source`` imports
    from another nledit module (dunder names such as ``__version__`` are public)."""
    package = name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            if not target.startswith("nledit") or target == name:
                continue
            for alias in node.names:
                if alias.name.startswith("_") and not alias.name.startswith("__"):
                    found.add((name, target, alias.name))
    return found


def test_finder_sees_private_imports() -> None:
    source = "from ..evaluation.erasure import _metrics, applied\nfrom .x import __version__\n"
    found = private_imports("nledit.commands.sweep", source)
    assert found == {("nledit.commands.sweep", "nledit.evaluation.erasure", "_metrics")}


def test_no_private_names_imported_across_modules() -> None:
    found: set[tuple[str, str, str]] = set()
    for name, path in module_files().items():
        if path.name == "__init__.py":
            name += ".__init__"
        found |= private_imports(name, path.read_text(encoding="utf-8"))
    assert found == set(), "make the shared name public, or move the code that uses it"


def test_no_stray_file_at_the_repository_root() -> None:
    root = PACKAGE.parent
    try:
        listed = subprocess.run(
            ["git", "ls-files"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout: the committed files are unknown")
    entries = {f.split("/")[0] for f in listed}
    assert entries - ROOT_ENTRIES == set(), "a stray file at the root; move or remove it"


# The only modules directly in nledit/: the entry points, the API and the recipe jobs above the
# stages, and the foundations every stage shares. Every stage lives in its package.
TOP_LEVEL = {
    "__init__.py", "__main__.py", "api.py", "cli.py", "cli_errors.py", "cli_help.py",
    "errors.py", "lazy.py", "pipeline.py", "plan.py", "version.py",
}  # fmt: skip


def test_stages_live_in_packages() -> None:
    flat = {p.name for p in PACKAGE.glob("*.py")} - TOP_LEVEL
    assert not flat, f"modules directly in nledit/ (put each in its stage's package): {flat}"


def test_no_package_is_named_after_an_api_function() -> None:
    """``nledit.fit`` is the function: no module or package of that name may shadow it."""
    import nledit as package

    shadows = {
        n for n in package.__all__ if (PACKAGE / n).exists() or (PACKAGE / f"{n}.py").exists()
    }
    assert not shadows, f"modules named after API functions: {shadows}"


# What a command may import besides its siblings: the public API and the CLI's plumbing (the
# recipe package parses recipes and flags).
API = {"nledit", "nledit.api"}
PLUMBING = {"nledit.errors", "nledit.cli_errors", "nledit.cli_help"}
# Commands that still import more than that; the set may only shrink.
THICK_COMMANDS: set[str] = set()


def beyond_thin_shell(deps: set[str], stages: set[str]) -> set[str]:
    """What a command's imports ``deps`` hold beyond a thin shell: anything but the API, the
    plumbing, the recipe package, sibling commands and one stage package's public names (its
    ``__init__``, never a module inside it). ``stages``: the stage packages of nledit."""
    rest = {
        d
        for d in deps
        if d not in API | PLUMBING
        and d != "nledit.recipe"
        and not d.startswith(("nledit.recipe.", COMMANDS + "."))
    }
    own = rest & stages
    return rest - own if len(own) <= 1 else rest


def stage_packages() -> set[str]:
    """Every package directly under nledit/ except the command layer and the recipe."""
    return {
        f"nledit.{p.name}"
        for p in PACKAGE.iterdir()
        if (p / "__init__.py").is_file() and p.name not in {"commands", "recipe"}
    }


def test_thin_shell_rule() -> None:
    stages = {"nledit.sweep", "nledit.tune", "nledit.checkpoint"}
    assert beyond_thin_shell({"nledit.api", "nledit.recipe.flags", "nledit.sweep"}, stages) == set()
    assert beyond_thin_shell({"nledit.sweep.files"}, stages) == {"nledit.sweep.files"}
    assert beyond_thin_shell({"nledit.sweep", "nledit.tune"}, stages) == {
        "nledit.sweep",
        "nledit.tune",
    }
    assert beyond_thin_shell({"nledit.pipeline"}, stages) == {"nledit.pipeline"}


def test_commands_are_thin_shells() -> None:
    """A command imports only the public API, the plumbing, the recipe package and its own
    stage's public names; the work itself lives in the stages."""
    stages = stage_packages()
    thick = {
        name
        for name, deps in import_graph().items()
        if name.startswith(COMMANDS + ".") and beyond_thin_shell(deps, stages)
    }
    assert thick - THICK_COMMANDS == set(), "import the API or the stage's public names instead"
    assert THICK_COMMANDS - thick == set(), "thin now: remove it from THICK_COMMANDS"
