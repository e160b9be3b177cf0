"""The streaming pass (`nledit/fitting/collect.py`): exact statistics, the right token, an early
stop.

The statistics are checked against numpy over every collected activation (a reservoir large
enough to keep them all), the read token against a text's hidden state computed alone, and the
early stop by counting the forward calls of every block and of the model's head.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import DECODERS, FAMILIES, recipe_dict

from nledit.data.concept import ConceptModel
from nledit.data.dataset import Examples
from nledit.fitting.collect import SORT_WINDOW, ConceptStats, collect
from nledit.fitting.recipe_fit import fit, load_for_recipe
from nledit.fitting.reservoir import Reservoir
from nledit.models.arch import read_positions
from nledit.recipe import parse_recipe

# Two cores shared with other work: one intra-op thread is the fastest for tiny models.
torch.set_num_threads(1)

ALL_ROWS = 100_000  # a reservoir capacity that keeps every row


@pytest.fixture(scope="session")
def concept_model(tiny_models: dict[str, Path], tiny_data: Path) -> Callable[[str], Any]:
    """Data and model of the tiny recipe per family, loaded once: (data, cm, layout)."""
    loaded: dict[str, Any] = {}

    def get(family: str) -> Any:
        if family not in loaded:
            recipe = parse_recipe(recipe_dict(tiny_models[family], tiny_data))
            _, data, _, cm, layout, _ = load_for_recipe(recipe)
            loaded[family] = (data, cm, layout)
        return loaded[family]

    return get


def layers_of(layout: Any) -> list[int]:
    return sorted({0, layout.n_layers - 1})


# ---- the statistics ---------------------------------------------------------------------------


@pytest.mark.parametrize("family", ["llama", "bert"])
def test_statistics_equal_numpy_over_all_activations(
    concept_model: Callable[[str], Any], family: str
) -> None:
    data, cm, layout = concept_model(family)
    layers = layers_of(layout)
    reservoir = Reservoir(ALL_ROWS)
    stats = collect(cm, data.fit, layers, batch_size=5, reservoir=reservoir)
    n = len(cm.label_names)
    for layer in layers:
        samples = reservoir.samples(layer, n)
        mean, std, mean_abs = stats.mean(layer), stats.std(layer), stats.mean_abs(layer)
        for c in range(n):
            x = samples[c].astype(np.float64)
            assert x.shape == (data.fit.labels.count(c), layout.hidden_size)
            assert stats.count[layer][c].item() == len(x)
            np.testing.assert_allclose(mean[c].numpy(), x.mean(axis=0), rtol=0, atol=1e-6)
            np.testing.assert_allclose(std[c].numpy(), x.std(axis=0, ddof=0), rtol=0, atol=1e-6)
            np.testing.assert_allclose(mean_abs[c].numpy(), np.abs(x).mean(0), rtol=0, atol=1e-6)
        assert (std > 0).all()  # the tiny models do spread their activations


def test_fitted_ranges_equal_numpy(tiny_models: dict[str, Path], tiny_data: Path) -> None:
    """The ranges of a whole fit: mu and sigma of the chosen neurons, mu ± tau·sigma."""
    d = recipe_dict(
        tiny_models["llama"], tiny_data, concepts=["Sports", "Tech"], saliency="probe", tau=1.5
    )
    fitted = fit(parse_recipe(d), "")
    assert fitted.reservoir is not None  # the probe ranking keeps a reservoir of every row
    n = len(fitted.data.label_names)
    assert [t.concept for t in fitted.tables] == ["Sports", "Tech"]
    for table in fitted.tables:
        x = fitted.reservoir.samples(table.layer, n)[table.concept_id].astype(np.float64)
        assert len(x) == fitted.data.fit.labels.count(table.concept_id)
        x = x[:, table.index.numpy()]
        mu, sigma = x.mean(axis=0), x.std(axis=0, ddof=0)
        np.testing.assert_allclose(table.mu.numpy(), mu, rtol=0, atol=1e-6)
        np.testing.assert_allclose(table.sigma.numpy(), sigma, rtol=0, atol=1e-6)
        np.testing.assert_allclose(table.lo.numpy(), mu - 1.5 * sigma, rtol=0, atol=1e-5)
        np.testing.assert_allclose(table.hi.numpy(), mu + 1.5 * sigma, rtol=0, atol=1e-5)
        assert table.index.numel() == round(0.25 * fitted.layout.hidden_size)
        gate = next(g for g in fitted.edit.gates if g.spec.concept == table.concept)
        assert torch.equal(gate.index, table.index)
        torch.testing.assert_close(gate.lo, table.lo.float())
        torch.testing.assert_close(gate.hi, table.hi.float())


def test_statistics_merge_exactly(concept_model: Callable[[str], Any]) -> None:
    """Two halves (split at a sorting-window boundary) merged equal the whole pass."""
    data, cm, layout = concept_model("gpt2")
    layers = layers_of(layout)
    half = 4 * SORT_WINDOW  # a whole sorting window: every batch sees the same rows either way
    first = Examples(data.fit.texts[:half], data.fit.labels[:half])
    second = Examples(data.fit.texts[half:], data.fit.labels[half:])
    whole = collect(cm, data.fit, layers, batch_size=4)
    merged = collect(cm, first, layers, batch_size=4).merge(collect(cm, second, layers, 4))
    for layer in layers:
        assert torch.equal(merged.count[layer], whole.count[layer])
        for name in ("total", "sumsq", "sumabs"):
            a, b = getattr(merged, name)[layer], getattr(whole, name)[layer]
            torch.testing.assert_close(a, b, rtol=1e-12, atol=0)  # float64 sums, reassociated
        torch.testing.assert_close(merged.mean(layer), whole.mean(layer), rtol=1e-12, atol=0)
        torch.testing.assert_close(merged.std(layer), whole.std(layer), rtol=1e-9, atol=1e-12)


def test_merge_into_empty_and_round_trip(concept_model: Callable[[str], Any]) -> None:
    data, cm, _ = concept_model("llama")
    stats = collect(cm, data.fit, [1], batch_size=8)
    empty = ConceptStats(stats.n_concepts, stats.d)
    merged = empty.merge(stats)
    restored = ConceptStats.from_tensors(stats.to_tensors())
    for other in (merged, restored):
        for name in ("count", "total", "sumsq", "sumabs"):
            assert torch.equal(getattr(other, name)[1], getattr(stats, name)[1])


def test_memory_is_flat_in_the_number_of_examples(concept_model: Callable[[str], Any]) -> None:
    data, cm, layout = concept_model("llama")
    layers = layers_of(layout)
    small = collect(cm, Examples(data.fit.texts[::6], data.fit.labels[::6]), layers, 4)
    large = collect(cm, data.fit, layers, 4)
    for layer in layers:
        assert 5 * small.count[layer].sum() < large.count[layer].sum()
    small_t, large_t = small.to_tensors(), large.to_tensors()
    assert small_t.keys() == large_t.keys()
    for key, t in large_t.items():
        assert t.shape == small_t[key].shape, key
        assert t.shape[0] == len(cm.label_names)
        assert t.shape[1:] in ((), (layout.hidden_size,))
    assert sum(t.nbytes for t in small_t.values()) == sum(t.nbytes for t in large_t.values())
    # the reservoir is bounded the same way
    reservoir = Reservoir(3)
    collect(cm, data.fit, layers, 4, reservoir=reservoir)
    for layer in layers:
        for rows in reservoir.samples(layer, len(cm.label_names)).values():
            assert rows.shape == (3, layout.hidden_size)
    # its public file form reads back to the same sample (the tuner's cache uses it)
    tensors, seen = reservoir.to_tensors()
    again = Reservoir.from_tensors(reservoir.capacity, reservoir.seed, tensors, seen)
    for layer in layers:
        for c in range(len(cm.label_names)):
            want = reservoir.samples(layer, len(cm.label_names))[c]
            assert np.array_equal(again.samples(layer, len(cm.label_names))[c], want)
            assert again.example_ids(layer, c) == reservoir.example_ids(layer, c)
    assert again.seen == reservoir.seen


# ---- the read token ---------------------------------------------------------------------------

RIGHT = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]])
LEFT = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1], [0, 0, 0, 0, 1]])


def test_read_positions_decoder() -> None:
    """A decoder reads the last real token, whichever side the padding is on."""
    assert read_positions(RIGHT, is_encoder=False).tolist() == [2, 4, 0]
    assert read_positions(LEFT, is_encoder=False).tolist() == [4, 4, 4]
    assert read_positions(RIGHT.bool(), is_encoder=False).tolist() == [2, 4, 0]


def test_read_positions_encoder() -> None:
    """An encoder reads its first real token (CLS), whichever side the padding is on."""
    assert read_positions(RIGHT, is_encoder=True).tolist() == [0, 0, 0]
    assert read_positions(LEFT, is_encoder=True).tolist() == [2, 0, 4]


SHORT = "match goal"
LONG = "shares profit market bank earnings stocks merger investors today in the week"


@pytest.mark.parametrize("family", FAMILIES)
def test_batches_read_the_last_query_token_or_cls(
    concept_model: Callable[[str], Any], family: str
) -> None:
    _, cm, layout = concept_model(family)
    (batch,) = list(cm.batches([SHORT, LONG], batch_size=2))
    ids = batch.inputs["input_ids"]
    lengths = [len(r) for r in cm._encode([SHORT, LONG])]
    if not cm.use_prefix_cache:  # the head is fed with every row
        lengths = [n + len(cm.head_ids) for n in lengths]
    assert lengths[0] < lengths[1] == ids.shape[1]  # the short row is padded
    if layout.is_encoder:
        assert batch.read.tolist() == [0, 0]
        assert (ids[:, 0] == cm.tokenizer.cls_token_id).all()
    else:
        assert batch.read.tolist() == [lengths[0] - 1, lengths[1] - 1]
        assert ids[0, lengths[0] :].eq(cm.tokenizer.pad_token_id).all()


def _collected(cm: ConceptModel, texts: list[str], batch_size: int, layer: int) -> list[Any]:
    """The row collect() reads for each text (each text its own concept id)."""
    reservoir = Reservoir(ALL_ROWS)
    collect(cm, Examples(texts, list(range(len(texts)))), [layer], batch_size, reservoir)
    return [reservoir.samples(layer, len(cm.label_names))[c][0] for c in range(len(texts))]


@pytest.mark.parametrize("family", FAMILIES)
def test_padded_batch_reads_what_the_text_alone_gives(
    concept_model: Callable[[str], Any], family: str
) -> None:
    """The short text is right-padded in the batch; its read row must not see the padding."""
    _, cm, layout = concept_model(family)
    layer = layout.n_layers - 1
    together = _collected(cm, [SHORT, LONG], batch_size=2, layer=layer)
    alone = [_collected(cm, [t], batch_size=1, layer=layer)[0] for t in (SHORT, LONG)]
    for a, b in zip(together, alone):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    # and the two texts really give different rows (the check is not vacuous)
    assert np.abs(alone[0] - alone[1]).max() > 1e-2


# ---- the early stop ---------------------------------------------------------------------------


def head_of(model: Any, is_encoder: bool) -> torch.nn.Module:
    """The module after the blocks that a full forward pass always runs."""
    if is_encoder:
        return model.classifier
    return model.get_output_embeddings()


@contextlib.contextmanager
def counting(model: Any, layout: Any) -> Iterator[dict[str, int]]:
    calls: dict[str, int] = {}
    modules = {
        f"block{i}": model.get_submodule(layout.layer_path(i)) for i in range(layout.n_layers)
    }
    modules["head"] = head_of(model, layout.is_encoder)
    handles = []
    for name, module in modules.items():
        calls[name] = 0

        def hook(*_: Any, name: str = name) -> None:
            calls[name] += 1

        handles.append(module.register_forward_hook(hook))
    try:
        yield calls
    finally:
        for h in handles:
            h.remove()


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("deepest", [0, 1])
def test_forward_stops_after_the_deepest_layer(
    concept_model: Callable[[str], Any], family: str, deepest: int
) -> None:
    data, cm, layout = concept_model(family)
    examples = Examples(data.fit.texts[:10], data.fit.labels[:10])
    # 10 examples in batches of 4, plus one pass over the prompt head for its cache
    passes = 3 + int(cm.use_prefix_cache)
    assert cm.use_prefix_cache == (not layout.is_encoder)
    with counting(cm.model, layout) as calls:
        collect(cm, examples, sorted({0, deepest}), batch_size=4)
    ran = {f"block{i}": passes for i in range(deepest + 1)}
    never = {f"block{i}": 0 for i in range(deepest + 1, layout.n_layers)}
    assert calls == {**ran, **never, "head": 0}


@pytest.mark.parametrize("family", DECODERS)
def test_forward_stops_without_the_prompt_cache(
    concept_model: Callable[[str], Any], family: str
) -> None:
    """With the prompt head fed on every row (no cache) the pass stops all the same."""
    data, cm, layout = concept_model(family)
    examples = Examples(data.fit.texts[:6], data.fit.labels[:6])
    cached = cm.use_prefix_cache
    cm.use_prefix_cache = False
    try:
        with counting(cm.model, layout) as calls:
            stats = collect(cm, examples, [0], batch_size=3)
    finally:
        cm.use_prefix_cache = cached
    assert calls["block0"] == 2
    assert all(calls[f"block{i}"] == 0 for i in range(1, layout.n_layers))
    assert calls["head"] == 0
    # the hidden state at the read token is the same with or without the cache
    with_cache = collect(cm, examples, [0], batch_size=3)
    torch.testing.assert_close(stats.mean(0), with_cache.mean(0), rtol=1e-5, atol=1e-5)


def test_a_layers_sample_does_not_depend_on_the_other_layers_collected() -> None:
    torch.manual_seed(0)
    batches = [
        (torch.randn(6, 4), torch.randint(0, 2, (6,)), list(range(6 * b, 6 * b + 6)))
        for b in range(10)
    ]
    alone, together = Reservoir(3, seed=7), Reservoir(3, seed=7)
    for h, y, ids in batches:
        alone.add(5, h, y, ids)
        together.add(2, h * 2, y, ids)  # another layer draws in between
        together.add(5, h, y, ids)
    for c in (0, 1):
        assert alone.example_ids(5, c) == together.example_ids(5, c)
        assert (alone.samples(5, 2)[c] == together.samples(5, 2)[c]).all()
    first = [i for h, y, ids in batches for i, c in zip(ids, y.tolist()) if c == 0][:3]
    assert alone.example_ids(5, 0) != first  # rows were replaced: the generator was used
