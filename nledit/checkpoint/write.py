"""Write the patched checkpoint: base weights untouched, the gate baked into modeling_nledit.py.

    out/
      config.json                  base config + model_type "nledit" + auto_map + nledit block
      modeling_nledit.py           nledit/runtime/gate.py, copied byte for byte
      model*.safetensors (+index)  the base model's tensors, byte-identical
      nledit_ranges.safetensors    range tensors (metadata: version, recipe hash, edits)
      nledit_reference.safetensors a few inputs and the edited model's logits, for `verify`
      tokenizer files, generation_config.json, chat template
      nledit_recipe.yaml           the recipe, verbatim
      nledit_manifest.json         versions, seed, data hashes, timings, metrics, file hashes
      README.md                    model card

Everything is written into a temporary sibling directory that is renamed into place at the end
(``outdir.atomic_dir``): an interrupted export leaves nothing at the destination, and
``--overwrite`` replaces only an earlier export.
"""

from __future__ import annotations

import dataclasses
import json
import platform
import re
import shutil
import time
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from ..errors import NleditError
from ..folders.atomic import atomic_dir, copy_file
from ..models.base_origin import hub_origin
from ..models.devices import input_device
from ..models.loading import ModelSource, sha256_file
from ..runtime import gate
from ..version import __version__
from .base_card import base_facts
from .card import CardInfo, card_fields, write_card
from .files import (
    COPY_FILES,
    MANIFEST_FILE,
    MODELING_FILE,
    RECIPE_FILE,
    REFERENCE_FILE,
    WEIGHT_SUFFIXES,
    file_kind,
)
from .integrity import walk
from .portable import absolute_paths, portable_data, portable_folder, recipe_paths, with_roots

EXPORT_MARKERS = (MANIFEST_FILE,)  # what makes a folder an export --overwrite may replace
AUTO_CLASS = {
    "causal-lm": "AutoModelForCausalLM",
    "sequence-classification": "AutoModelForSequenceClassification",
}
WRAPPER = {
    "causal-lm": "NleditForCausalLM",
    "sequence-classification": "NleditForSequenceClassification",
}


class ExportError(NleditError, RuntimeError):
    """The checkpoint cannot be written."""


def method_gates(
    gates: list[gate.RangeGate],
    baseline: list[gate.RangeGate],
    method: str,
    field: str = "method",
) -> list[gate.RangeGate]:
    """The gates a checkpoint of ``method`` carries: the range edit ``gates``, or (``neuron``)
    the neuron-masking gates among ``baseline``, one per edit gate. ``field`` names the
    setting in the error (``output.method`` for a recipe, ``method`` for the API)."""
    if method == "range":
        return gates
    leace = [g.spec.edit for g in gates if g.spec.operator == "leace"]
    if leace:
        raise ExportError(
            f"{field}: {method} does not apply to the LEACE edit {leace[0]!r}: it acts on "
            "the whole hidden state and has no neuron-masking baseline"
        )
    chosen = [g for g in baseline if g.spec.mode == method]
    if len(chosen) != len(gates):
        raise ExportError(
            f"{field}: {method} needs the {method}-masking gates; this fit has none "
            f"(add {method} to the baselines and fit again)"
        )
    return chosen


def source_folder(source: ModelSource) -> Path:
    """The local folder holding the base model's files (the Hub cache for a Hub id)."""
    if source.kind != "hub":
        return Path(source.location)
    from huggingface_hub import snapshot_download

    patterns = ["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja", "*.tiktoken"]
    return Path(
        snapshot_download(source.location, revision=source.revision, allow_patterns=patterns)
    )


def _copy_weights(src: Path, dst: Path, model: Any) -> list[str]:
    """Copy the base safetensors byte for byte (never a link: the copy is the user's); else save."""
    files = [p for p in sorted(src.iterdir()) if p.name.endswith(WEIGHT_SUFFIXES)]
    if not files:  # e.g. a pickle-only base: write safetensors from the loaded weights
        model.save_pretrained(dst, safe_serialization=True)
        (dst / "config.json").unlink(missing_ok=True)
        return sorted(p.name for p in dst.iterdir() if p.name.endswith(WEIGHT_SUFFIXES))
    for p in files:
        copy_file(p, dst / p.name)
    return [p.name for p in files]


def base_reference(src: Path, source: ModelSource) -> dict[str, Any]:
    """Where a weight-free checkpoint finds its base: each weight file's sha256 and size, and
    the Hub repository and commit they were downloaded from (``baseorigin``), else the local
    folder with the reason it is only local (``local``)."""
    weights = [p for p in sorted(src.iterdir()) if p.name.endswith(WEIGHT_SUFFIXES)]
    if not weights:
        raise ExportError(
            f"output.weights: reference needs base weights stored as safetensors; {src} has "
            "none (use output.weights: copy)"
        )
    files = {p.name: sha256_file(p) for p in weights}
    ref: dict[str, Any] = {"files": files, "sizes": {p.name: p.stat().st_size for p in weights}}
    if source.kind == "hub":
        commit = src.name  # snapshot_download returns .../snapshots/<commit hash>
        if not re.fullmatch(r"[0-9a-f]{40}", commit):
            raise ExportError(f"output.weights: cannot pin a commit of {source.location} ({src})")
        return {**ref, "repo_id": source.location, "revision": commit}
    origin = None if source.kind == "gguf" else hub_origin(src, files, source.base_model)
    if origin is not None:
        return {**ref, "repo_id": origin[0], "revision": origin[1]}
    return {**ref, "folder": str(src.resolve()), "local": local_reason(source)}


def local_reason(source: ModelSource) -> str:
    """Why a base folder cannot be fetched from the Hub (no local path in it)."""
    if source.kind == "gguf":
        name = source.origin.replace("\\", "/").rsplit("/", 1)[-1]
        return (
            f"weights dequantised on this machine from a GGUF file ({name}, sha256 "
            f"{source.gguf_sha256}); the Hub holds no such weights"
        )
    return "a local folder that records no Hub repository or commit"


def nledit_config(src: Path, model: Any, task: str, block: dict[str, Any]) -> dict[str, Any]:
    """The base config.json with the wrapper's model_type, auto_map and the nledit block."""
    path = src / "config.json"
    cfg = json.loads(path.read_text()) if path.is_file() else model.config.to_dict()
    base_arch = type(model).__name__
    block = {
        **block,
        "base_model_type": cfg.get("model_type", model.config.model_type),
        "base_architecture": base_arch,
    }
    cfg.pop("quantization_config", None)
    cfg.update(
        model_type="nledit",
        architectures=[WRAPPER[task]],
        auto_map={
            "AutoConfig": "modeling_nledit.NleditConfig",
            AUTO_CLASS[task]: f"modeling_nledit.{WRAPPER[task]}",
        },
        nledit=block,
    )
    return cfg


def with_base_facts(card: CardInfo, src: Path) -> CardInfo:
    """``card`` with the license, language and data sets of its base (``basecard``) where it
    states none of its own; the base's data sets follow the edit's own."""
    facts = base_facts(src, card.hub_base_model or card.base_model)
    datasets = list(card.datasets) + [
        d for d in facts.get("datasets", []) if d not in card.datasets
    ]
    return dataclasses.replace(
        card,
        license=card.license or facts.get("license"),
        language=list(card.language) or list(facts.get("language", [])),
        datasets=datasets,
    )


def with_reference(card: CardInfo, reference: dict[str, Any] | None) -> CardInfo:
    """The card of a weight-free checkpoint names the repository its base loads from; one
    whose base is only local is no adapter of a Hub model (``weights: reference-local``)."""
    if reference is None:
        return card
    if reference.get("repo_id"):
        return dataclasses.replace(
            card, hub_base_model=reference["repo_id"], base_revision=reference["revision"]
        )
    return dataclasses.replace(card, weights="reference-local")


def reference_logits(model: Any, tokenizer: Any, texts: list[str]) -> dict[str, torch.Tensor]:
    """Inputs and the model's last-position logits, stored for ``nledit verify``."""
    out: dict[str, torch.Tensor] = {}
    device = input_device(model)
    with torch.no_grad():
        for i, text in enumerate(texts):
            ids = tokenizer(text, return_tensors="pt")["input_ids"][:, :64]
            logits = model(input_ids=ids.to(device)).logits[0]
            logits = logits[-1] if logits.dim() == 2 else logits  # LM: last position
            out[f"input_ids.{i}"] = ids[0].contiguous()
            out[f"logits.{i}"] = logits.float().cpu().contiguous()
    return out


def reference_dtype(model: Any) -> str:
    """The dtype the reference logits were computed in (``verify`` loads the export in it)."""
    return str(next(model.parameters()).dtype).removeprefix("torch.")


def versions() -> dict[str, str]:
    import transformers

    out = {
        "nledit": __version__,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
    }
    for name in ("safetensors", "huggingface_hub", "accelerate", "lm_eval"):
        try:
            out[name] = __import__(name).__version__
        except Exception:  # an optional library that is not installed
            continue
    return out


def export_checkpoint(
    out: Path,
    *,
    model: Any,
    tokenizer: Any,
    task: str,
    source: ModelSource,
    layers_path: str,
    gates: list[gate.RangeGate],
    recipe_text: str,
    recipe_sha256: str,
    edit_sha256: str,
    manifest: dict[str, Any],
    card: CardInfo,
    reference_texts: list[str],
    overwrite: bool = False,
    extra_files: dict[str, str] | None = None,
    weights_mode: str = "copy",
) -> Path:
    """Write the checkpoint directory atomically; returns ``out``.

    ``weights_mode`` ``copy`` puts the base weights in the checkpoint; ``reference`` records
    where they are (``base_reference``) and leaves them out.
    """
    t0 = time.perf_counter()
    src = source_folder(source)
    reference = base_reference(src, source) if weights_mode == "reference" else None
    card = with_base_facts(with_reference(card, reference), src)
    with atomic_dir(out, overwrite, EXPORT_MARKERS) as tmp:
        local = {source.location, str(src), str(out), str(out.absolute()), str(tmp)}
        local |= recipe_paths(recipe_text) | absolute_paths(manifest)
        roots = with_roots(local | absolute_paths(card_fields(card)))
        weights = sorted(reference["files"]) if reference else _copy_weights(src, tmp, model)
        meta = {"nledit_version": __version__, "edit_sha256": edit_sha256}
        block = gate.save_ranges(str(tmp / gate.RANGES_FILE), gates, meta)
        block.update(layers_path=layers_path, nledit_version=__version__, edit_sha256=edit_sha256)
        if reference:
            block["base_weights"] = reference
        cfg = nledit_config(src, model, task, block)
        (tmp / "config.json").write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
        shutil.copyfile(gate.__file__, tmp / MODELING_FILE)
        tokenizer.save_pretrained(tmp)
        for name in COPY_FILES:
            if (src / name).is_file():
                shutil.copyfile(src / name, tmp / name)
        (tmp / RECIPE_FILE).write_text(recipe_text, encoding="utf-8")
        gate.install_gates(model, layers_path, gates)
        try:
            save_file(
                reference_logits(model, tokenizer, reference_texts),
                str(tmp / REFERENCE_FILE),
                metadata={"dtype": reference_dtype(model)},
            )
        finally:
            gate.remove_gates(model, gates)
        for name, text in (extra_files or {}).items():
            (tmp / name).write_text(text, encoding="utf-8")
        write_card(tmp, card)
        # a weight-free checkpoint's config keeps the folder its base weights are loaded from
        portable_folder(tmp, roots, keep=("config.json",) if reference else ())
        written = walk(tmp)[0]
        unknown = [name for name in written if file_kind(name) is None]
        if unknown:  # the allow-list integrity checks against must cover what is written
            raise ExportError(f"export would write files of no known kind: {', '.join(unknown)}")
        files = {name: sha256_file(tmp / name) for name in written}
        doc = {
            **manifest,
            "nledit_version": __version__,
            "recipe_sha256": recipe_sha256,
            "versions": versions(),
            "base_weights": weights,
            "weights": weights_mode,
            "files": files,
            "card": card_fields(card),
        }
        doc = portable_data(doc, roots)
        shipped = sha256_file(tmp / RECIPE_FILE)
        if shipped != recipe_sha256:  # local paths were replaced: the hash names the file
            doc.update(recipe_sha256=shipped, fitted_recipe_sha256=recipe_sha256)
        doc.setdefault("timings", {})["export_s"] = time.perf_counter() - t0
        (tmp / MANIFEST_FILE).write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    return out
