"""Property-based tests of the trust rules: exports, fit folders and saved edits mutated at random.

Whatever the mutation (files added, ``auto_map`` entries, JSON values, range tensors, shapes, a
re-hashed manifest), the reader ends in a valid result or an ``NleditError`` naming a file: no
traceback, no foreign code run (an injected code file writes a canary), no other model's
weights exported. The fast suite runs a small seeded budget; ``bench/fuzz_trust.py`` a larger
one (``NLEDIT_FUZZ_EXAMPLES``, ``NLEDIT_FUZZ_SEED``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, event, given, seed, settings
from hypothesis import strategies as st
from safetensors import safe_open
from safetensors.torch import save_file

from nledit.checkpoint.integrity import MANIFEST_FILE, check_export, walk
from nledit.cli import main
from nledit.errors import NleditError
from nledit.runtime import gate

EXAMPLES = int(os.environ.get("NLEDIT_FUZZ_EXAMPLES", "20"))
SEED = int(os.environ.get("NLEDIT_FUZZ_SEED", "0"))
FUZZ = settings(
    max_examples=EXAMPLES,
    derandomize="NLEDIT_FUZZ_SEED" not in os.environ,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
CANARY = Path(tempfile.gettempdir()) / f"nledit-fuzz-canary-{os.getpid()}"
PAYLOAD = f"import pathlib\npathlib.Path({str(CANARY)!r}).write_text('ran')\n"
CODE_NAMES = [
    "evil.py",
    "tokenization_evil.py",
    "configuration_nledit.py",
    "sub/evil.py",
    "custom_generate/generate.py",
    "__init__.py",
]
OTHER_NAMES = ["notes.txt", "extra.json", "preprocessor_config.json", "model.bin", "sub/data.json"]
AUTO_KEYS = ["AutoConfig", "AutoTokenizer", "AutoModelForCausalLM", "AutoProcessor", "AutoModel"]
RANGE_VALUES = [float("nan"), float("inf"), -float("inf"), -1.0, 1e30, 0.0]
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**12), 10**12)
    | st.floats(allow_nan=True)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=5,
)


# ---- mutations ------------------------------------------------------------------------------


def _json_files(folder: Path) -> list[str]:
    return [n for n in walk(folder)[0] if n.endswith(".json")]


def _paths(doc: Any, prefix: tuple = ()) -> list[tuple]:
    """Every key path into a JSON document."""
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += _paths(v, (*prefix, i))
    return out


def _set(doc: Any, path: tuple, value: Any) -> Any:
    if not path:
        return value
    doc[path[0]] = _set(doc[path[0]], path[1:], value)
    return doc


def add_code(draw: Callable, folder: Path) -> str:
    name = draw(st.sampled_from(CODE_NAMES))
    (folder / name).parent.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(PAYLOAD)
    return name


def add_file(draw: Callable, folder: Path) -> str:
    name = draw(st.sampled_from(OTHER_NAMES))
    (folder / name).parent.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text("{}" if name.endswith(".json") else "data")
    return name


def add_auto_map(draw: Callable, folder: Path) -> str:
    code = add_code(draw, folder)
    module = code.removesuffix(".py").replace("/", ".")
    name = draw(st.sampled_from(_json_files(folder)))
    doc = json.loads((folder / name).read_text())
    key = draw(st.sampled_from(AUTO_KEYS))
    target = draw(st.sampled_from([f"{module}.Evil", [f"{module}.Evil", None]]))
    nested = (
        draw(st.booleans())
        and isinstance(doc, dict)
        and any(isinstance(v, dict) for v in doc.values())
    )
    if nested:
        holder = next(v for v in doc.values() if isinstance(v, dict))
        holder.setdefault("auto_map", {})[key] = target
    elif isinstance(doc, dict):
        doc.setdefault("auto_map", {})
        if not isinstance(doc["auto_map"], dict):
            doc["auto_map"] = {}
        doc["auto_map"][key] = target
    (folder / name).write_text(json.dumps(doc))
    return name


def corrupt_json(draw: Callable, folder: Path) -> str:
    name = draw(st.sampled_from(_json_files(folder)))
    doc = json.loads((folder / name).read_text())
    path = draw(st.sampled_from(_paths(doc)[:400]))
    doc = _set(doc, path, draw(JSON_VALUES))
    (folder / name).write_text(json.dumps(doc))
    return name


def corrupt_tensor(draw: Callable, folder: Path) -> str:
    names = [n for n in walk(folder)[0] if "ranges" in n or n == "edit.safetensors"]
    name = draw(st.sampled_from(names))
    path = folder / name
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    key = draw(st.sampled_from(sorted(tensors)))
    t = tensors[key].clone()
    how = draw(st.sampled_from(["value", "shape", "index", "dtype"]))
    if how == "shape" or not t.numel():
        t = t[..., : max(0, t.shape[-1] - 1)] if t.dim() else t.reshape(1)
    elif how == "index" or not t.is_floating_point():
        t = t.long()
        t.view(-1)[draw(st.integers(0, t.numel() - 1))] = draw(
            st.sampled_from([-1, 10**6, 63, 64, 65, int(t.view(-1)[0])])
        )
    elif how == "dtype":
        t = t.to(torch.float16)
    else:
        t.view(-1)[draw(st.integers(0, t.numel() - 1))] = draw(st.sampled_from(RANGE_VALUES))
    tensors[key] = t.contiguous()
    save_file(tensors, str(path), metadata=meta)
    _rehash_ranges(folder, name, tensors)
    return name


def corrupt_specs(draw: Callable, folder: Path) -> str:
    """Change a gate setting in the range file's metadata and in every JSON that repeats it."""
    names = [n for n in walk(folder)[0] if "ranges" in n or n == "edit.safetensors"]
    name = draw(st.sampled_from(names))
    with safe_open(str(folder / name), framework="pt") as f:
        meta = f.metadata() or {}
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    doc = json.loads(meta.get("nledit", "{}"))
    field = draw(st.sampled_from(["layer", "operator", "mode", "k", "quorum", "params", "name"]))
    value = draw(
        st.sampled_from([99, -1, "bogus", "zero", "vector", 0, 10**9, None, {"alpha": "x"}, 1.5])
        | JSON_VALUES
    )
    for spec in doc.get("edits", []):
        spec[field] = value
    meta["nledit"] = json.dumps(doc, sort_keys=True)
    save_file(tensors, str(folder / name), metadata=meta)
    for other in _json_files(folder):  # the attacker keeps every copy consistent
        text = (folder / other).read_text()
        d = json.loads(text)
        for edits in _edit_lists(d):
            for spec in edits:
                if isinstance(spec, dict):
                    spec[field] = value
        (folder / other).write_text(json.dumps(d))
    return name


def _edit_lists(doc: Any) -> list[list]:
    found = []
    if isinstance(doc, dict):
        for k, v in doc.items():
            if k in ("edits", "gates") and isinstance(v, list):
                found.append(v)
            found += _edit_lists(v)
    return found


def _rehash_ranges(folder: Path, name: str, tensors: dict[str, torch.Tensor]) -> None:
    """An attacker's consistency: the recorded digest of the range tensors updated."""
    digest = gate.tensors_digest(tensors)
    for other in ("config.json", "edit.json"):
        path = folder / other
        if not path.is_file():
            continue
        doc = json.loads(path.read_text())
        block = doc.get("nledit") if other == "config.json" else doc.get("block")
        if isinstance(block, dict):
            block["ranges_sha256"] = digest
            path.write_text(json.dumps(doc))


def rehash_manifest(folder: Path) -> None:
    path = folder / MANIFEST_FILE
    if not path.is_file():
        return
    doc = json.loads(path.read_text())
    if isinstance(doc, dict):
        doc["files"] = {
            n: hashlib.sha256((folder / n).read_bytes()).hexdigest()
            for n in walk(folder)[0]
            if n != MANIFEST_FILE
        }
        path.write_text(json.dumps(doc))


MUTATIONS = [add_code, add_file, add_auto_map, corrupt_json, corrupt_tensor, corrupt_specs]


@st.composite
def mutated(draw: Callable, source: Path) -> tuple[Path, list[str]]:
    """A fresh copy of ``source`` with one to three random mutations; the files they touched."""
    # beside the pristine folders: pytest removes them with its temp folders, even the copies of
    # examples hypothesis drew and then discarded
    work = Path(tempfile.mkdtemp(prefix="mutated-", dir=source.parent))
    folder = work / source.name
    shutil.copytree(source, folder)
    touched = []
    for _ in range(draw(st.integers(1, 3))):
        touched.append(draw(st.sampled_from(MUTATIONS))(draw, folder))
    if draw(st.booleans()):
        rehash_manifest(folder)
    return folder, touched


def refused_naming_a_file(err: NleditError, folder: Path) -> None:
    text = str(err)
    checks = [line.strip().split(":")[0] for line in text.splitlines()[1:]]
    event("refused: " + (", ".join(sorted(set(checks))) or type(err).__name__))
    names = [*walk(folder)[0], folder.name]
    assert any(n in text for n in names), text


@pytest.fixture(autouse=True)
def _no_canary() -> Any:
    CANARY.unlink(missing_ok=True)
    yield
    assert not CANARY.exists(), "foreign code ran"


# ---- the properties ---------------------------------------------------------------------------


@seed(SEED)
@FUZZ
@given(data=st.data())
def test_a_mutated_export_is_refused_or_loads_only_nledit_code(trusted_folders, data) -> None:
    folder, touched = data.draw(mutated(trusted_folders["export"]))
    try:
        try:
            check_export(folder, "push it", logits=True)
        except NleditError as err:
            refused_naming_a_file(err, folder)
            return
        from transformers import AutoModelForCausalLM, AutoTokenizer

        # what generate and eval do next; a mutation that passed must be harmless
        AutoTokenizer.from_pretrained(folder, trust_remote_code=True)
        AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True)  # config's dtype
        event("accepted")
        assert not any(t.endswith(".py") for t in touched), touched
    finally:
        assert not CANARY.exists(), f"foreign code ran after {touched}"
        shutil.rmtree(folder.parent)


@seed(SEED)
@FUZZ
@given(data=st.data())
def test_a_mutated_saved_edit_loads_validated_or_is_refused(
    trusted_folders, tiny_models, data
) -> None:
    import nledit

    folder, _ = data.draw(mutated(trusted_folders["edit"]))
    try:
        try:
            edit = nledit.Edit.load(folder)
        except NleditError as err:
            refused_naming_a_file(err, folder)
            return
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(str(tiny_models["llama"]))
        try:
            with edit.applied(model), torch.no_grad():
                y = model(input_ids=torch.tensor([[1, 2, 3, 4]])).logits
            assert torch.isfinite(y).all()
            event("accepted")
        except NleditError:
            event("refused when applied")
    finally:
        shutil.rmtree(folder.parent)


def test_a_saved_edit_naming_another_model_is_not_exported_with_it(
    trusted_folders, tiny_models, tmp_path: Path
) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    import nledit

    folder = tmp_path / "edit"
    shutil.copytree(trusted_folders["edit"], folder)
    meta = json.loads((folder / "edit.json").read_text())
    meta["definition"]["model"]["id"] = str(tiny_models["qwen2"])
    (folder / "edit.json").write_text(json.dumps(meta))
    path = str(tiny_models["llama"])
    model, tok = AutoModelForCausalLM.from_pretrained(path), AutoTokenizer.from_pretrained(path)
    with pytest.raises(NleditError, match="fitted on"):
        nledit.export(model, tok, nledit.Edit.load(folder), tmp_path / "out")
    assert not (tmp_path / "out").exists()


FIT_MUTATIONS = [add_file, corrupt_json, corrupt_tensor, corrupt_specs]


@seed(SEED)
@settings(FUZZ, max_examples=max(4, EXAMPLES // 4))
@given(data=st.data())
def test_a_mutated_fit_folder_exports_validated_or_is_refused(
    trusted_folders, data, capsys
) -> None:
    work = Path(tempfile.mkdtemp(prefix="mutated-", dir=trusted_folders["root"]))
    folder = work / "fit"
    shutil.copytree(trusted_folders["fit"], folder)
    touched = [data.draw(st.sampled_from(FIT_MUTATIONS))(data.draw, folder)]
    out = work / "out"
    try:
        code = main(["export", str(folder), "--out", str(out), "--set", "eval.enabled=false"])
        err = capsys.readouterr().err
        assert "Traceback" not in err
        assert code in (0, 2), err
        if code == 2:
            assert "error: " in err and any(n in err for n in (*walk(folder)[0], str(folder))), err
            assert not out.exists()
            event("refused")
        else:
            check_export(out)  # what it wrote is an export
            event("accepted")
    finally:
        shutil.rmtree(work)
    assert touched


def test_a_fit_folder_naming_another_model_is_refused(
    trusted_folders, tiny_models, tmp_path: Path, capsys
) -> None:
    folder = tmp_path / "fit"
    shutil.copytree(trusted_folders["fit"], folder)
    recipe = folder / "nledit_recipe.yaml"
    other = tmp_path / "other"
    shutil.copytree(tiny_models["llama"], other)  # same shape, other weights
    weights = other / "model.safetensors"
    from safetensors.torch import load_file

    tensors = load_file(str(weights))
    save_file({k: v + 1 for k, v in tensors.items()}, str(weights))
    recipe.write_text(recipe.read_text().replace(str(tiny_models["llama"]), str(other)))
    out = tmp_path / "out"
    code = main(["export", str(folder), "--out", str(out), "--set", "eval.enabled=false"])
    err = capsys.readouterr().err
    assert code == 2 and "nledit_fit.json" in err and "fitted on" in err, err
    assert not out.exists()
