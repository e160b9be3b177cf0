"""At size: an export verifies in the dtype it was fitted in (one copy of the weights, never a
float32 copy of a bf16 base)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from nledit.checkpoint.integrity import logits_dtype, verify
from nledit.cli import main

FAST = ["--set", "eval.enabled=false"]


@pytest.mark.parametrize("dtype", ["bfloat16", "float32"])
def test_export_verifies_in_its_fit_dtype(
    dtype: str, tiny_models, tiny_data, make_recipe, tmp_path: Path
) -> None:
    recipe = make_recipe(tiny_models["llama"], tiny_data, extra={"model.dtype": dtype})
    out = tmp_path / "out"
    assert main(["run", str(recipe), "--out", str(out), *FAST]) == 0
    assert logits_dtype(out) == getattr(torch, dtype)
    findings = verify(out)
    assert findings.ok, findings.failures()


def test_quoted_figures_are_the_benchmark_file() -> None:
    """What `nledit check` quotes is docs/benchmarks/models.scale.json, row for row."""
    import json

    from nledit.models.cost_basis import MEASURED, basis_rows

    doc = json.loads(Path(__file__).resolve().parents[1].joinpath(DOC).read_text())
    assert basis_rows(doc) == MEASURED
    assert len({m.model for m in MEASURED if m.dtype == "float32"}) >= 2  # to interpolate


DOC = "docs/benchmarks/models.scale.json"


def test_estimate_names_the_sizes_it_comes_from() -> None:
    from nledit.models.cost_basis import MEASURED, estimate

    rows = sorted((m for m in MEASURED if m.dtype == "float32"), key=lambda m: m.params)
    lo, hi = rows[0], rows[1]
    mid = int((lo.params * hi.params) ** 0.5)
    e = estimate(mid, "float32")
    assert e is not None and lo.model in e.basis and hi.model in e.basis
    rates = sorted((lo.fit_tokens_per_s, hi.fit_tokens_per_s))
    assert rates[0] <= e.fit_tokens_per_s <= rates[1]
    big = estimate(rows[-1].params * 10, "float32")
    assert big is not None and "scaled by parameter count" in big.basis
    assert big.fit_tokens_per_s < rows[-1].fit_tokens_per_s
    assert big.fit_peak_bytes > rows[-1].fit_peak_bytes


def test_check_quotes_the_measured_cost(tiny_models, tiny_data, make_recipe) -> None:
    from nledit.plan import make_plan
    from nledit.recipe import load_recipe

    recipe, _ = load_recipe(str(make_recipe(tiny_models["llama"], tiny_data)))
    text = make_plan(recipe).render()
    assert "measured  scaled by parameter count from smollm2-135m" in text
    assert "export    about" in text and "verify    about" in text
    assert "tokens/s, measured" in text


def test_offloaded_fit_and_export_equal_the_in_memory_ones(
    tiny_models, tiny_data, make_recipe, tmp_path: Path
) -> None:
    """device_map auto with the CPU capped below the weights: the rest is offloaded to disk
    (its weights on meta), and the fit, its export and verify still work, with the same ranges."""
    from safetensors.torch import load_file

    outs = {}
    for mode, extra in (
        ("ram", {}),
        ("offload", {"model.device_map": "auto", "model.max_memory": {"cpu": "20KiB"}}),
    ):
        recipe = make_recipe(tiny_models["llama"], tiny_data, extra=extra)
        out = tmp_path / mode
        assert main(["run", str(recipe), "--out", str(out), *FAST]) == 0
        outs[mode] = out
    assert verify(outs["offload"]).ok
    a = load_file(str(outs["ram"] / "nledit_ranges.safetensors"))
    b = load_file(str(outs["offload"] / "nledit_ranges.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        assert torch.allclose(a[key], b[key], rtol=1e-5, atol=1e-6), key


def test_input_device_of_a_dispatched_model() -> None:
    from nledit.models.devices import input_device

    model = torch.nn.Linear(2, 2)
    assert input_device(model) == torch.device("cpu")
    model.hf_device_map = {"a": "disk", "b": "cpu"}
    assert input_device(model) == torch.device("cpu")
    model.hf_device_map = {"a": "disk"}
    assert input_device(model) == torch.device("cpu")
    model.hf_device_map = {"a": 1, "b": "cpu"}
    assert input_device(model) == torch.device("cuda", 1)


def _fake_hub(root: Path, repo: str, config: Path) -> None:
    """A Hub cache holding only ``repo``'s config.json at revision main."""
    commit = "0" * 40
    base = root / f"models--{repo.replace('/', '--')}"
    (base / "refs").mkdir(parents=True)
    (base / "refs" / "main").write_text(commit)
    snap = base / "snapshots" / commit
    snap.mkdir(parents=True)
    shutil.copyfile(config, snap / "config.json")


@pytest.fixture
def hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An offline, empty Hub cache in tmp (huggingface_hub reads its cache path at call time)."""
    import huggingface_hub.constants as hc

    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(hc, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(hc, "HF_HUB_OFFLINE", True)
    return cache


def test_check_reads_a_hub_models_shape_from_its_config_alone(
    tiny_models, tiny_data, make_recipe, hub_cache: Path
) -> None:
    from transformers import AutoModelForCausalLM

    from nledit.plan import make_plan
    from nledit.recipe import load_recipe

    _fake_hub(hub_cache, "someone/tiny-llama", tiny_models["llama"] / "config.json")
    recipe, _ = load_recipe(str(make_recipe(Path("someone/tiny-llama"), tiny_data)))
    plan = make_plan(recipe)
    model = AutoModelForCausalLM.from_pretrained(tiny_models["llama"])
    assert plan.n_params == sum(p.numel() for p in model.parameters())
    assert (plan.n_layers, plan.hidden_size) == (
        model.config.num_hidden_layers,
        model.config.hidden_size,
    )
    assert plan.cost is not None and "config.json" in plan.where
    assert "measured  scaled by parameter count" in plan.render()


@pytest.mark.parametrize("revision", [None, "v2"])
def test_check_says_what_it_tried_for_an_unreachable_hub_model(
    revision: str | None, tiny_models, tiny_data, make_recipe, hub_cache: Path
) -> None:
    from nledit.plan import make_plan
    from nledit.recipe import load_recipe

    _fake_hub(hub_cache, "someone/tiny-llama", tiny_models["llama"] / "config.json")
    repo = "someone/tiny-llama" if revision else "someone/not-cached"
    path = make_recipe(Path(repo), tiny_data, extra={"model.revision": revision})
    plan = make_plan(load_recipe(str(path))[0])
    assert plan.cost is None and plan.n_params is None
    (warning,) = [w for w in plan.warnings if "shape" in w]
    assert f"{repo}/config.json" in warning and "HF_HUB_OFFLINE" in warning
    assert "local folder" in warning
    assert (f"revision {revision}" in warning) == bool(revision)


@pytest.mark.parametrize("weights", ["copy", "reference"])
def test_export_and_verify_read_each_weight_shard_once(
    weights: str, tiny_models, tiny_data, make_recipe, tmp_path: Path, monkeypatch
) -> None:
    """A sharded base: the fit loads each shard once, the export loads none (it copies or
    hashes the files) and verify loads each once (one copy of the weights, never two)."""
    import transformers.modeling_utils as mu
    from transformers import AutoModelForCausalLM

    base = tmp_path / "sharded"
    model = AutoModelForCausalLM.from_pretrained(tiny_models["llama"])
    model.save_pretrained(base, max_shard_size="20KB")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copyfile(tiny_models["llama"] / name, base / name)
    shards = sorted(p.name for p in base.glob("*.safetensors"))
    assert len(shards) >= 2
    opened: list[str] = []
    real = mu.safe_open

    def counting(path: str, *args, **kwargs):  # transformers' only way to read a weight file
        opened.append(Path(path).name)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(mu, "safe_open", counting)
    extra = {"output.weights": weights}
    out = tmp_path / "out"
    assert main(["run", str(make_recipe(base, tiny_data, extra=extra)), "--out", str(out)]) == 0
    assert sorted(opened) == shards  # the fit's load; the export read no weights back
    opened.clear()
    findings = verify(out)
    assert findings.ok, findings.failures()
    assert sorted(opened) == shards
