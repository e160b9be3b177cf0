"""The model card's "How to load" and "Serving" sections: how the checkpoint loads, what it
needs, and where it runs."""

from __future__ import annotations

# The transformers versions the exported run-time supports (pyproject.toml's requirement).
TRANSFORMERS_RANGE = ">=5.0,<6"


def loading_section(
    repo_id: str | None, auto_class: str, weights: str, local_data: list[str]
) -> str:
    """How to load the checkpoint: the code to run, what ``weights`` ("copy", "reference",
    "reference-local") means for its base, the transformers it needs, local data it used."""
    repo = repo_id or "path/to/this/checkpoint"
    cls = auto_class
    base = (
        "This checkpoint carries no base weights (`base_model_relation: adapter`): "
        "`from_pretrained` loads them from the pinned Hub commit recorded in `config.json` "
        "(`nledit.base_weights`), honouring `HF_HUB_OFFLINE` and the Hub cache, and checks each "
        "file's size and sha256 first (the sha256 the Hub cache names the file by, or one "
        'computed once on this machine; `nledit_check_base="full"` re-hashes every file); a '
        "missing or different file stops the load with a message naming it. "
        "`nledit_base=<folder or repo id>` points it elsewhere.\n\n"
        if weights == "reference"
        else LOCAL_BASE
        if weights == "reference-local"
        else ""
    )
    return (
        "## How to load\n\n"
        "The edit lives in custom modelling code, so loading needs `trust_remote_code=True`. "
        "That runs `modeling_nledit.py` from this repository: read it once, then pin the "
        "revision (a commit hash) you read, so later pushes cannot change the code you run. "
        "(`nledit verify` checks that the file is nledit's own run-time, byte for byte.)\n\n"
        + base
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
        "The tokenizer is a standard transformers one: `AutoTokenizer.from_pretrained(repo, "
        "trust_remote_code=False)` loads it without running any code. Without the argument, "
        "transformers asks whether to run this repository's code (and waits), because "
        "`config.json` names it for the model.\n\n"
        f"Requires transformers {TRANSFORMERS_RANGE} (the run-time uses transformers 5's "
        "`PreTrainedConfig`; transformers 4.x cannot load it).\n\n"
        + _local_data(local_data)
        + "No nledit install is needed; `lm_eval --model hf --model_args "
        f"pretrained={repo},trust_remote_code=True` evaluates it as it stands.\n"
    )


LOCAL_BASE = (
    "This checkpoint carries no base weights, and its base weights are not on the Hub (for "
    "example a GGUF file dequantised on the machine that exported it): it loads only where "
    "that folder exists, or with `nledit_base=<folder holding the same weights>`. To publish "
    "it, export it with its weights (`output.weights: copy`).\n\n"
)


def _local_data(local_data: list[str]) -> str:
    if not local_data:
        return ""
    names = ", ".join(f"`{n}`" for n in local_data)
    return f"Fitted and evaluated on local data not on the Hub: {names}.\n\n"


SERVING = (
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
