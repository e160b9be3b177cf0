"""``save_pretrained`` on a loaded export keeps the edit (plain transformers, no nledit).

A child process, in which ``nledit`` cannot be imported, loads a tiny Llama export, saves it
with ``save_pretrained`` (fp32, and bf16 after loading in bf16), pushes it with
``push_to_hub`` against a stand-in Hub client, reloads every saved folder and writes the logits;
this process compares them and checks the saved folders with nledit's own integrity checks.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from conftest import recipe_dict
from safetensors.torch import load_file, save_file

from nledit import pipeline
from nledit.checkpoint.integrity import MANIFEST_FILE, MODELING_FILE, inspect_export
from nledit.recipe import parse_recipe
from nledit.runtime.gate import RANGES_FILE

CHILD = r"""
import sys

sys.modules["nledit"] = None  # the checkpoint must load and save without nledit

import json
import os
import shutil

import torch
import transformers
import transformers.utils.hub as tf_hub
from safetensors.torch import load_file, save_file

torch.set_num_threads(1)
src, work = sys.argv[1], sys.argv[2]
inputs = load_file(os.path.join(work, "inputs.safetensors"))
auto = transformers.AutoModelForCausalLM
report, logits = {}, {}


def n_gates(model):
    return sum(type(m).__name__ == "RangeGate" for m in model.modules())


def run(folder, dtype):
    model = auto.from_pretrained(folder, trust_remote_code=True, dtype=dtype).eval()
    with torch.no_grad():
        return model, model(**inputs).logits.float()


for dtype, tag in ((torch.float32, "fp32"), (torch.bfloat16, "bf16")):
    model, logits[f"export_{tag}"] = run(src, dtype)
    saved = os.path.join(work, f"saved_{tag}")
    model.save_pretrained(saved)
    again, logits[f"saved_{tag}"] = run(saved, dtype)
    report[tag] = {
        "class": type(again).__name__,
        "files": sorted(os.listdir(saved)),
        "gates": [n_gates(model), n_gates(again)],
    }
    with torch.no_grad():
        again.nledit_enabled(False)
        logits[f"saved_{tag}_off"] = again(**inputs).logits.float()

# a re-saved folder loads with a device map; a model cast after loading saves as it runs
mapped = auto.from_pretrained(
    os.path.join(work, "saved_fp32"), trust_remote_code=True, device_map="cpu"
).eval()
with torch.no_grad():
    logits["saved_fp32_device_map"] = mapped(**inputs).logits.float()
report["device_map_gates"] = n_gates(mapped)
cast, _ = run(src, torch.float32)
cast = cast.to(torch.bfloat16)
with torch.no_grad():
    logits["cast_bf16"] = cast(**inputs).logits.float()
cast.save_pretrained(os.path.join(work, "saved_cast"))
recast, logits["saved_cast"] = run(os.path.join(work, "saved_cast"), "auto")
report["saved_cast_dtype"] = str(next(recast.parameters()).dtype)
with torch.no_grad():
    recast.nledit_enabled(False)
    logits["saved_cast_off"] = recast(**inputs).logits.float()

# push_to_hub with the Hub stood in for: record the folder the model would upload


class Repo:
    repo_id = "user/edited"


class Api:
    def create_repo(self, *args, **kwargs):
        return Repo()


def upload(self, folder, repo_id, *args, **kwargs):
    shutil.copytree(folder, os.path.join(work, "uploaded", str(len(os.listdir(uploads)))))


tf_hub.hf_api = lambda: Api()
tf_hub.create_and_tag_model_card = lambda *a, **k: type("Card", (), {"save": lambda s, p: None})()
type(model)._upload_modified_files = upload
uploads = os.path.join(work, "uploaded")
os.makedirs(uploads)
model, _ = run(src, torch.float32)
model.push_to_hub("user/edited")  # uploaded/0
model.save_pretrained(os.path.join(work, "saved_push"), push_to_hub=True, repo_id="user/x")
# pipeline() knows the edited class as a text-generation model (no "not supported" line)
import logging

records = []
handler = logging.Handler()
handler.emit = lambda r: records.append(r.getMessage())
logging.getLogger("transformers").addHandler(handler)
pipe = transformers.pipeline("text-generation", model=src, trust_remote_code=True)
report["pipeline_tokenizer"] = type(pipe.tokenizer).__name__
report["pipeline_class"] = type(pipe.model).__name__
report["pipeline_log"] = [m for m in records if "not supported" in m]
report["nledit_modules"] = sorted(m for m, v in sys.modules.items() if m.startswith("nledit") and v)
save_file({k: v.contiguous() for k, v in logits.items()}, os.path.join(work, "logits.safetensors"))
json.dump(report, open(os.path.join(work, "report.json"), "w"))
"""


@pytest.fixture(scope="module")
def resaved(
    tiny_models: dict[str, Path], tiny_data: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict[str, Any], dict[str, torch.Tensor]]:
    root = tmp_path_factory.mktemp("resave")
    d = recipe_dict(tiny_models["llama"], tiny_data)
    out = root / "out"
    result = pipeline.run(parse_recipe(d), yaml.safe_dump(d), out, False, log=lambda *_: None)
    tokens = result.fitted.cm.tokenizer(
        ["match goal coach season league", "shares profit market bank"],
        return_tensors="pt",
        padding=True,
    )
    save_file(
        {k: tokens[k] for k in ("input_ids", "attention_mask")}, str(root / "inputs.safetensors")
    )
    (root / "child.py").write_text(CHILD)
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "HF_HUB_OFFLINE": "1",
        "HF_MODULES_CACHE": str(root / "modules"),
        "TRANSFORMERS_VERBOSITY": "error",
        "PYTHONPATH": "",
    }
    proc = subprocess.run(
        [sys.executable, str(root / "child.py"), str(out), str(root)],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((root / "report.json").read_text())
    return root, report, load_file(str(root / "logits.safetensors"))


def test_save_round_trip_keeps_the_edit(resaved: Any) -> None:
    _, report, logits = resaved
    assert report["nledit_modules"] == []
    assert report["fp32"]["class"].startswith("Nledit")
    assert torch.equal(logits["saved_fp32"], logits["export_fp32"])
    # the edit acts on these inputs, so an edit lost on saving would show
    assert not torch.equal(logits["saved_fp32_off"], logits["saved_fp32"])


def test_device_map_and_dtype_changes_after_a_save_round_trip(resaved: Any) -> None:
    root, report, logits = resaved
    assert report["device_map_gates"] > 0
    assert torch.equal(logits["saved_fp32_device_map"], logits["export_fp32"])
    # cast to bf16 after loading, saved, reloaded in the saved dtype: still edited (transformers
    # recomputes buffers such as the rotary frequencies on a load, so the logits of the cast
    # model in memory are no reference to compare with bit for bit)
    assert report["saved_cast_dtype"] == "torch.bfloat16"
    assert not torch.equal(logits["saved_cast"], logits["saved_cast_off"])
    manifest = json.loads((root / "saved_cast" / MANIFEST_FILE).read_text())
    assert manifest["resaved"]["dtype"] == "bfloat16"
    assert inspect_export(root / "saved_cast").ok


def test_pipeline_takes_the_edited_model_without_complaint(resaved: Any) -> None:
    _, report, _ = resaved
    assert report["pipeline_class"].startswith("Nledit")
    assert report["pipeline_log"] == []
    assert report["pipeline_tokenizer"] == "TokenizersBackend"  # the standard class


def test_bf16_round_trip_keeps_the_edit(resaved: Any) -> None:
    root, report, logits = resaved
    assert torch.equal(logits["saved_bf16"], logits["export_bf16"])
    assert not torch.equal(logits["saved_bf16_off"], logits["saved_bf16"])
    assert min(report["bf16"]["gates"]) > 0  # a second load in one process keeps its gates
    config = json.loads((root / "saved_bf16" / "config.json").read_text())
    assert config["dtype"] == "bfloat16"


@pytest.mark.parametrize(
    "folder", ["saved_fp32", "saved_bf16", "uploaded/0", "uploaded/1", "saved_push"]
)
def test_saved_folder_is_a_complete_checkpoint(resaved: Any, folder: str) -> None:
    root, _, _ = resaved
    path = root / folder
    names = set(os.listdir(path))
    assert {"config.json", MODELING_FILE, RANGES_FILE, MANIFEST_FILE} <= names
    config = json.loads((path / "config.json").read_text())
    assert config["model_type"] == "nledit"
    assert config["auto_map"]["AutoModelForCausalLM"] == "modeling_nledit.NleditForCausalLM"
    assert "base_weights" not in config["nledit"]


@pytest.mark.parametrize("folder", ["saved_fp32", "saved_bf16"])
def test_resaved_manifest_is_honest(resaved: Any, folder: str) -> None:
    root, _, _ = resaved
    manifest = json.loads((root / folder / MANIFEST_FILE).read_text())
    assert manifest["resaved"]["by"] == "save_pretrained"
    assert manifest["resaved"]["dtype"] == folder.split("_")[1].replace("bf16", "bfloat16").replace(
        "fp32", "float32"
    )
    original = json.loads((root / "out" / MANIFEST_FILE).read_text())
    assert manifest["resaved"]["export_files"] == original["files"]
    findings = inspect_export(root / folder)
    assert findings.ok, findings.failures()


def test_tampered_resaved_folder_fails_verification(resaved: Any, tmp_path: Path) -> None:
    import shutil

    root, _, _ = resaved
    copy = tmp_path / "copy"
    shutil.copytree(root / "saved_fp32", copy)
    with (copy / RANGES_FILE).open("ab") as f:
        f.write(b"x")
    assert not inspect_export(copy).ok


def test_verify_says_the_folder_was_resaved(resaved: Any) -> None:
    from nledit.commands.verify import render, verify

    root, _, _ = resaved
    findings = verify(root / "saved_bf16")
    assert findings.ok, findings.failures()
    assert "re-saved, not the original export" in render(findings)
    assert "bfloat16" in render(findings)
    assert "re-saved" not in render(verify(root / "out"))
