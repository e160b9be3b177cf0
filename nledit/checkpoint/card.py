"""The model card (README.md) of an exported checkpoint.

Front matter (base model, tags, data, a ``model-index`` of what was measured) comes from
``ModelCardData``; the body: the edit (and how nledit trained the base), loading, the erasure
table, general-capability numbers, the recipe. Unmeasured metrics are left out, never ``None``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from dataclasses import fields as dataclass_fields
from pathlib import Path
from typing import Any

from huggingface_hub import ModelCard, ModelCardData

from ..runtime.operators import OPERATORS, recipe_options
from ..version import __version__
from .base_card import tuned_text
from .card_erasure import erasure_section
from .card_erasure import fmt as _fmt
from .card_erasure import interval as _interval
from .card_erasure import is_number as _is_number
from .card_erasure import num as _num
from .card_erasure import table as _table
from .card_index import eval_results, first_number
from .card_loading import SERVING, loading_section
from .card_loading import TRANSFORMERS_RANGE as TRANSFORMERS_RANGE

TAGS = ["nledit", "neuronlens", "range-masking", "custom_code"]
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass
class CardInfo:
    """Everything the card says; ``metrics`` uses the layout of ``nledit.evaluate``."""

    base_model: str
    base_revision: str | None = None
    license: str | None = None
    language: list[str] = field(default_factory=list)
    datasets: list[str] = field(default_factory=list)
    local_data: list[str] = field(default_factory=list)  # data that is not on the Hub (names)
    edits: list[dict[str, Any]] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    recipe_yaml: str = ""
    repo_id: str | None = None
    nledit_version: str = __version__
    method: str = "range"  # the erasure method this checkpoint carries
    auto_class: str = "AutoModelForCausalLM"
    hub_base_model: str | None = None  # the base's Hub id when base_model is not one
    # "reference": a weight-free checkpoint (an adapter of its Hub base); "reference-local":
    # one whose base weights are only on the exporting machine
    weights: str = "copy"
    generations: str = ""  # markdown: base and edited continuations (generate.render)
    fine_tuned: dict[str, Any] | None = None  # the base was fine-tuned by nledit (fine_tuning)


# What an export keeps of its card in the manifest (``card_fields``): everything but the
# metrics and the recipe, which the manifest and the recipe file already hold.
_STORED_ELSEWHERE = ("metrics", "recipe_yaml")


def card_fields(info: CardInfo) -> dict[str, Any]:
    """The card's settings as plain data, for the manifest (``card_from_fields`` reads them)."""
    return {k: v for k, v in asdict(info).items() if k not in _STORED_ELSEWHERE}


def card_from_fields(
    fields: Mapping[str, Any], metrics: dict[str, Any], recipe_yaml: str
) -> CardInfo:
    """The card of an export from its manifest's ``card`` block, with new ``metrics``; fields
    this version does not know are ignored."""
    known = {f.name for f in dataclass_fields(CardInfo)} - set(_STORED_ELSEWHERE)
    kept = {k: v for k, v in fields.items() if k in known}
    return CardInfo(**kept, metrics=metrics, recipe_yaml=recipe_yaml)


def render_card(info: CardInfo) -> ModelCard:
    """Build the card; its front matter parses back with ``ModelCard.load``."""
    hub_base = info.hub_base_model or (info.base_model if is_hub_id(info.base_model) else None)
    results = eval_results(info.metrics, info.method, info.datasets)
    # a weight-free checkpoint needs its base to load (adapter); a full copy is a derived
    # model in its own right, which the Hub calls finetune; one whose base weights exist only
    # on the machine that exported it is neither of the Hub model it names
    relation = (
        {"base_model_relation": "adapter" if info.weights == "reference" else "finetune"}
        if hub_base and info.weights in ("copy", "reference")
        else {}
    )
    data = ModelCardData(
        base_model=hub_base,
        **relation,
        library_name="transformers",
        license=info.license,
        language=list(info.language) or None,
        datasets=list(info.datasets) or None,
        tags=list(TAGS),
        pipeline_tag="text-generation" if "CausalLM" in info.auto_class else None,
        model_name=_model_name(info) if results else None,
        eval_results=results or None,
    )
    content = f"---\n{data.to_yaml()}\n---\n\n{_body(info)}"
    return ModelCard(content)


def write_card(out_dir: Path, info: CardInfo) -> Path:
    """Write ``out_dir/README.md`` and return its path."""
    path = Path(out_dir) / "README.md"
    render_card(info).save(path)
    return path


def is_hub_id(name: str) -> bool:
    """True for ``owner/name`` ids; local paths, GGUF files and ``pypi:`` sources are not."""
    return bool(_HUB_ID.match(name)) and not Path(name).exists() and ".." not in name


def _model_name(info: CardInfo) -> str:
    if info.repo_id:
        return info.repo_id.split("/")[-1]
    base = info.hub_base_model or info.base_model
    return f"{base.split('/')[-1].split(':')[-1]}-nledit"


# -- body ---------------------------------------------------------------------------------------


def _body(info: CardInfo) -> str:
    parts = [
        _intro(info),
        _edits(info),
        loading_section(info.repo_id, info.auto_class, info.weights, info.local_data),
        SERVING,
        erasure_section(info.metrics),
        _generations(info),
        _general(info),
        _recipe(info),
    ]
    return "\n".join(p for p in parts if p)


def _intro(info: CardInfo) -> str:
    title = info.repo_id or _model_name(info)
    base = f"`{info.base_model}`" + tuned_text(info.fine_tuned)
    if info.hub_base_model not in (None, info.base_model) and not info.fine_tuned:
        base = f"`{info.hub_base_model}` (from `{info.base_model}`)"
    if info.base_revision:
        base += f" (revision `{info.base_revision}`)"
    how = (
        "by NeuronLens range masking: for a few salient neurons of one layer, an operator acts "
        "only while the activation lies inside the band the concept occupies "
        "(mean ± tau·std), and leaves it untouched outside that band."
        + (
            " With a quorum, it acts on a token only when at least that many of the neurons "
            "(the quorum column below) lie inside their bands there."
            if any(e.get("quorum") for e in info.edits)
            else ""
        )
        if info.method == "range"
        else "by neuron masking, the baseline NeuronLens compares against: an operator acts on "
        "the whole activation of a few salient neurons of one layer, whatever its value."
    )
    return (
        f"# {title}\n\n"
        f"{base} edited with nledit {info.nledit_version} {how} The base weights are "
        "unchanged; the gates ship in `nledit_ranges.safetensors` and are applied by "
        "`modeling_nledit.py`.\n"
    )


def _edits(info: CardInfo) -> str:
    if not info.edits:
        return ""
    head = ["edit", "concepts", "layer", "saliency", "top p", "tau", "operator", "neurons"]
    quorum = any(e.get("quorum") for e in info.edits)
    head += ["quorum"] if quorum else []
    rows = []
    for i, e in enumerate(info.edits):
        op, params = _operator(e)
        if params:
            op += " (" + ", ".join(f"{k}={v}" for k, v in params.items()) + ")"
        rows.append(
            [
                e.get("name") or f"edit{i}",
                ", ".join(str(c) for c in e.get("concepts") or []),
                e.get("layer"),
                e.get("saliency"),
                e.get("top_p"),
                e.get("tau"),
                op,
                e.get("n_neurons"),
            ]
            + ([_quorum(e.get("quorum"))] if quorum else [])
        )
    return ("## Edits" if len(rows) > 1 else "## Edit") + "\n\n" + _table(head, rows)


def _quorum(q: Any) -> str:
    """ "auto: 31 (Sports)": the setting and the fitted count of in-range neurons per concept."""
    if not isinstance(q, Mapping):
        return ""
    counts = ", ".join(f"{n} ({c})" for c, n in (q.get("neurons") or {}).items())
    return f"{q.get('setting')}: {counts}" if counts else str(q.get("setting"))


def _operator(edit: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    op = edit.get("operator") or "zero"
    explicit = edit.get("operator_params", edit.get("params"))
    if isinstance(op, Mapping):
        name = str(op.get("name", "zero"))
        # the options that matter for the operator (the rest of a dumped spec is noise)
        wanted = recipe_options(name) if name in OPERATORS else None
        params = {k: v for k, v in op.items() if k != "name" and (wanted is None or k in wanted)}
    else:
        name, params = str(op), {}
    if isinstance(explicit, Mapping):
        params = dict(explicit)
    return name, {k: v for k, v in params.items() if v is not None}


def _generations(info: CardInfo) -> str:
    if not info.generations:
        return ""
    return (
        "## What the edit does to generated text\n\n"
        "Greedy continuations of the base model (every gate off) and of this checkpoint, with "
        "the highest probability each label word reached along the way.\n\n" + info.generations
    )


def _general(info: CardInfo) -> str:
    m = info.metrics
    ppl = m.get("perplexity") or {}
    lm = m.get("lm_eval") or {}
    base_lm, edited_lm = lm.get("base") or {}, lm.get("edited") or {}
    rows: list[list[Any]] = []
    base_ppl = first_number(ppl, "base")
    methods = [k for k in ppl if k != "base" and first_number(ppl, k) is not None]
    ppl_ci = m.get("perplexity_ci") or {}
    for k in methods:
        label = f"perplexity ({k} masking)" if k in ("range", "neuron") else f"perplexity ({k})"
        edited = _fmt(first_number(ppl, k), 2)
        if k in ppl_ci and _interval(ppl_ci[k]):
            edited += f" (ΔPPL 95 % interval{_interval(ppl_ci[k])})"
        rows.append([label, _fmt(base_ppl, 2), edited])
    if base_ppl is not None and not methods:
        rows.append(["perplexity", _fmt(base_ppl, 2), ""])
    for task, keys, label, nd in (
        ("mmlu", ("acc", "acc,none"), "MMLU accuracy (lm-eval)", 4),
        ("wikitext", ("word_perplexity", "word_perplexity,none"), "WikiText word perplexity", 2),
    ):
        b = first_number(base_lm.get(task) or {}, *keys)
        e = first_number(edited_lm.get(task) or {}, *keys)
        if b is not None or e is not None:
            rows.append([label, _fmt(b, nd), _fmt(e, nd)])
    for task in sorted(set(base_lm) | set(edited_lm)):  # any other lm-eval task: its first metric
        if task in ("mmlu", "wikitext") or task.startswith(("_", "nledit_")):
            continue
        b_all, e_all = base_lm.get(task) or {}, edited_lm.get(task) or {}
        metric = next((k for k, v in {**b_all, **e_all}.items() if _is_number(v)), None)
        if metric is not None and "stderr" not in metric:
            b, e = b_all.get(metric), e_all.get(metric)
            rows.append([f"{task} {metric} (lm-eval)", _fmt(_num(b)), _fmt(_num(e))])
    if not rows:
        return ""
    return "## General capability\n\n" + _table(["metric", "base", "edited"], rows)


def _recipe(info: CardInfo) -> str:
    text = info.recipe_yaml
    if not text.strip():
        return ""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    body = text if text.endswith("\n") else text + "\n"
    return f"## Recipe\n\n{fence}yaml\n{body}{fence}\n"
