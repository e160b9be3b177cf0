"""Exports under attack: data loss, laundered code, files from outside, shared links, kill -9."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from nledit.checkpoint.integrity import MANIFEST_FILE, inspect_export, walk
from nledit.cli import main
from nledit.folders.atomic import (
    atomic_dir,
    clean_leftovers,
    clean_stale_temp,
    scratch_dir,
    workspace,
)
from nledit.folders.owned import OWNER_FILE, owner_of, remove_owned
from nledit.models.loading import CACHE_RECORD, cache_problem
from nledit.runtime import gate

FAST = ["--set", "eval.enabled=false"]
PAYLOAD = "import pathlib; pathlib.Path({marker!r}).write_text('ran')\n"


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory, tiny_models, tiny_data) -> Path:
    """One real export of a tiny Llama, copied fresh for each test."""
    import yaml
    from conftest import recipe_dict

    root = tmp_path_factory.mktemp("pristine")
    recipe = root / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(recipe_dict(tiny_models["llama"], tiny_data)))
    assert main(["run", str(recipe), "--out", str(root / "out"), *FAST]) == 0
    return root / "out"


@pytest.fixture
def export(pristine: Path, tmp_path: Path) -> Path:
    out = tmp_path / "out"
    shutil.copytree(pristine, out)
    return out


def rehash(out: Path) -> None:
    """What an attacker does after editing files: make the manifest match them again."""
    manifest = json.loads((out / MANIFEST_FILE).read_text())
    manifest["files"] = {
        name: hashlib.sha256((out / name).read_bytes()).hexdigest()
        for name in walk(out)[0]
        if name != MANIFEST_FILE
    }
    (out / MANIFEST_FILE).write_text(json.dumps(manifest))


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(argv)
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err
    return code, captured.out + captured.err


def failed(out: Path) -> list[str]:
    return inspect_export(out).failures()


def test_a_fresh_export_passes_every_check(export: Path, capsys) -> None:
    assert failed(export) == []
    code, text = run(["verify", str(export)], capsys)
    assert code == 0 and "\nverified\n" in text


# ---- data loss ------------------------------------------------------------------------------


def test_overwrite_never_deletes_a_users_folder(
    export: Path, pristine: Path, tmp_path: Path, capsys
) -> None:
    work = tmp_path / "mywork"
    work.mkdir()
    (work / "thesis.tex").write_text("years of work")
    fit = tmp_path / "fit"
    recipe = pristine.parent / "recipe.yaml"  # the export's copy names no local paths
    assert run(["fit", str(recipe), "--out", str(fit)], capsys)[0] == 0
    code, text = run(["export", str(fit), "--out", str(work), "--overwrite", *FAST], capsys)
    assert code == 2 and "not an nledit output" in text
    assert (work / "thesis.tex").read_text() == "years of work"
    # An export with a file the user added is not nledit's alone any more either.
    (export / "notes.txt").write_text("mine")
    code, text = run(["export", str(fit), "--out", str(export), "--overwrite", *FAST], capsys)
    assert code == 2 and "did not write: notes.txt" in text
    assert (export / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_overwrite_refuses_the_current_folder(
    export: Path, pristine: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys
) -> None:
    fit = tmp_path / "fit"
    assert run(["fit", str(pristine.parent / "recipe.yaml"), "--out", str(fit)], capsys)[0] == 0
    monkeypatch.chdir(export)
    code, text = run(["export", str(fit), "--out", ".", "--overwrite", *FAST], capsys)
    assert code == 2 and "current folder" in text
    assert failed(export) == []
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


# ---- laundered code -------------------------------------------------------------------------


def tamper_code(out: Path, marker: Path) -> None:
    with (out / "modeling_nledit.py").open("a") as f:
        f.write(PAYLOAD.format(marker=str(marker)))


@pytest.mark.parametrize("rehashed", [False, True])
def test_tampered_code_never_runs(export: Path, tmp_path: Path, rehashed: bool, capsys) -> None:
    marker = tmp_path / "payload-ran"
    tamper_code(export, marker)
    if rehashed:
        rehash(export)
    before = (export / MANIFEST_FILE).read_bytes()
    code, text = run(["verify", str(export)], capsys)
    assert code == 1 and "FAIL known nledit run-time" in text and "verification FAILED" in text
    data = tmp_path / "nodata"
    code, text = run(["eval", str(export), "--data-dir", str(data), "--no-base"], capsys)
    assert code == 2 and "refusing to run its code" in text
    assert not marker.exists()
    assert (export / MANIFEST_FILE).read_bytes() == before  # eval rewrote no hashes
    code, text = run(["push", str(export), "--repo", "me/x", "--dry-run"], capsys)
    assert code == 2 and "differs from every nledit run-time" in text
    assert not marker.exists()


def test_operator_changed_in_config_and_ranges_is_caught(export: Path) -> None:
    config = json.loads((export / "config.json").read_text())
    for spec in config["nledit"]["edits"]:
        spec["operator"] = "dampen"
    (export / "config.json").write_text(json.dumps(config))
    path = export / gate.RANGES_FILE
    with safe_open(str(path), framework="pt") as f:
        meta = json.loads(f.metadata()["nledit"])
    meta["edits"] = config["nledit"]["edits"]
    save_file(load_file(str(path)), str(path), metadata={"nledit": json.dumps(meta)})
    rehash(export)
    problems = failed(export)
    assert any("operator 'dampen' in config.json, 'zero' in the manifest" in p for p in problems)


def test_auto_map_pointing_elsewhere_is_caught(export: Path) -> None:
    config = json.loads((export / "config.json").read_text())
    config["auto_map"]["AutoConfig"] = "evil.NleditConfig"
    (export / "config.json").write_text(json.dumps(config))
    (export / "evil.py").write_text("raise SystemExit('ran')\n")
    rehash(export)
    assert any("AutoConfig -> evil.NleditConfig" in p for p in failed(export))


# ---- files from outside ---------------------------------------------------------------------


def test_subfolders_and_symlinks_fail_verify(export: Path, tmp_path: Path, capsys) -> None:
    (export / "extra").mkdir()
    (export / "extra" / "data.bin").write_bytes(b"\0")
    code, text = run(["verify", str(export)], capsys)
    assert code == 1 and "no unlisted files: extra/data.bin" in text
    shutil.rmtree(export / "extra")
    (export / "tokenizer.json").unlink()
    (export / "tokenizer.json").symlink_to("/etc/hostname")
    rehash(export)  # even recorded in the manifest, a link is refused
    problems = failed(export)
    assert any("symlinks" in p and "tokenizer.json" in p for p in problems)
    code, text = run(["push", str(export), "--repo", "me/x", "--dry-run"], capsys)
    assert code == 2 and "tokenizer.json" in text


# ---- no shared links, normal permissions ----------------------------------------------------


def test_exported_files_are_independent_copies_with_normal_permissions(
    pristine: Path, tiny_models
) -> None:
    umask = os.umask(0)
    os.umask(umask)
    base = tiny_models["llama"]
    for name in walk(pristine)[0]:
        st = (pristine / name).stat()
        assert st.st_nlink == 1, name
        assert st.st_mode & 0o777 == 0o666 & ~umask, name
    for weights in base.glob("*.safetensors"):
        assert not (pristine / weights.name).samefile(weights)


def test_cache_is_checked_by_content_before_reuse(tmp_path: Path) -> None:
    folder = tmp_path / "conv"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"weights")
    assert "not a complete conversion" in (cache_problem(folder) or "")
    digest = hashlib.sha256(b"weights").hexdigest()
    files = {"model.safetensors": digest}
    (folder / CACHE_RECORD).write_text(json.dumps({"files": files}))
    assert cache_problem(folder) is None
    (folder / "model.safetensors").write_bytes(b"other weights")  # cp other.safetensors ...
    assert "sha256 mismatch" in (cache_problem(folder) or "")


# ---- interrupted work -----------------------------------------------------------------------

CHILD = """
import sys, time
from pathlib import Path
from nledit.folders.atomic import atomic_dir
with atomic_dir(Path(sys.argv[1]), True, ("marker.json",)) as tmp:
    (tmp / "half.bin").write_bytes(b"x" * 1000)
    print("writing", flush=True)
    time.sleep(60)
"""


def kill_during_write(out: Path) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(CHILD), str(out)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None and child.stdout.readline().strip() == "writing"
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    time.sleep(0.05)


def owned_siblings(parent: Path) -> list[Path]:
    return [p for p in parent.iterdir() if (p / OWNER_FILE).is_file()]


def test_kill_9_leftovers_are_removed_and_reported(tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    kill_during_write(out)
    assert len(owned_siblings(tmp_path)) == 1  # the dead writer's folder, with its marker
    notes = clean_leftovers(out)
    assert len(notes) == 1 and "interrupted run" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


ASIDE = """
import os, sys
from pathlib import Path
from nledit.folders.atomic import workspace
out = Path(sys.argv[1])
aside = workspace(out, "old")
os.replace(out, aside / out.name)
"""


def test_kill_between_the_two_renames_restores_the_previous_output(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with atomic_dir(out, False, ("marker.json",)) as tmp:
        (tmp / "marker.json").write_text("{}")
    # A run that ended after moving the old output aside and before moving the new one in:
    subprocess.run([sys.executable, "-c", ASIDE, str(out)], check=True)
    assert not out.exists()
    notes = clean_leftovers(out)
    assert any("restored" in n for n in notes)
    assert (out / "marker.json").read_text() == "{}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_live_writer_is_left_alone(tmp_path: Path) -> None:
    busy = workspace(tmp_path / "out", "tmp")  # this process is alive
    assert clean_leftovers(tmp_path / "out") == []
    assert busy.is_dir()
    assert remove_owned(busy) and not busy.exists()


@pytest.mark.parametrize("kind", ["tmp", "old"])
def test_a_users_folder_is_never_removed_or_moved_whatever_its_name(
    tmp_path: Path, kind: str
) -> None:
    out = tmp_path / "out"
    mine = tmp_path / f".out.{kind}-999999999-abc"  # the names older releases matched
    (mine / "out").mkdir(parents=True)
    (mine / "out" / "thesis.txt").write_text("mine")
    forged = tmp_path / f".out.{kind}-1-forged"  # a marker nledit never recorded
    forged.mkdir()
    doc = {"token": "0" * 32, "pid": 999999999, "purpose": kind, "target": str(out)}
    (forged / OWNER_FILE).write_text(json.dumps(doc))
    assert clean_leftovers(out) == []
    assert (mine / "out" / "thesis.txt").read_text() == "mine" and forged.is_dir()
    assert not out.exists()
    with atomic_dir(out, False, ("marker.json",)) as tmp:  # a run beside them leaves them
        (tmp / "marker.json").write_text("{}")
    assert (mine / "out" / "thesis.txt").read_text() == "mine" and forged.is_dir()
    assert not owned_siblings(tmp_path) or owned_siblings(tmp_path) == [forged]


def test_system_temp_folders_of_others_are_left_alone(capsys) -> None:
    import tempfile

    mine = Path(tempfile.mkdtemp(prefix="nledit-lmeval-1-"))  # the prefix nledit once matched
    try:
        assert clean_stale_temp("lmeval") == []
        with scratch_dir("lmeval") as work:
            assert owner_of(work) is not None
        assert not work.exists() and mine.is_dir()
    finally:
        shutil.rmtree(mine)
