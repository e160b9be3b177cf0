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

from . import diagnostics
from .basecard import tuned_text
from .card_index import eval_results, first_number
from .operators import OPERATORS
from .version import __version__

# The transformers versions the exported run-time supports (pyproject.toml's requirement).
TRANSFORMERS_RANGE = ">=5.0,<6"
TAGS = ["nledit", "neuronlens", "range-masking", "custom_code"]
# Operator parameters that matter for each operator (the rest of a dumped spec is noise).
_OPERATOR_PARAMS = {name: op.options for name, op in OPERATORS.items()}
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
    weights: str = "copy"  # "reference": a weight-free checkpoint (an adapter of its base)
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
    # model in its own right, which the Hub calls finetune
    relation = (
        {"base_model_relation": "adapter" if info.weights == "reference" else "finetune"}
        if hub_base
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
        _loading(info),
        _serving(info),
        _erasure(info),
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
        wanted = _OPERATOR_PARAMS.get(name)
        params = {k: v for k, v in op.items() if k != "name" and (wanted is None or k in wanted)}
    else:
        name, params = str(op), {}
    if isinstance(explicit, Mapping):
        params = dict(explicit)
    return name, {k: v for k, v in params.items() if v is not None}


def _loading(info: CardInfo) -> str:
    repo = info.repo_id or "path/to/this/checkpoint"
    cls = info.auto_class
    weights = (
        "This checkpoint carries no base weights (`base_model_relation: adapter`): "
        "`from_pretrained` loads them from the local folder or the pinned Hub commit recorded in "
        "`config.json` (`nledit.base_weights`), honouring `HF_HUB_OFFLINE` and the Hub cache, and "
        "checks each file's sha256 first; a missing or different file stops the load with a "
        "message naming it. `nledit_base=<folder or repo id>` points it elsewhere.\n\n"
        if info.weights == "reference"
        else ""
    )
    return (
        "## How to load\n\n"
        "The edit lives in custom modelling code, so loading needs `trust_remote_code=True`. "
        "That runs `modeling_nledit.py` from this repository: read it once, then pin the "
        "revision (a commit hash) you read, so later pushes cannot change the code you run. "
        "(`nledit verify` checks that the file is nledit's own run-time, byte for byte.)\n\n"
        + weights
        + "```python\n"
        f"from transformers import AutoTokenizer, {cls}\n\n"
        f'repo = "{repo}"\n'
        'revision = "main"  # pin a commit hash\n'
        "tokenizer = AutoTokenizer.from_pretrained(repo, revision=revision, "
        "trust_remote_code=True)\n"
        f"model = {cls}.from_pretrained(repo, trust_remote_code=True, revision=revision)\n\n"
        "model.nledit_enabled(False)  # the base model, exactly\n"
        "model.nledit_enabled(True)  # the edited model (the default)\n"
        "```\n\n"
        f"Requires transformers {TRANSFORMERS_RANGE} (the run-time uses transformers 5's "
        "`PreTrainedConfig`; transformers 4.x cannot load it).\n\n"
        + _local_data(info)
        + "No nledit install is needed; `lm_eval --model hf --model_args "
        f"pretrained={repo},trust_remote_code=True` evaluates it as it stands.\n"
    )


def _local_data(info: CardInfo) -> str:
    if not info.local_data:
        return ""
    names = ", ".join(f"`{n}`" for n in info.local_data)
    return f"Fitted and evaluated on local data not on the Hub: {names}.\n\n"


def _generations(info: CardInfo) -> str:
    if not info.generations:
        return ""
    return (
        "## What the edit does to generated text\n\n"
        "Greedy continuations of the base model (every gate off) and of this checkpoint, with "
        "the highest probability each label word reached along the way.\n\n" + info.generations
    )


def _serving(info: CardInfo) -> str:
    return (
        "## Serving\n\n"
        "The edit is a forward hook that tests each selected activation against its range at "
        "run time, so it runs wherever transformers' PyTorch modelling code runs: "
        "`from_pretrained` as above, `pipeline(..., trust_remote_code=True)`, lm-evaluation-"
        "harness (`--model hf`), and servers built on transformers. It cannot be merged into "
        "the weights (the gate depends on the activation's value, not only on the neuron), "
        "expressed in GGUF for llama.cpp, or run by stock vLLM or TGI kernels, which do not "
        "execute custom modelling code; serve it with transformers, or port the gate to your "
        "engine.\n"
    )


_ERASURE_COLS = ("acc", "conf", "cacc", "cconf")


def _erasure(info: CardInfo) -> str:
    rows_in = info.metrics.get("erasure") or []
    if not rows_in:
        return ""
    way = rows_in[0].get("collateral", "macro")
    c_acc, c_conf = f"CAcc ({way})", f"CConf ({way})"
    head = ["concept", "method", "Acc", "ΔAcc", "Conf", "ΔConf", c_acc, f"Δ{c_acc}", c_conf]
    head.append(f"Δ{c_conf}")
    rows = []
    for r in rows_in:
        cells: list[Any] = [r.get("concept"), r.get("method")]
        for key in _ERASURE_COLS:
            v, b = first_number(r, key), first_number(r, f"base_{key}")
            cells += [_fmt(v), _fmt(v - b, signed=True) if v is not None and b is not None else ""]
        rows.append(cells)
    return (
        "## Concept erasure\n\n"
        "Acc and Conf (probability of the gold label) on the edited concept's examples; CAcc and "
        "CConf on the other concepts' examples: macro is the mean over the other concepts of "
        "each one's mean, pooled the mean over all their examples (this table: "
        f"{way}; results.json holds both). Δ is the change against the unedited model: "
        "a good edit has a large negative ΔAcc with ΔCAcc and ΔCConf near zero.\n\n"
        + _competence(info.metrics)
        + _table(head, rows)
        + _selectivity(rows_in)
    )


def _competence(metrics: dict[str, Any]) -> str:
    """The base model's competence and the calibration choice, a line each."""
    from .competence import calibration_text, line

    comp, cal = metrics.get("competence"), metrics.get("calibration")
    out = f"{line(comp)}.\n\n" if comp else ""
    return out + (f"Calibration: {calibration_text(cal)}.\n\n" if cal else "")


def _selectivity(rows: list[dict[str, Any]]) -> str:
    """The diagnostics of each row (firing rates, label mass, raw accuracy, verdict)."""
    table = diagnostics.markdown_rows(rows)
    if not table:
        return ""
    return f"\n\n### Is the edit selective?\n\n{diagnostics.EXPLAIN}\n\n{table}\n"


def _general(info: CardInfo) -> str:
    m = info.metrics
    ppl = m.get("perplexity") or {}
    lm = m.get("lm_eval") or {}
    base_lm, edited_lm = lm.get("base") or {}, lm.get("edited") or {}
    rows: list[list[Any]] = []
    base_ppl = first_number(ppl, "base")
    methods = [k for k in ppl if k != "base" and first_number(ppl, k) is not None]
    for k in methods:
        label = f"perplexity ({k} masking)" if k in ("range", "neuron") else f"perplexity ({k})"
        rows.append([label, _fmt(base_ppl, 2), _fmt(first_number(ppl, k), 2)])
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


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _num(v: Any) -> float | None:
    return float(v) if _is_number(v) else None


def _recipe(info: CardInfo) -> str:
    text = info.recipe_yaml
    if not text.strip():
        return ""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    body = text if text.endswith("\n") else text + "\n"
    return f"## Recipe\n\n{fence}yaml\n{body}{fence}\n"


def _table(head: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _cell(value: Any) -> str:
    if value is None:
        return ""
    return str(value).replace("|", "\\|").replace("\n", " ")


def _fmt(value: float | None, digits: int = 4, *, signed: bool = False) -> str:
    if value is None:
        return ""
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"
