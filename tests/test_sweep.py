"""`nledit sweep` (`nledit/sweep/`): range vs neuron masking over tau, top_p, layer.

Tiny random models: the numbers mean nothing, the bookkeeping is what is checked (one row per
value x method, range sizes, neuron counts, one statistics pass, the same numbers as the
erasure table of a plain fit).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from matplotlib.image import imread

import nledit.fitting.prepare
import nledit.sweep.job
import nledit.sweep.points
from nledit.cli import main
from nledit.evaluation.suite import erasure_table
from nledit.fitting.ranges import RangeTable, make_gate
from nledit.fitting.recipe_fit import fit
from nledit.pipeline import eval_inputs
from nledit.recipe import EditSpec, load_recipe
from nledit.sweep.points import fingerprint, layer_spread

torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parents[1]
WIKI = str(ROOT / "recipes" / "data" / "wiki_sample.txt")
D = 32  # hidden size of the tiny models


def sweep_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["sweep", *argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def read_rows(out: Path, over: str) -> list[dict[str, str]]:
    with (out / f"sweep_{over}.csv").open() as f:
        return list(csv.DictReader(f))


def test_tau_sweep_writes_table_markdown_and_plot(
    tmp_path: Path, tiny_models, tiny_data, make_recipe, capsys
) -> None:
    extra = {
        "eval.perplexity_source": WIKI,
        "eval.perplexity_windows": 2,
        "eval.perplexity_window": 32,
    }
    recipe = make_recipe(tiny_models["llama"], tiny_data, extra=extra)
    out = tmp_path / "sw"
    argv = [str(recipe), "--over", "tau", "--values", "0.5,1.5", "3", "--out", str(out)]
    code, stdout, err = sweep_cli(argv, capsys)
    assert code == 0, err
    assert "sweep written to" in stdout
    rows = read_rows(out, "tau")
    assert [(float(r["tau"]), r["method"]) for r in rows] == [
        (t, m) for t in (0.5, 1.5, 3.0) for m in ("range", "neuron")
    ]
    for r in rows:
        assert r["concept"] == "Sports" and int(r["k"]) == round(0.25 * D)
        for key in ("acc", "conf", "cacc", "cconf"):
            assert 0.0 <= float(r[key]) <= 1.0
        assert float(r["ppl"]) > 1.0
        assert 0.0 < float(r["label_mass"]) <= 1.0
    rng = [r for r in rows if r["method"] == "range"]
    widths = [float(r["mean_width"]) for r in rng]
    assert widths[0] < widths[1] < widths[2]  # the range grows with tau ...
    assert widths[1] == pytest.approx(widths[0] * 3, rel=1e-5)  # ... as 2·tau·sigma
    neuron = [r for r in rows if r["method"] == "neuron"]  # neuron masking ignores tau
    assert len({(r["acc"], r["conf"], r["cacc"], r["cconf"], r["ppl"]) for r in neuron}) == 1
    doc = json.loads((out / "sweep_tau.json").read_text())
    assert doc["settings"]["conditions"] == 3 + 1
    assert doc["values"] == [0.5, 1.5, 3]
    assert "ppl" in doc["base"]
    md = (out / "sweep_tau.md").read_text()
    assert sum(line.startswith("|") for line in md.splitlines()) == 2 + 3  # head, rule, values
    assert f"nledit sweep {recipe} --over tau --values 0.5,1.5,3" in md
    assert "![sweep over tau](sweep_tau.png)" in md
    image = imread(out / "sweep_tau.png")
    assert image.ndim == 3 and image.shape[1] > image.shape[0] > 200


def test_existing_sweep_is_kept_without_overwrite(
    tmp_path: Path, tiny_models, tiny_data, make_recipe, capsys
) -> None:
    recipe = make_recipe(tiny_models["llama"], tiny_data)
    out = tmp_path / "sw"
    argv = [str(recipe), "--over", "tau", "--values", "1", "--out", str(out)]
    assert sweep_cli(argv, capsys)[0] == 0
    before = (out / "sweep_tau.json").read_text()
    code, _, err = sweep_cli(argv, capsys)
    assert code == 2 and "--overwrite" in err
    assert (out / "sweep_tau.json").read_text() == before
    assert sweep_cli([*argv, "--overwrite"], capsys)[0] == 0


@pytest.mark.parametrize("family", ["llama", "gpt2", "bert"])
def test_top_p_sweep_counts_neurons(
    family: str, tmp_path: Path, tiny_models, tiny_data, make_recipe, capsys
) -> None:
    out = tmp_path / "sw"
    sweep = {"over": "top_p", "values": [0.1, 0.25, 0.5, 1.0], "out": str(out)}
    recipe = make_recipe(tiny_models[family], tiny_data, extra={"sweep": sweep})
    code, _, err = sweep_cli([str(recipe)], capsys)  # everything from the recipe's sweep section
    assert code == 0, err
    rows = read_rows(out, "top_p")
    assert len(rows) == 4 * 2
    for r in rows:
        assert int(r["k"]) == max(1, round(float(r["top_p"]) * D))
    assert "ppl" not in rows[0]  # no perplexity source in the recipe
    full = [r for r in rows if float(r["top_p"]) == 1.0]
    assert {int(r["k"]) for r in full} == {D}
    assert imread(out / "sweep_top_p.png").ndim == 3


def test_over_on_the_command_line_drops_the_recipes_values(
    tmp_path: Path, tiny_models, tiny_data, make_recipe, capsys, monkeypatch
) -> None:
    """Values written for `over: top_p` are not taus: `--over tau` falls back to the defaults."""
    monkeypatch.setattr(nledit.sweep.points, "DEFAULT_TAUS", [1.0, 2.0])
    sweep = {"over": "top_p", "values": [0.1, 0.5], "out": str(tmp_path / "sw")}
    recipe = make_recipe(tiny_models["llama"], tiny_data, extra={"sweep": sweep})
    assert sweep_cli([str(recipe), "--over", "tau"], capsys)[0] == 0
    assert [float(r["tau"]) for r in read_rows(tmp_path / "sw", "tau")] == [1, 1, 2, 2]


def test_layer_sweep_makes_one_statistics_pass(
    tmp_path: Path, tiny_models, tiny_data, make_recipe, capsys, monkeypatch
) -> None:
    calls: list[list[int]] = []
    real = nledit.fitting.prepare.collect

    def counting(cm, examples, layers, *args, **kwargs):
        calls.append(list(layers))
        return real(cm, examples, layers, *args, **kwargs)

    monkeypatch.setattr(nledit.fitting.prepare, "collect", counting)  # the shared pass
    recipe = make_recipe(tiny_models["gpt2"], tiny_data)
    out = tmp_path / "sw"
    code, _, err = sweep_cli([str(recipe), "--over", "layer", "--out", str(out)], capsys)
    assert code == 0, err
    assert calls == [[0, 1, 2]]  # default: every layer of a 3-layer model, one pass
    rows = read_rows(out, "layer")
    assert [(int(r["layer"]), r["method"]) for r in rows] == [
        (layer, m) for layer in (0, 1, 2) for m in ("range", "neuron")
    ]


def test_sweep_numbers_equal_a_plain_fit_and_evaluation(
    tmp_path: Path, tiny_models, tiny_data, make_recipe
) -> None:
    """All conditions in one shared pass (per-layer replay, deduplication) change no number:
    each layer's rows equal the erasure table of that layer's own fit, run without the fast
    path (one full forward pass per condition)."""
    path = make_recipe(tiny_models["llama"], tiny_data)
    recipe, text = load_recipe(path, {"sweep.over": "layer", "sweep.values": [0, -1]})
    result = nledit.sweep.job.sweep(recipe, text, log=lambda *a: None)
    assert result.values == [0, 2]
    for layer in (0, 2):
        one, one_text = load_recipe(path, {"edits.0.layer": layer})
        f = fit(one, one_text)
        table = erasure_table(f.edit, f.cm, eval_inputs(f), f.recipe.eval, fast=False)
        for row in table.rows:
            swept = next(
                r for r in result.rows if r["layer"] == layer and r["method"] == row.method
            )
            for key in ("acc", "conf", "cacc", "cconf", "base_acc", "base_cconf"):
                assert swept[key] == pytest.approx(getattr(row, key), abs=1e-5), (layer, key)


def _table(tau: float) -> RangeTable:
    mu, sigma = torch.tensor([0.5, -1.0]), torch.tensor([1.0, 2.0])
    return RangeTable(
        "e", "Sports", 1, 2, torch.tensor([3, 7]), mu - tau * sigma, mu + tau * sigma, mu, sigma,
        torch.zeros(8),
    )  # fmt: skip


def test_fingerprint_tells_which_gates_compute_the_same() -> None:
    value = torch.zeros(2)

    def gate(tau: float, mode: str, op: str = "zero"):
        edit = EditSpec(concepts=["Sports"], tau=tau, operator=op)
        return make_gate(_table(tau), edit, value, mode)

    assert fingerprint(gate(1.0, "neuron")) == fingerprint(gate(3.0, "neuron"))
    assert fingerprint(gate(1.0, "range")) != fingerprint(gate(3.0, "range"))
    assert fingerprint(gate(1.0, "range")) != fingerprint(gate(1.0, "neuron"))
    assert fingerprint(gate(1.0, "neuron", "adaptive")) != fingerprint(
        gate(3.0, "neuron", "adaptive")
    )
    assert fingerprint(gate(1.0, "neuron", "dampen")) != fingerprint(gate(1.0, "neuron"))


def test_default_values() -> None:
    assert layer_spread(30) == [0, 6, 12, 17, 23, 29]
    assert layer_spread(3) == [0, 1, 2]
    assert nledit.sweep.points.default_values("tau", 30)[:3] == [0.3, 0.6, 0.9]
    assert nledit.sweep.points.default_values("tau", 30)[-1] == 4.5
    assert nledit.sweep.points.default_values("top_p", 30)[0] == 0.05


@pytest.mark.parametrize(
    ("sweep", "message"),
    [
        ({"over": "top_p", "values": [0.5, 1.5]}, "sweep.values: not valid for sweep.over"),
        ({"over": "layer", "values": [1.5]}, "layers are whole numbers"),
        ({"over": "tau", "values": [0]}, "tau must lie in (0, 100]"),
        ({"over": "width"}, "sweep.over"),
        ({"ovr": "tau"}, "did you mean 'over'"),
    ],
)
def test_bad_sweep_sections_are_named(
    sweep: dict, message: str, tmp_path: Path, tiny_models, tiny_data, make_recipe, capsys
) -> None:
    recipe = make_recipe(tiny_models["llama"], tiny_data, extra={"sweep": sweep})
    code, _, err = sweep_cli([str(recipe)], capsys)
    assert code == 2 and message in err, err


def test_a_swept_value_is_validated_with_the_recipe_bounds() -> None:
    from nledit.errors import EditError
    from nledit.recipe import EditSpec
    from nledit.sweep.points import swept_edit

    edit = EditSpec.model_validate({"concepts": ["Sports"]})
    assert swept_edit(edit, "tau", 3.0).tau == 3.0
    bound = EditSpec.model_fields["tau"].metadata[-1].le
    with pytest.raises(EditError, match=r"sweep\.values: tau"):
        swept_edit(edit, "tau", bound * 2)
