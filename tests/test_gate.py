"""The range gate (`nledit/runtime/gate.py`): every operator against its formula, and the range
file.

Hand-made tensors only: a hidden state of d=4 neurons, a gate on neurons 1 and 3 whose ranges
are [lo, hi] = [0, 2] and [-1, 1]. Values are chosen to be exact in float32, so most
comparisons are exact.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from nledit.runtime.gate import (
    FORMAT,
    NleditLoadError,
    RangeGate,
    gates_disabled,
    install_gates,
    load_gates,
    remove_gates,
    save_ranges,
    set_gates_enabled,
)

INDEX = torch.tensor([1, 3])
LO = torch.tensor([0.0, -1.0])
HI = torch.tensor([2.0, 1.0])
MU = torch.tensor([1.0, 0.0])
SIGMA = torch.tensor([0.5, 0.25])
VALUE = torch.tensor([0.75, -0.5])
PARAMS = {"alpha": 0.25, "beta": 0.5, "tau": 2.0, "strength": 2.0}


def make_gate(
    operator: str,
    mode: str = "range",
    name: str = "g",
    layer: int = 0,
    positions: str = "all",
    params: dict[str, float] | None = None,
    **tensors: torch.Tensor,
) -> RangeGate:
    parts = {"index": INDEX, "lo": LO, "hi": HI, "mu": MU, "sigma": SIGMA, "value": VALUE}
    parts.update(tensors)
    spec = {
        "name": name,
        "edit": name.split(".")[0],
        "concept": "Sports",
        "layer": layer,
        "operator": operator,
        "params": dict(PARAMS if params is None else params),
        "mode": mode,
        "positions": positions,
        "k": int(parts["index"].numel()),
    }
    return RangeGate(spec, {k: v.clone() for k, v in parts.items()})


def phi(operator: str, x: torch.Tensor) -> torch.Tensor:
    """The operator's formula, written out per selected neuron (x has shape (..., k))."""
    if operator == "zero":
        return torch.zeros_like(x)
    if operator == "dampen":
        return PARAMS["alpha"] * x
    if operator == "mean":
        return VALUE.expand_as(x)
    if operator == "adaptive":
        return PARAMS["beta"] * (x - MU).abs() / (PARAMS["tau"] * SIGMA) * x
    if operator == "steer":
        return x + PARAMS["strength"] * VALUE
    raise AssertionError(operator)


# Rows of (neuron 1, neuron 3) values and whether each lies inside its range.
# Neuron 1: range [0, 2]; neuron 3: range [-1, 1]. The boundaries count as inside.
CASES = [
    ((0.5, 0.25), (True, True)),  # both inside
    ((3.0, -2.0), (False, False)),  # both outside, above and below
    ((0.0, 1.0), (True, True)),  # lo of neuron 1, hi of neuron 3
    ((2.0, -1.0), (True, True)),  # hi of neuron 1, lo of neuron 3
    ((-0.125, 1.5), (False, False)),  # just below lo, above hi
    ((1.5, 4.0), (True, False)),  # one inside, one outside
]
OPERATORS = ["zero", "dampen", "mean", "adaptive", "steer"]


def hidden() -> torch.Tensor:
    """(B=len(CASES), T=1, d=4): the selected neurons carry the cases, others a marker."""
    h = torch.full((len(CASES), 1, 4), 7.0)
    h[:, 0, 0] = -3.0
    for i, ((a, b), _) in enumerate(CASES):
        h[i, 0, 1], h[i, 0, 3] = a, b
    return h


@pytest.mark.parametrize("operator", OPERATORS)
def test_range_mode_applies_phi_only_inside_the_range(operator: str) -> None:
    gate = make_gate(operator, "range")
    h = hidden()
    out = gate(h)
    x = h[..., INDEX]
    expected = h.clone()
    inside = torch.tensor([flags for _, flags in CASES]).unsqueeze(1)
    expected[..., INDEX] = torch.where(inside, phi(operator, x), x)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-6)
    # neurons that are not selected are never touched
    assert torch.equal(out[..., [0, 2]], h[..., [0, 2]])


@pytest.mark.parametrize("operator", OPERATORS)
def test_neuron_mode_applies_phi_everywhere(operator: str) -> None:
    gate = make_gate(operator, "neuron")
    h = hidden()
    out = gate(h)
    expected = h.clone()
    expected[..., INDEX] = phi(operator, h[..., INDEX])
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-6)
    assert torch.equal(out[..., [0, 2]], h[..., [0, 2]])


def test_boundaries_count_as_inside() -> None:
    gate = make_gate("zero", "range")
    h = torch.zeros(1, 2, 4)
    h[0, 0, 1], h[0, 0, 3] = LO[0], LO[1]
    h[0, 1, 1], h[0, 1, 3] = HI[0], HI[1]
    out = gate(h)
    assert torch.equal(out[..., INDEX], torch.zeros(1, 2, 2))
    # one float32 step outside either boundary is outside
    below = torch.nextafter(LO, torch.tensor(-float("inf")))
    above = torch.nextafter(HI, torch.tensor(float("inf")))
    h[0, 0, INDEX], h[0, 1, INDEX] = below, above
    assert torch.equal(gate(h), h)


@pytest.mark.parametrize("operator", ["dampen", "adaptive", "steer"])
def test_parameters_come_from_the_spec(operator: str) -> None:
    """Other parameter values give other results: the spec is read, not a default."""
    h = torch.tensor([[[0.0, 0.5, 0.0, 0.25]]])
    params = {"alpha": 0.125, "beta": 2.0, "tau": 4.0, "strength": -1.0}
    out = make_gate(operator, "neuron", params=params)(h)[..., INDEX]
    x = h[..., INDEX]
    if operator == "dampen":
        expected = 0.125 * x
    elif operator == "adaptive":
        expected = 2.0 * (x - MU).abs() / (4.0 * SIGMA) * x
    else:
        expected = x - VALUE
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-6)


def test_adaptive_with_zero_sigma_is_finite() -> None:
    gate = make_gate("adaptive", "neuron", sigma=torch.zeros(2))
    out = gate(torch.tensor([[[0.0, 1.0, 0.0, 0.5]]]))
    assert torch.isfinite(out).all()


def test_vector_mode_steer_and_ablate() -> None:
    d = 4
    r = torch.tensor([1.0, 2.0, -2.0, 0.5])
    full = {
        "index": torch.arange(d),
        "lo": torch.zeros(d),
        "hi": torch.zeros(d),
        "mu": torch.zeros(d),
        "sigma": torch.ones(d),
        "value": r,
    }
    h = torch.randn(2, 3, d, generator=torch.Generator().manual_seed(0))
    steer = make_gate("steer", "vector", **full)
    torch.testing.assert_close(steer(h), h + PARAMS["strength"] * r, rtol=0, atol=1e-6)
    ablate = make_gate("ablate", "vector", **full)
    out = ablate(h)
    r_hat = r / r.norm()
    expected = h - (h @ r_hat).unsqueeze(-1) * r_hat
    torch.testing.assert_close(out, expected, rtol=1e-6, atol=1e-6)
    # nothing of the direction is left, and ablating twice changes nothing
    torch.testing.assert_close(out @ r_hat, torch.zeros(2, 3), rtol=0, atol=1e-5)
    torch.testing.assert_close(ablate(out), out, rtol=0, atol=1e-5)


@pytest.mark.parametrize("operator", ["steer", "ablate"])
def test_a_vector_gate_holds_no_ranges_and_older_exports_with_zero_ranges_load(
    operator: str, tmp_path: Path
) -> None:
    """A whole-vector gate is written with its indices and vector only; a range file of the
    previous format (zero lo, hi, mu, sigma beside them) loads and acts the same."""
    from nledit.runtime.vector_gates import whole_vector_gate

    d, r = 4, torch.tensor([1.0, 2.0, -2.0, 0.5])
    gate = whole_vector_gate(
        name="v", method=operator, edit="v", concept="Sports", layer=0, operator=operator,
        params={"strength": 2.0}, positions="all", value=r,
    )  # fmt: skip
    assert not gate.spec.ranged and not hasattr(gate, "lo")
    path = tmp_path / "new.safetensors"
    block = save_ranges(str(path), [gate], {})
    with safe_open(str(path), framework="pt") as f:
        assert sorted(f.keys()) == ["v.index", "v.value"]
    h = torch.randn(2, 3, d, generator=torch.Generator().manual_seed(0))
    (new,) = load_gates(str(path), block)
    # the previous format: the same gate with zero ranges and statistics
    zeros = torch.zeros(d)
    old = RangeGate(gate.spec, {"index": torch.arange(d), "value": r, "lo": zeros, "hi": zeros,
                                "mu": zeros, "sigma": zeros})  # fmt: skip
    old_path = tmp_path / "old.safetensors"
    old_block = save_ranges(str(old_path), [old], {})
    tensors = {
        f"v.{k}": getattr(old, k).clone() for k in ("index", "lo", "hi", "mu", "sigma", "value")
    }
    with safe_open(str(old_path), framework="pt") as f:
        meta = f.metadata()
    save_file(tensors, str(old_path), metadata=meta)
    from nledit.runtime.gate import tensors_digest

    old_block["ranges_sha256"] = tensors_digest(tensors)
    (loaded,) = load_gates(str(old_path), old_block)
    assert loaded.lo.shape == (d,)  # read as written
    torch.testing.assert_close(loaded(h), new(h), rtol=0, atol=0)
    torch.testing.assert_close(new(h), gate(h), rtol=0, atol=0)
    # a range gate still needs its ranges
    with pytest.raises(NleditLoadError, match="missing tensors"):
        spec = {**old_block["edits"][0], "mode": "neuron"}
        broken = {**block, "edits": [spec]}
        meta = {"nledit": json.dumps({"format": FORMAT, "edits": [spec]}, sort_keys=True)}
        save_file({"v.index": torch.arange(d), "v.value": r}, str(path), metadata=meta)
        load_gates(str(path), broken)


def test_unknown_operator_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown operator 'scale'"):
        make_gate("scale", "neuron")(torch.zeros(1, 1, 4))


@pytest.mark.parametrize("mode", ["range", "neuron"])
def test_positions_last_touches_only_the_last_position(mode: str) -> None:
    h = torch.full((2, 5, 4), 0.5)
    gate = make_gate("zero", mode, positions="last")
    out = gate(h)
    assert torch.equal(out[:, :-1], h[:, :-1])
    assert torch.equal(out[:, -1, INDEX], torch.zeros(2, 2))
    assert torch.equal(out[:, -1, [0, 2]], h[:, -1, [0, 2]])
    # positions "all" edits every position
    assert torch.equal(make_gate("zero", mode)(h)[..., INDEX], torch.zeros(2, 5, 2))


def test_positions_last_on_a_single_state() -> None:
    """A (B, d) state (no sequence axis) is the last position itself."""
    h = torch.full((3, 4), 0.5)
    out = make_gate("zero", "neuron", positions="last")(h)
    assert out.shape == h.shape
    assert torch.equal(out[:, INDEX], torch.zeros(3, 2))


@pytest.mark.parametrize("operator", [*OPERATORS, "ablate"])
def test_a_disabled_gate_is_the_identity(operator: str) -> None:
    gate = make_gate(operator, "neuron")
    gate.enabled = False
    h = hidden()
    assert gate(h) is h


def test_gate_keeps_the_dtype_of_the_hidden_state() -> None:
    h = hidden().to(torch.bfloat16)
    out = make_gate("dampen", "range")(h)
    assert out.dtype == torch.bfloat16
    assert torch.equal(out[1], h[1])  # outside: untouched


# ---- gates on a model -------------------------------------------------------------------------


class Block(nn.Module):
    """A block that adds one and returns a tuple, like a decoder layer."""

    def __init__(self, as_tuple: bool) -> None:
        super().__init__()
        self.as_tuple = as_tuple
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, h: torch.Tensor) -> Any:
        out = h + 1 + self.weight
        return (out, "extra") if self.as_tuple else out


class Toy(nn.Module):
    def __init__(self, as_tuple: bool = True) -> None:
        super().__init__()
        self.layers = nn.ModuleList([Block(as_tuple) for _ in range(3)])

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        for block in self.layers:
            out = block(h)
            h = out[0] if isinstance(out, tuple) else out
        return h


@pytest.mark.parametrize("as_tuple", [True, False])
def test_several_gates_on_one_layer_apply_in_order(as_tuple: bool) -> None:
    model = Toy(as_tuple)
    h = torch.zeros(1, 2, 4)
    steer = make_gate("steer", "neuron", name="a.steer", layer=1)
    dampen = make_gate("dampen", "neuron", name="b.dampen", layer=1)
    install_gates(model, "layers", [steer, dampen])
    out = model(h)
    # layer 0 gives 1, layer 1 gives 2, then steer, then dampen, then layer 2 adds 1
    x = torch.full((1, 2, 2), 2.0)
    expected = torch.full((1, 2, 4), 3.0)
    expected[..., INDEX] = PARAMS["alpha"] * (x + PARAMS["strength"] * VALUE) + 1
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-6)
    remove_gates(model)
    install_gates(model, "layers", [dampen, steer])
    expected[..., INDEX] = PARAMS["alpha"] * x + PARAMS["strength"] * VALUE + 1
    torch.testing.assert_close(model(h), expected, rtol=0, atol=1e-6)


def test_install_switch_and_remove() -> None:
    model = Toy()
    h = torch.zeros(1, 1, 4)
    base = model(h)
    a = make_gate("zero", "neuron", name="a.x", layer=0)
    b = make_gate("dampen", "neuron", name="b.x", layer=2)
    container = install_gates(model, "layers", [a, b])
    assert sorted(container.keys()) == ["0", "2"]
    assert model.nledit_gates is container
    edited = model(h)
    assert not torch.equal(edited, base)
    # the gate tensors are not part of the model's state dict
    assert not any(k.startswith("nledit_gates") for k in model.state_dict())

    with gates_disabled(model):
        assert torch.equal(model(h), base)
    assert a.enabled and b.enabled
    set_gates_enabled(model, False, names=["a.x"])
    only_b = Toy()
    install_gates(only_b, "layers", [make_gate("dampen", "neuron", name="b.x", layer=2)])
    assert torch.equal(model(h), only_b(h))
    set_gates_enabled(model, True)
    assert torch.equal(model(h), edited)
    # an unknown name is refused and switches nothing
    with pytest.raises(
        ValueError, match=r"no gate named \['nope'\]; the gates are \['a.x', 'b.x'\]"
    ):
        set_gates_enabled(model, False, names=["a.x", "nope"])
    assert a.enabled and b.enabled

    # installing a gate twice is refused, and changes nothing
    with pytest.raises(ValueError, match="already installed"):
        install_gates(model, "layers", [a, b])
    assert torch.equal(model(h), edited)
    remove_gates(model)
    assert torch.equal(model(h), base)
    assert "nledit_gates" not in model._modules


# ---- the range file ---------------------------------------------------------------------------


def two_gates() -> list[RangeGate]:
    return [
        make_gate("zero", "range", name="edit0.sports", layer=1),
        make_gate("adaptive", "range", name="edit1.tech", layer=2, positions="last"),
    ]


@pytest.fixture
def saved(tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    path = tmp_path / "nledit_ranges.safetensors"
    block = save_ranges(str(path), two_gates(), {"nledit_version": "test"})
    return path, block


def read(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    with safe_open(str(path), framework="pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
        return tensors, json.loads(f.metadata()["nledit"])


def test_save_and_load_round_trip(saved: tuple[Path, dict[str, Any]]) -> None:
    path, block = saved
    assert block["format"] == FORMAT
    assert [s["name"] for s in block["edits"]] == ["edit0.sports", "edit1.tech"]
    _, meta = read(path)
    assert meta["nledit_version"] == "test"
    assert meta["format"] == FORMAT
    # the block survives a trip through config.json
    block = json.loads(json.dumps(block))
    loaded = load_gates(str(path), block)
    for before, after in zip(two_gates(), loaded):
        assert after.spec == before.spec
        for key in ("index", "lo", "hi", "mu", "sigma", "value"):
            assert torch.equal(getattr(after, key), getattr(before, key)), key
            assert getattr(after, key).dtype == getattr(before, key).dtype
        h = hidden()
        assert torch.equal(after(h), before(h))


def test_load_fails_on_a_missing_tensor(saved: tuple[Path, dict[str, Any]]) -> None:
    path, block = saved
    tensors, meta = read(path)
    del tensors["edit1.tech.sigma"]
    save_file(tensors, str(path), metadata={"nledit": json.dumps(meta)})
    with pytest.raises(NleditLoadError, match=r"missing tensors \['edit1.tech.sigma'\]"):
        load_gates(str(path), block)


def test_load_fails_on_an_unexpected_tensor(saved: tuple[Path, dict[str, Any]]) -> None:
    path, block = saved
    tensors, meta = read(path)
    tensors["edit2.other.lo"] = torch.zeros(2)
    save_file(tensors, str(path), metadata={"nledit": json.dumps(meta)})
    with pytest.raises(NleditLoadError, match="unexpected tensors"):
        load_gates(str(path), block)


@pytest.mark.parametrize("key", ["edit0.sports.lo", "edit1.tech.index", "edit1.tech.value"])
def test_load_fails_on_an_altered_value(saved: tuple[Path, dict[str, Any]], key: str) -> None:
    path, block = saved
    tensors, meta = read(path)
    tensors[key][0] += 1
    save_file(tensors, str(path), metadata={"nledit": json.dumps(meta)})
    with pytest.raises(NleditLoadError, match="sha256 mismatch"):
        load_gates(str(path), block)


def test_load_fails_when_the_edits_differ_from_the_config(
    saved: tuple[Path, dict[str, Any]],
) -> None:
    path, block = saved
    changed = json.loads(json.dumps(block))
    changed["edits"][0]["params"]["alpha"] = 0.9
    with pytest.raises(NleditLoadError, match=r"differ from config\.json"):
        load_gates(str(path), changed)
    fewer = {**block, "edits": block["edits"][:1]}
    with pytest.raises(NleditLoadError, match=r"differ from config\.json"):
        load_gates(str(path), fewer)


def test_load_fails_on_a_truncated_file(saved: tuple[Path, dict[str, Any]]) -> None:
    path, block = saved
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(NleditLoadError, match="cannot read range tensors"):
        load_gates(str(path), block)


def test_load_fails_on_a_foreign_file(tmp_path: Path) -> None:
    path = tmp_path / "not-safetensors.safetensors"
    path.write_bytes(b"\x00" * 64)
    with pytest.raises(NleditLoadError, match="cannot read range tensors"):
        load_gates(str(path), {"edits": []})


@pytest.mark.parametrize("tag", ["nledit-ranges/0", None])
def test_load_fails_on_a_wrong_format_tag(
    saved: tuple[Path, dict[str, Any]], tag: str | None
) -> None:
    path, block = saved
    tensors, meta = read(path)
    if tag is None:
        del meta["format"]
    else:
        meta["format"] = tag
    save_file(tensors, str(path), metadata={"nledit": json.dumps(meta)})
    with pytest.raises(NleditLoadError, match="not an nledit range file"):
        load_gates(str(path), block)


def test_load_fails_when_k_does_not_match(tmp_path: Path) -> None:
    """A file written for other neurons (consistent digest, wrong k) is refused."""
    path = tmp_path / "ranges.safetensors"
    gate = make_gate("zero", "range", name="edit0.sports")
    block = save_ranges(str(path), [gate], {})
    tensors, meta = read(path)
    tensors = {k: torch.cat([v, v[:1]]) for k, v in tensors.items()}
    specs = meta["edits"]
    save_file(tensors, str(path), metadata={"nledit": json.dumps(meta)})
    from nledit.runtime.gate import tensors_digest

    block = {**block, "edits": specs, "ranges_sha256": tensors_digest(tensors)}
    with pytest.raises(NleditLoadError, match="do not have k=2"):
        load_gates(str(path), block)


def test_install_stacks_and_remove_takes_exactly_its_gates() -> None:
    """Gates installed by someone else survive another set's install and removal."""
    model = Toy()
    h = torch.zeros(1, 1, 4)
    base = model(h)
    a = make_gate("zero", "neuron", name="a.x", layer=1)
    b = make_gate("dampen", "neuron", name="b.x", layer=1)
    c = make_gate("steer", "neuron", name="c.x", layer=2)
    install_gates(model, "layers", [a])
    only_a = model(h)
    install_gates(model, "layers", [b, c])
    assert [g.spec.name for g in model.nledit_gates["1"].gates] == ["a.x", "b.x"]
    assert not torch.equal(model(h), only_a)
    remove_gates(model, [b, c])
    assert torch.equal(model(h), only_a)
    assert sorted(model.nledit_gates.keys()) == ["1"]
    remove_gates(model, [a])
    assert torch.equal(model(h), base)
    assert "nledit_gates" not in model._modules


def test_gate_spec_round_trips_the_checkpoint_json() -> None:
    """A GateSpec writes back exactly the JSON it was read from, keys of other releases too."""
    from nledit.runtime.gate import GateSpec

    written = {
        "name": "e.c",
        "layer": 2,
        "operator": "dampen",
        "mode": "range",
        "k": 3,
        "params": {"alpha": 0.5, "beta": 0.5, "strength": 1.0, "tau": 2.5},
        "positions": "last",
        "quorum": 2,
        "method": "range",
        "edit": "e",
        "concept": "c",
        "saliency": "max",
        "top_p": 0.3,
        "from_a_later_release": [1, 2],
    }
    spec = GateSpec.from_dict(written)
    assert spec.to_dict() == written
    assert spec.row == "range" and spec.param("alpha") == 0.5
    bare = GateSpec.from_dict(
        {"name": "n", "layer": 0, "operator": "adaptive", "mode": "neuron", "k": 1}
    )
    assert bare.row == "neuron" and bare.quorum == 0 and "quorum" not in bare.to_dict()
    assert bare.param("beta") == 0.5  # the class default when the file does not record it
