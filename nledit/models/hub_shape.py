"""A Hub model's shape for `nledit check` from its config.json alone (no weights are fetched):
layers, hidden size and parameter count, the last from the model built on the meta device."""

from __future__ import annotations

import os
from pathlib import Path

from .loading import ModelLoadError


class HubShapeUnknown(ModelLoadError):
    """The config.json of a Hub model could not be fetched or read (offline, absent, private)."""


def hub_config(repo: str, revision: str | None) -> Path:
    """The local path of ``repo``'s config.json, from the Hub cache or downloaded alone.

    ``huggingface_hub`` honours ``HF_HUB_OFFLINE`` (the cache only), ``HF_HUB_CACHE`` and the
    stored or ``HF_TOKEN`` token; raises ``HubShapeUnknown`` saying what was tried."""
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(repo, "config.json", revision=revision))
    except Exception as err:  # offline and not cached, absent repo, no access, network
        offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
        tried = (
            f"fetching only {repo}/config.json" + (f" at revision {revision}" if revision else "")
            + (" from the Hub cache (HF_HUB_OFFLINE is set)" if offline else " from the Hub")
        )  # fmt: skip
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise HubShapeUnknown(
            f"model.id: the shape of {repo!r} is unknown, so no cost estimate: tried {tried} "
            f"({reason}). To get one, run once online (or unset HF_HUB_OFFLINE), or give the "
            "model as a local folder holding its config.json"
        ) from None


def hub_shape(repo: str, revision: str | None, task: str) -> tuple[int, int, int]:
    """(layers, hidden size, parameters) of ``repo`` from its config.json; the parameters are
    counted on the model built on the meta device (tied weights once)."""
    import torch
    from transformers import AutoConfig

    from .config_facts import detect_task
    from .loading import LOAD_ERRORS, auto_class, load_reason

    path = hub_config(repo, revision)
    try:
        config = AutoConfig.from_pretrained(path.parent, trust_remote_code=False)
        with torch.device("meta"):
            model = auto_class(detect_task(config, task)).from_config(config)
    except LOAD_ERRORS as err:
        raise HubShapeUnknown(
            f"model.id: {path} does not build a model: {load_reason(err)}"
        ) from None
    text = config.get_text_config()
    n_params = sum(p.numel() for p in model.parameters())
    return int(text.num_hidden_layers), int(text.hidden_size), int(n_params)
