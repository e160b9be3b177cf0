"""The exported checkpoint and its contract (DESIGN.md, "The exported checkpoint").

Per family, ``pipeline.run`` fits and exports a one-edit recipe and a two-edit recipe (two
concepts at one layer, one more at another), and the one-edit gates are exported once more with
every range empty. One child process, in which ``nledit`` cannot be imported, then loads every
export with plain transformers and writes the logits it gets; the tests compare them with the
in-memory models of this process. Inputs and logits travel as safetensors files.
"""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from conftest import FAMILIES, recipe_dict
from safetensors import safe_open
from safetensors.torch import load_file, save_file

import nledit.runtime.gate
from nledit import pipeline
from nledit.checkpoint.write import MANIFEST_FILE, RECIPE_FILE
from nledit.fitting.recipe_fit import Fitted
from nledit.recipe import parse_recipe
from nledit.runtime.gate import RANGES_FILE, RangeGate, install_gates, remove_gates

# Two cores shared with other work: one intra-op thread is the fastest for tiny models, and the
# child process uses the same, so both compute in the same order.
torch.set_num_threads(1)

AUTO = {
    "causal-lm": "AutoModelForCausalLM",
    "sequence-classification": "AutoModelForSequenceClassification",
}
# Texts of the concepts (encoders read their CLS token, so the inputs must look like the data).
TEXTS = [
    "match goal coach season league striker tennis cup",
    "shares profit market bank earnings software chip today",
    "the war election minister treaty after new report",
]
MULTI_EDITS = [
    {"concepts": ["Sports", "Business"], "layer": 0, "top_p": 0.25, "operator": "zero"},
    {
        "name": "tech",
        "concepts": ["Tech"],
        "layer": "last",
        "top_p": 0.25,
        "operator": {"name": "steer", "strength": 2.0},
    },
]

# Loads every job of a JSON list with transformers alone and records what happened.
CHILD = r"""
import sys

sys.modules["nledit"] = None  # the checkpoint must load without nledit

import json
import traceback

import torch
from safetensors.torch import load_file, save_file
import transformers

torch.set_num_threads(1)
try:
    import nledit  # noqa: F401
except ImportError:
    pass
else:
    raise SystemExit("nledit is importable in the child")

jobs = json.load(open(sys.argv[1]))
report = {}
for job in jobs:
    entry = report[job["key"]] = {}
    auto = getattr(transformers, job["auto"])
    kwargs = {"trust_remote_code": True} if job["trust"] else {}
    try:
        model = auto.from_pretrained(job["dir"], dtype=torch.float32, **kwargs).eval()
    except Exception as err:
        entry["error_type"] = type(err).__name__
        entry["error"] = str(err)
        continue
    entry["class"] = type(model).__name__
    entry["module"] = type(model).__module__
    entry["gates"] = sorted(
        m.spec.name for m in model.modules() if type(m).__name__ == "RangeGate"
    )
    entry["layers_path"] = model.config.nledit["layers_path"]
    if not job.get("inputs"):
        continue
    inputs = load_file(job["inputs"])
    out = {}
    with torch.no_grad():
        out["edited"] = model(**inputs).logits
        model.nledit_enabled(False)
        out["disabled"] = model(**inputs).logits
        model.nledit_enabled(True)
        out["enabled_again"] = model(**inputs).logits
        with model.nledit_disabled():
            out["context_disabled"] = model(**inputs).logits
        if job.get("switch_off"):
            model.nledit_enabled(False, names=job["switch_off"])
            out["switched_off"] = model(**inputs).logits
            model.nledit_enabled(True)
    save_file({k: v.contiguous() for k, v in out.items()}, job["logits"])
entry = report["__process__"] = {}
entry["nledit_modules"] = sorted(
    m for m, mod in sys.modules.items() if m.split(".")[0] == "nledit" and mod is not None
)
json.dump(report, open(sys.argv[2], "w"), indent=1)
"""


@dataclasses.dataclass
class Export:
    """One family's exports and the in-memory logits to compare with."""

    family: str
    base_dir: Path
    out: Path  # the one-edit recipe
    multi: Path  # the two-edit recipe
    empty: Path  # the one-edit gates with every range empty
    neuron: Path  # the one-edit recipe exported with output.method: neuron
    missing: Path  # `out` without its range file
    altered: Path  # `out` with one range value changed
    fitted: Fitted
    fitted_multi: Fitted
    inputs: Path
    logits: dict[str, torch.Tensor]  # base, edited, neuron, multi, multi_switched_off
    switch_off: list[str]


def run_recipe(model_dir: Path, data: Path, out: Path, **changes: Any) -> Fitted:
    d = recipe_dict(model_dir, data)
    d.update(changes)
    text = yaml.safe_dump(d, sort_keys=False)
    return pipeline.run(parse_recipe(d), text, out, False, log=lambda *_: None).fitted


def empty_ranges(gates: list[RangeGate]) -> list[RangeGate]:
    """The same gates with lo > hi: no value is ever inside."""
    out = []
    for g in gates:
        tensors = {k: getattr(g, k).clone() for k in ("index", "lo", "hi", "mu", "sigma", "value")}
        tensors["lo"], tensors["hi"] = torch.ones_like(g.lo), -torch.ones_like(g.hi)
        out.append(RangeGate(g.spec, tensors))
    return out


def logits_of(fitted: Fitted, inputs: dict[str, torch.Tensor], gates: list[RangeGate]) -> Any:
    model = fitted.model
    install_gates(model, fitted.layout.layers_path, gates)
    try:
        with torch.no_grad():
            return model(**inputs).logits
    finally:
        remove_gates(model)


def neuron_gates(fitted: Fitted) -> list[RangeGate]:
    return [g for g in fitted.edit.baseline if g.spec.mode == "neuron"]


def build(family: str, base_dir: Path, data: Path, root: Path) -> Export:
    out, multi, empty = root / f"{family}-out", root / f"{family}-multi", root / f"{family}-empty"
    fitted = run_recipe(base_dir, data, out)
    fitted_multi = run_recipe(base_dir, data, multi, edits=MULTI_EDITS, eval={"enabled": False})
    pipeline.export_fitted(
        dataclasses.replace(
            fitted, edit=dataclasses.replace(fitted.edit, gates=empty_ranges(fitted.edit.gates))
        ),
        empty,
        None,
        False,
    )
    neuron = root / f"{family}-neuron"
    neuron_recipe = fitted.recipe.updated(output=fitted.recipe.output.updated(method="neuron"))
    pipeline.export_fitted(dataclasses.replace(fitted, recipe=neuron_recipe), neuron, None, False)
    missing, altered = root / f"{family}-missing", root / f"{family}-altered"
    shutil.copytree(out, missing)
    (missing / RANGES_FILE).unlink()
    shutil.copytree(out, altered)
    path = str(altered / RANGES_FILE)
    with safe_open(path, framework="pt") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    key = next(k for k in sorted(tensors) if k.endswith(".hi"))
    tensors[key][0] += 0.5
    save_file(tensors, path, metadata=meta)

    tokens = fitted.cm.tokenizer(TEXTS, return_tensors="pt", padding=True)
    inputs = {k: tokens[k] for k in ("input_ids", "attention_mask")}
    inputs_path = root / f"{family}-inputs.safetensors"
    save_file(inputs, str(inputs_path))
    switch_off = [fitted_multi.edit.gates[0].spec.name]
    logits = {
        "base": logits_of(fitted, inputs, []),
        "edited": logits_of(fitted, inputs, fitted.edit.gates),
        "neuron": logits_of(fitted, inputs, neuron_gates(fitted)),
        "multi": logits_of(fitted_multi, inputs, fitted_multi.edit.gates),
        "multi_switched_off": logits_of(fitted_multi, inputs, fitted_multi.edit.gates[1:]),
    }
    return Export(
        family,
        base_dir,
        out,
        multi,
        empty,
        neuron,
        missing,
        altered,
        fitted,
        fitted_multi,
        inputs_path,
        logits,
        switch_off,
    )


@pytest.fixture(scope="session")
def exports(
    tiny_models: dict[str, Path], tiny_data: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Export]:
    root = tmp_path_factory.mktemp("exports")
    return {f: build(f, tiny_models[f], tiny_data, root) for f in FAMILIES}


@pytest.fixture(scope="session")
def loaded(
    exports: dict[str, Export], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, dict[str, Any]]:
    """What the child process saw: report entries, with ``logits`` read back, per job key."""
    root = tmp_path_factory.mktemp("child")
    jobs: list[dict[str, Any]] = []
    # loads without trust_remote_code come first, before any remote code is registered
    for e in exports.values():
        auto = AUTO[e.fitted.cm.task]
        jobs.append({"key": f"{e.family}/untrusted", "dir": str(e.out), "auto": auto})
    for e in exports.values():
        auto = AUTO[e.fitted.cm.task]
        for name, folder, switch_off in (
            ("out", e.out, None),
            ("multi", e.multi, e.switch_off),
            ("empty", e.empty, None),
            ("neuron", e.neuron, None),
            ("missing", e.missing, None),
            ("altered", e.altered, None),
        ):
            key = f"{e.family}/{name}"
            jobs.append(
                {
                    "key": key,
                    "dir": str(folder),
                    "auto": auto,
                    "trust": True,
                    "inputs": str(e.inputs),
                    "logits": str(root / f"{e.family}-{name}-logits.safetensors"),
                    "switch_off": switch_off,
                }
            )
    for job in jobs:
        job.setdefault("trust", False)
    spec, report, script = root / "jobs.json", root / "report.json", root / "child.py"
    spec.write_text(json.dumps(jobs))
    script.write_text(CHILD)
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_MODULES_CACHE": str(root / "modules"),
        "TRANSFORMERS_VERBOSITY": "error",
        "PYTHONPATH": "",
    }
    proc = subprocess.run(
        [sys.executable, str(script), str(spec), str(report)],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(report.read_text())
    for job in jobs:
        path = Path(job.get("logits") or "")
        if job.get("logits") and path.is_file():
            result[job["key"]]["logits"] = load_file(str(path))
    return result


def entry(loaded: dict[str, dict[str, Any]], key: str) -> dict[str, Any]:
    e = loaded[key]
    assert "error" not in e, f"{key}: {e.get('error_type')}: {e.get('error')}"
    return e


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape and a.dtype == b.dtype == torch.float32
    return (a - b).abs().max().item()


# ---- (a) the export loads without nledit and computes the in-memory edit ---------------------


def test_the_child_never_imports_nledit(loaded: dict[str, dict[str, Any]]) -> None:
    assert loaded["__process__"]["nledit_modules"] == []


@pytest.mark.parametrize("family", FAMILIES)
def test_export_loads_without_nledit_with_equal_logits(
    exports: dict[str, Export], loaded: dict[str, dict[str, Any]], family: str
) -> None:
    e = exports[family]
    got = entry(loaded, f"{family}/out")
    base_cls = type(e.fitted.model).__name__
    assert got["class"] == f"Nledit{base_cls}"
    assert got["module"].startswith("transformers_modules.")
    assert got["gates"] == sorted(g.spec.name for g in e.fitted.edit.gates)
    assert got["layers_path"] == e.fitted.layout.layers_path
    # the edit does something on these inputs, so equality below is not vacuous
    assert max_diff(e.logits["edited"], e.logits["base"]) > 1e-3
    assert max_diff(got["logits"]["edited"], e.logits["edited"]) <= 1e-6
    assert max_diff(got["logits"]["enabled_again"], e.logits["edited"]) <= 1e-6


@pytest.mark.parametrize("family", FAMILIES)
def test_neuron_method_exports_the_neuron_masking_baseline(
    exports: dict[str, Export], loaded: dict[str, dict[str, Any]], family: str
) -> None:
    e = exports[family]
    got = entry(loaded, f"{family}/neuron")
    assert got["gates"] == sorted(g.spec.name for g in neuron_gates(e.fitted))
    assert max_diff(e.logits["neuron"], e.logits["base"]) > 1e-3
    assert max_diff(got["logits"]["edited"], e.logits["neuron"]) <= 1e-6
    assert torch.equal(got["logits"]["disabled"], e.logits["base"])
    assert json.loads((e.neuron / MANIFEST_FILE).read_text())["method"] == "neuron"
    assert "by neuron masking" in (e.neuron / "README.md").read_text()
    assert "by NeuronLens range masking" in (e.out / "README.md").read_text()


def test_neuron_method_needs_the_neuron_gates(exports: dict[str, Export], tmp_path: Path) -> None:
    fitted = next(iter(exports.values())).fitted
    recipe = fitted.recipe.updated(output=fitted.recipe.output.updated(method="neuron"))
    with pytest.raises(pipeline.ExportError, match=r"output\.method: neuron needs"):
        pipeline.export_fitted(
            dataclasses.replace(
                fitted, recipe=recipe, edit=dataclasses.replace(fitted.edit, baseline=[])
            ),
            tmp_path / "x",
            None,
            False,
        )
    assert not (tmp_path / "x").exists()


# ---- (b) gates off, or every range empty: the base model, exactly ------------------------------


@pytest.mark.parametrize("family", FAMILIES)
def test_disabled_gates_give_the_base_model_exactly(
    exports: dict[str, Export], loaded: dict[str, dict[str, Any]], family: str
) -> None:
    base = exports[family].logits["base"]
    logits = entry(loaded, f"{family}/out")["logits"]
    assert torch.equal(logits["disabled"], base)
    assert torch.equal(logits["context_disabled"], base)
    assert torch.equal(entry(loaded, f"{family}/multi")["logits"]["disabled"], base)


@pytest.mark.parametrize("family", FAMILIES)
def test_empty_ranges_give_the_base_model_exactly(
    exports: dict[str, Export], loaded: dict[str, dict[str, Any]], family: str
) -> None:
    e = exports[family]
    got = entry(loaded, f"{family}/empty")
    assert got["gates"] == sorted(g.spec.name for g in e.fitted.edit.gates)
    assert torch.equal(got["logits"]["edited"], e.logits["base"])


# ---- (c) base weights byte-identical ----------------------------------------------------------


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("family", FAMILIES)
def test_base_weights_are_byte_identical(exports: dict[str, Export], family: str) -> None:
    e = exports[family]
    base_files = sorted(p.name for p in e.base_dir.glob("*.safetensors"))
    for folder in (e.out, e.multi, e.empty):
        files = sorted(p.name for p in folder.glob("model*.safetensors"))
        assert files == base_files
        for name in files:
            assert sha256(folder / name) == sha256(e.base_dir / name)
            with (
                safe_open(str(folder / name), framework="pt") as new,
                safe_open(str(e.base_dir / name), framework="pt") as old,
            ):
                assert sorted(new.keys()) == sorted(old.keys())
                for key in old.keys():  # noqa: SIM118
                    a, b = new.get_tensor(key), old.get_tensor(key)
                    assert a.dtype == b.dtype and a.shape == b.shape, key
                    assert a.contiguous().view(torch.uint8).equal(b.contiguous().view(torch.uint8))


# ---- (d) no trust_remote_code, no model --------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
def test_loading_without_trust_remote_code_fails(
    loaded: dict[str, dict[str, Any]], family: str
) -> None:
    got = loaded[f"{family}/untrusted"]
    assert "class" not in got, f"loaded {got.get('class')} without trust_remote_code"
    assert got["error_type"] in ("ValueError", "OSError", "KeyError")
    assert "trust_remote_code" in got["error"] or "nledit" in got["error"]


# ---- (e) missing or altered range tensors fail at load time ------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
def test_loading_without_the_range_file_fails(
    loaded: dict[str, dict[str, Any]], family: str
) -> None:
    got = loaded[f"{family}/missing"]
    assert "class" not in got, "loaded without nledit_ranges.safetensors"
    assert got["error_type"] == "NleditLoadError"
    assert f"{RANGES_FILE} is missing" in got["error"]


@pytest.mark.parametrize("family", FAMILIES)
def test_loading_altered_ranges_fails(loaded: dict[str, dict[str, Any]], family: str) -> None:
    got = loaded[f"{family}/altered"]
    assert "class" not in got, "loaded an altered range file"
    assert got["error_type"] == "NleditLoadError"
    assert "sha256 mismatch" in got["error"]


# ---- (f) modeling_nledit.py is gate.py, and self-contained -------------------------------------

ALLOWED = {"torch", "transformers", "safetensors"}


@pytest.mark.parametrize("family", FAMILIES)
def test_modeling_file_is_gate_py_and_imports_only_its_runtime(
    exports: dict[str, Export], family: str
) -> None:
    path = exports[family].out / "modeling_nledit.py"
    source = Path(nledit.runtime.gate.__file__)
    assert path.read_bytes() == source.read_bytes()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"relative import from {node.module!r}"
            imported.add((node.module or "").split(".")[0])
    third_party = imported - set(sys.stdlib_module_names) - {"__future__"}
    assert third_party <= ALLOWED, third_party
    assert "nledit" not in imported
    assert {"torch", "transformers", "safetensors"} <= imported


# ---- (g) several edits in one checkpoint, switched one at a time -------------------------------


@pytest.mark.parametrize("family", FAMILIES)
def test_multi_edit_export_reloads_and_switches_one_edit_off(
    exports: dict[str, Export], loaded: dict[str, dict[str, Any]], family: str
) -> None:
    e = exports[family]
    gates = e.fitted_multi.edit.gates
    assert [g.spec.concept for g in gates] == ["Sports", "Business", "Tech"]
    last = e.fitted_multi.layout.n_layers - 1
    assert [g.spec.layer for g in gates] == [0, 0, last]
    cfg = json.loads((e.multi / "config.json").read_text())
    assert [s["name"] for s in cfg["nledit"]["edits"]] == [g.spec.name for g in gates]

    got = entry(loaded, f"{family}/multi")
    assert got["gates"] == sorted(g.spec.name for g in gates)
    logits = got["logits"]
    assert max_diff(logits["edited"], e.logits["multi"]) <= 1e-6
    assert max_diff(logits["switched_off"], e.logits["multi_switched_off"]) <= 1e-6
    assert max_diff(logits["enabled_again"], e.logits["multi"]) <= 1e-6
    # switching one edit off changes the output, and is not the same as switching all off
    assert max_diff(e.logits["multi_switched_off"], e.logits["multi"]) > 1e-4
    assert max_diff(e.logits["multi_switched_off"], e.logits["base"]) > 1e-4


# ---- (h) config.json and the manifest ----------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
def test_config_and_manifest(exports: dict[str, Export], family: str) -> None:
    e = exports[family]
    task = e.fitted.cm.task
    base_cfg = json.loads((e.base_dir / "config.json").read_text())
    for folder, fitted in ((e.out, e.fitted), (e.multi, e.fitted_multi)):
        cfg = json.loads((folder / "config.json").read_text())
        assert cfg["model_type"] == "nledit"
        wrapper = "NleditForCausalLM" if task == "causal-lm" else "NleditForSequenceClassification"
        assert cfg["architectures"] == [wrapper]
        assert cfg["auto_map"] == {
            "AutoConfig": "modeling_nledit.NleditConfig",
            AUTO[task]: f"modeling_nledit.{wrapper}",
        }
        block = cfg["nledit"]
        assert block["format"] == nledit.runtime.gate.FORMAT
        assert block["base_model_type"] == base_cfg["model_type"]
        assert block["base_architecture"] == type(fitted.model).__name__
        assert block["layers_path"] == fitted.layout.layers_path
        assert [s["name"] for s in block["edits"]] == [g.spec.name for g in fitted.edit.gates]
        assert block["ranges_sha256"] == nledit.runtime.gate.tensors_digest(
            load_file(str(folder / RANGES_FILE))
        )
        # the base configuration is kept, field by field
        for key, value in base_cfg.items():
            if key not in ("model_type", "architectures", "transformers_version"):
                assert cfg[key] == value, key

        manifest = json.loads((folder / MANIFEST_FILE).read_text())
        files = manifest["files"]
        on_disk = {p.name for p in folder.iterdir() if p.is_file()} - {MANIFEST_FILE}
        assert set(files) == on_disk
        for name, digest in files.items():
            assert sha256(folder / name) == digest, name
        assert manifest["base_weights"] == ["model.safetensors"]
        assert (
            manifest["recipe_sha256"]
            == hashlib.sha256((folder / RECIPE_FILE).read_bytes()).hexdigest()
        )
        with safe_open(str(folder / RANGES_FILE), framework="pt") as f:
            meta = json.loads(f.metadata()["nledit"])
        assert meta["edit_sha256"] == block["edit_sha256"]
        assert meta["edits"] == block["edits"]
