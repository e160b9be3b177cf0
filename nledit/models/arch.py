"""Where the layers live in each model family, and which token carries the concept."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..errors import NleditError

# Paths of the block lists, most specific first.
LAYER_PATHS = (
    "model.language_model.layers",  # Gemma 3 multimodal, Llava-style wrappers
    "model.layers",  # Llama, SmolLM2, Gemma, Qwen2, Mistral, Phi
    "transformer.h",  # GPT-2, GPT-J, Bloom-style
    "gpt_neox.layers",
    "bert.encoder.layer",
    "roberta.encoder.layer",
    "distilbert.transformer.layer",
    "encoder.layer",  # bare BertModel
    "transformer.layer",  # bare DistilBertModel
    "layers",
)


class ArchError(NleditError, ValueError):
    """The model's layout is not one nledit knows how to edit."""


@dataclass(frozen=True)
class Layout:
    layers_path: str  # dotted path of the nn.ModuleList of blocks
    n_layers: int
    hidden_size: int
    is_encoder: bool  # read CLS (index 0) instead of the last real token

    def layer_path(self, layer: int) -> str:
        return f"{self.layers_path}.{layer}"


def find_layout(model: nn.Module) -> Layout:
    """Locate the block list of ``model`` and its width."""
    for path in LAYER_PATHS:
        try:
            blocks = model.get_submodule(path)
        except AttributeError:
            continue
        if isinstance(blocks, nn.ModuleList) and len(blocks) > 0:
            config = getattr(model, "config", None)
            text = getattr(config, "text_config", None) or config
            d = getattr(text, "hidden_size", None) or getattr(text, "n_embd", None)
            d = d or getattr(text, "dim", None)
            if d is None:
                raise ArchError(f"cannot tell the hidden size of {type(model).__name__}")
            is_encoder = bool(getattr(text, "is_encoder_decoder", False)) or (
                not getattr(text, "is_decoder", False)
                and any(k in path for k in ("bert", "encoder", "transformer.layer"))
            )
            return Layout(path, len(blocks), int(d), is_encoder)
    raise ArchError(
        f"{type(model).__name__}: no block list found (looked for {', '.join(LAYER_PATHS)})"
    )


def resolve_layer(layer: int | str, n_layers: int) -> int:
    """``last`` or a (negative) index to a block index; out-of-range raises ``ArchError``."""
    if layer == "last":
        return n_layers - 1
    if not isinstance(layer, int):
        raise ArchError(f"layer must be an integer or 'last', got {layer!r}")
    resolved = layer + n_layers if layer < 0 else layer
    if not 0 <= resolved < n_layers:
        raise ArchError(
            f"layer {layer} is out of range: the model has {n_layers} layers "
            f"(valid: 0..{n_layers - 1}, -{n_layers}..-1 or 'last')"
        )
    return resolved


def read_positions(attention_mask: torch.Tensor, is_encoder: bool) -> torch.Tensor:
    """Index of the token read per row: CLS for encoders, else the last real token.

    Works for left and right padding alike.
    """
    if is_encoder:
        first = attention_mask.to(torch.long).argmax(dim=-1)  # first real token (CLS)
        return first
    flipped = attention_mask.to(torch.long).flip(-1).argmax(dim=-1)
    return attention_mask.shape[-1] - 1 - flipped
