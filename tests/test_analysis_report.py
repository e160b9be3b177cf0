"""The inspection report: assembly from activations and the self-contained HTML output."""

from __future__ import annotations

import base64
import io
import json
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from nledit.analysis import page as page_mod
from nledit.analysis.build import all_layer_stats, build_report, rank_picks
from nledit.analysis.page import write_report
from nledit.analysis.report import InspectReport
from nledit.folders.atomic import OutputError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CONCEPTS = ["World", "Sports", "Sci/Tech"]
D = 12


def _synthetic(seed: int = 0, n: int = 80) -> tuple[dict, dict]:
    rng = np.random.default_rng(seed)
    samples, texts = {}, {}
    for ci, c in enumerate(CONCEPTS):
        x = rng.normal(size=(n, D))
        x[:, :4] += 3.0 * ci  # concept-specific shift on the first neurons
        x[:, 10] = rng.exponential(size=n)  # a skewed neuron
        x[:, 11] = 0.25  # a constant neuron
        samples[c] = x
        texts[c] = [
            f"<script>alert({i})</script> {c} & sample {i} " * (1 + i % 9) for i in range(n)
        ]
    return samples, texts


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def _parse(html: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = _Collector()
    parser.feed(html)
    return parser.tags


def _assert_readable_png(data: bytes) -> None:
    assert data.startswith(PNG_SIGNATURE)
    import matplotlib.image as mpimg

    img = mpimg.imread(io.BytesIO(data), format="png")
    assert img.ndim == 3 and img.shape[0] > 50 and img.shape[1] > 50
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - PIL ships with matplotlib
        return
    with Image.open(io.BytesIO(data)) as im:
        im.verify()


@pytest.fixture(scope="module")
def built() -> InspectReport:
    samples, texts = _synthetic()
    rows = [
        {"concept": "World", "method": "range", "Acc": 0.12, "dAcc": -0.8, "dCAcc": -0.01},
        {"concept": "Sports", "method": "neuron <mask>", "Acc": 0.2, "CConf": 0.7},
    ]
    return build_report(
        samples, texts, None, None, layer=5, model_name="tiny<model>", p=0.3, n_kde=2,
        erasure_rows=rows, layer_stats=all_layer_stats({5: samples, 2: samples}),
    )  # fmt: skip


def test_build_report_contents(built: InspectReport) -> None:
    assert built.concepts == CONCEPTS
    assert set(built.stats) == set(CONCEPTS)
    assert len(built.pair_overlaps) == 3 and built.pooled_overlap is not None
    assert built.overlap_matrix is not None and built.overlap_matrix.shape == (3, 3)
    np.testing.assert_allclose(np.diag(built.overlap_matrix), 1.0)
    assert len(built.kde_figures) == 3
    for fig in built.kde_figures:
        assert fig.groups == ["top", "top", "middle", "middle", "bottom", "bottom"]
        _assert_readable_png(fig.png)
    # One bound-text block per rank group and concept, each within the concept's samples.
    assert len(built.bound_examples) == 9
    for b in built.bound_examples:
        assert b.lo <= b.mu <= b.hi and b.fitted
        assert len(b.lower) == len(b.mean) == len(b.upper) == 3
        assert abs(b.mean[0].value - b.mu) <= abs(b.mean[-1].value - b.mu)


def test_supplied_ranges_and_saliency() -> None:
    samples, texts = _synthetic(seed=3)
    sal = {c: np.arange(D, 0, -1, dtype=float) for c in CONCEPTS}  # neuron 0 most salient
    idx = np.array([0, 1, 2])
    ranges = {c: (idx, np.full(3, -1.0), np.full(3, 1.0), np.zeros(3)) for c in CONCEPTS}
    rep = build_report(samples, texts, sal, ranges, layer=1, model_name="m", n_kde=1)
    assert rep.kde_figures[0].neurons == [0, 6, 11]
    by_group = {b.rank_group: b for b in rep.bound_examples if b.concept == "World"}
    assert by_group["top"].fitted and (by_group["top"].lo, by_group["top"].hi) == (-1.0, 1.0)
    assert not by_group["middle"].fitted  # neuron 6 has no supplied range
    np.testing.assert_allclose(rep.overlap_matrix, 1.0)
    with pytest.raises(ValueError, match="saliency"):
        build_report(samples, None, {"World": sal["World"]}, None, layer=1, model_name="m")
    with pytest.raises(ValueError, match="texts"):
        build_report(samples, {"World": ["x"]}, None, None, layer=1, model_name="m")


def test_rank_picks_groups() -> None:
    sal = np.arange(10, 0, -1, dtype=float)  # neuron i has rank i
    picks = rank_picks(sal, 3)
    assert [(g, r) for g, r, _ in picks] == [
        ("top", 0), ("top", 1), ("top", 2), ("middle", 4), ("middle", 5), ("middle", 6),
        ("bottom", 7), ("bottom", 8), ("bottom", 9),
    ]  # fmt: skip
    small = rank_picks(np.array([3.0, 2.0, 1.0]), 3)
    assert sorted(j for _, _, j in small) == [0, 1, 2]


def test_all_layer_stats_rows() -> None:
    rng = np.random.default_rng(5)
    by_layer = {3: {"a": rng.normal(size=(400, 6))}, 1: {"a": rng.uniform(size=(400, 6))}}
    rows = all_layer_stats(by_layer)
    assert [r["layer"] for r in rows] == [1, 3]
    assert rows[0]["kurtosis"] == pytest.approx(1.8, abs=0.15)
    assert rows[1]["kurtosis"] == pytest.approx(3.0, abs=0.4)
    assert rows[1]["practical_normality"] == 1.0


def test_html_is_self_contained(built: InspectReport, tmp_path: Path) -> None:
    out = tmp_path / "rep"
    html_path = write_report(out, built)
    assert html_path == out / "report.html"
    html = html_path.read_text(encoding="utf-8")
    assert "http://" not in html and "https://" not in html
    assert "<script" not in html  # sample texts are escaped, no scripts are emitted
    assert "&lt;script&gt;" in html and "tiny&lt;model&gt;" in html
    tags = _parse(html)
    imgs = [a for t, a in tags if t == "img"]
    assert len(imgs) == 1 + len(built.kde_figures)
    for tag, attrs in tags:
        assert tag not in {"script", "link", "iframe", "object", "embed"}
        for key in ("src", "href"):
            value = (attrs.get(key) or "").strip().lower()
            assert not value.startswith(("http:", "https:", "//")), (tag, key, value)
    for attrs in imgs:
        src = attrs["src"] or ""
        prefix = "data:image/png;base64,"
        assert src.startswith(prefix)
        _assert_readable_png(base64.b64decode(src[len(prefix) :], validate=True))
    for section in ("Distribution statistics", "Across layers", "Erasure results"):
        assert section in html
    assert "neuron &lt;mask&gt;" in html and "-0.8000" in html


def test_json_and_png_files(built: InspectReport, tmp_path: Path) -> None:
    out = tmp_path / "rep"
    write_report(out, built)
    data = json.loads((out / "analysis.json").read_text(encoding="utf-8"))
    assert data["model_name"] == "tiny<model>" and data["layer"] == 5
    assert data["concepts"] == CONCEPTS
    world = data["distribution_stats"]["World"]
    assert world["n_valid"] == D - 1 and world["per_neuron"]["ks"][11] is None
    assert len(data["pairwise_auroc"]) == 3
    assert data["topk_overlap"]["file"] == "overlap.png"
    assert len(data["bound_examples"]) == 9
    assert data["erasure"][0]["dAcc"] == -0.8
    for name in ["overlap.png", *(f["file"] for f in data["kde_figures"])]:
        assert (out / name).read_bytes().startswith(PNG_SIGNATURE)


def test_existing_dir_refused_then_overwritten(built: InspectReport, tmp_path: Path) -> None:
    out = tmp_path / "rep"
    out.mkdir()
    (out / "keep.txt").write_text("old")
    with pytest.raises(OutputError, match="--overwrite"):
        write_report(out, built)
    with pytest.raises(OutputError, match=r"not an nledit output \(analysis\.json"):
        write_report(out, built, overwrite=True)  # a user's folder is never replaced
    assert (out / "keep.txt").read_text() == "old"
    (out / "keep.txt").unlink()
    out.rmdir()
    write_report(out, built)
    (out / "report.html").write_text("an earlier report")
    write_report(out, built, overwrite=True)  # an earlier report is
    assert "an earlier report" not in (out / "report.html").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rep"]  # no temp dirs left


def test_failure_leaves_nothing(
    built: InspectReport, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(_: InspectReport) -> str:
        raise RuntimeError("render failed")

    monkeypatch.setattr(page_mod, "render_html", boom)
    with pytest.raises(RuntimeError, match="render failed"):
        write_report(tmp_path / "rep", built)
    assert list(tmp_path.iterdir()) == []


def test_minimal_report_renders_gracefully(tmp_path: Path) -> None:
    rep = InspectReport(model_name="m", layer=0, concepts=["only"])
    html = write_report(tmp_path / "r", rep).read_text(encoding="utf-8")
    assert "No erasure results were supplied." in html
    assert "No sample texts were supplied." in html
    assert "<img" not in html
    data = json.loads((tmp_path / "r" / "analysis.json").read_text(encoding="utf-8"))
    assert data["erasure"] is None and data["topk_overlap"]["matrix"] is None


def test_kde_density_matches_scipy_and_heatmap_renders() -> None:
    from scipy.stats import gaussian_kde

    from nledit.analysis.plots import _density, plot_overlap_heatmap

    rng = np.random.default_rng(9)
    values = rng.gamma(2.0, size=700)
    grid = np.linspace(-2, 15, 128)
    np.testing.assert_allclose(_density(values, grid), gaussian_kde(values)(grid), atol=1e-12)
    assert _density(np.full(10, 2.0), grid) is None
    png = plot_overlap_heatmap(["a", "b"], np.array([[1.0, 0.25], [0.25, 1.0]]), p=0.3)
    _assert_readable_png(png)
    with pytest.raises(ValueError):
        plot_overlap_heatmap(["a"], np.eye(2))


def test_bound_pool_all_tags_source_concepts() -> None:
    samples, texts = _synthetic(seed=4, n=40)
    rep = build_report(samples, texts, None, None, 2, "m", n_kde=1, bound_pool="all")
    tags = {e.concept for b in rep.bound_examples for e in (*b.lower, *b.mean, *b.upper)}
    assert tags <= set(CONCEPTS) and None not in tags
    for b in rep.bound_examples:
        for e in b.mean:
            assert texts[e.concept][e.index] == e.text
            assert samples[e.concept][e.index, b.neuron] == pytest.approx(e.value)
