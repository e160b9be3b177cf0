"""Write the patched checkpoint: base weights untouched, the gate baked into modeling_nledit.py.

    out/
      config.json                  base config + model_type "nledit" + auto_map + nledit block
      modeling_nledit.py           nledit/gate.py, copied byte for byte
      model*.safetensors (+index)  the base model's tensors, byte-identical
      nledit_ranges.safetensors    range tensors (metadata: version, recipe hash, edits)
      nledit_reference.safetensors a few inputs and the edited model's logits, for `verify`
      tokenizer files, generation_config.json, chat template
      nledit_recipe.yaml           the recipe, verbatim
      nledit_manifest.json         versions, seed, data hashes, timings, metrics, file hashes
      README.md                    model card

Everything is written into a temporary sibling directory that is renamed into place at the end:
an interrupted export leaves nothing at the destination.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from . import gate
from .card import CardInfo, write_card
from .errors import NleditError
from .models import ModelSource, sha256_file
from .version import __version__

WEIGHT_SUFFIXES = (".safetensors", ".safetensors.index.json")
COPY_FILES = ("generation_config.json",)
REFERENCE_FILE = "nledit_reference.safetensors"
MANIFEST_FILE = "nledit_manifest.json"
RECIPE_FILE = "nledit_recipe.yaml"
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


def check_destination(out: Path, overwrite: bool) -> None:
    """Refuse an existing destination unless ``overwrite`` (checked before any work starts)."""
    if out.exists() and not overwrite:
        raise ExportError(f"output.dir: {out} already exists (pass --overwrite to replace it)")
    if out.exists() and not out.is_dir():
        raise ExportError(f"output.dir: {out} exists and is not a directory")


@contextmanager
def atomic_dir(out: Path, overwrite: bool) -> Iterator[Path]:
    """A temporary sibling of ``out`` that becomes ``out`` only if the block succeeds."""
    check_destination(out, overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it private; a checkpoint is meant to be shared
    try:
        yield tmp
        for p in tmp.iterdir():  # readable by others, as the umask allows
            if p.is_file() and p.stat().st_nlink == 1:
                os.chmod(p, 0o666 & ~umask)
        if out.exists():
            trash = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
            os.replace(out, trash / out.name)
            os.replace(tmp, out)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


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
    """Copy the base safetensors byte for byte (hard link when possible); else save them."""
    files = [p for p in sorted(src.iterdir()) if p.name.endswith(WEIGHT_SUFFIXES)]
    if not files:  # e.g. a pickle-only base: write safetensors from the loaded weights
        model.save_pretrained(dst, safe_serialization=True)
        (dst / "config.json").unlink(missing_ok=True)
        return sorted(p.name for p in dst.iterdir() if p.name.endswith(WEIGHT_SUFFIXES))
    for p in files:
        try:
            os.link(p.resolve(), dst / p.name)
        except OSError:
            shutil.copyfile(p, dst / p.name)
    return [p.name for p in files]


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


def reference_logits(model: Any, tokenizer: Any, texts: list[str]) -> dict[str, torch.Tensor]:
    """Inputs and the model's last-position logits, stored for ``nledit verify``."""
    out: dict[str, torch.Tensor] = {}
    device = next(model.parameters()).device
    with torch.no_grad():
        for i, text in enumerate(texts):
            ids = tokenizer(text, return_tensors="pt")["input_ids"][:, :64]
            logits = model(input_ids=ids.to(device)).logits[0]
            logits = logits[-1] if logits.dim() == 2 else logits  # LM: last position
            out[f"input_ids.{i}"] = ids[0].contiguous()
            out[f"logits.{i}"] = logits.float().cpu().contiguous()
    return out


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
) -> Path:
    """Write the checkpoint directory atomically; returns ``out``."""
    t0 = time.perf_counter()
    src = source_folder(source)
    with atomic_dir(out, overwrite) as tmp:
        weights = _copy_weights(src, tmp, model)
        meta = {"nledit_version": __version__, "edit_sha256": edit_sha256}
        block = gate.save_ranges(str(tmp / gate.RANGES_FILE), gates, meta)
        block.update(layers_path=layers_path, nledit_version=__version__, edit_sha256=edit_sha256)
        cfg = nledit_config(src, model, task, block)
        (tmp / "config.json").write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
        shutil.copyfile(gate.__file__, tmp / "modeling_nledit.py")
        tokenizer.save_pretrained(tmp)
        for name in COPY_FILES:
            if (src / name).is_file():
                shutil.copyfile(src / name, tmp / name)
        (tmp / RECIPE_FILE).write_text(recipe_text, encoding="utf-8")
        gate.install_gates(model, layers_path, gates)
        try:
            save_file(
                reference_logits(model, tokenizer, reference_texts), str(tmp / REFERENCE_FILE)
            )
        finally:
            gate.remove_gates(model, gates)
        for name, text in (extra_files or {}).items():
            (tmp / name).write_text(text, encoding="utf-8")
        write_card(tmp, card)
        files = {p.name: sha256_file(p) for p in sorted(tmp.iterdir()) if p.is_file()}
        doc = {
            **manifest,
            "nledit_version": __version__,
            "recipe_sha256": recipe_sha256,
            "versions": versions(),
            "base_weights": weights,
            "files": files,
        }
        doc.setdefault("timings", {})["export_s"] = time.perf_counter() - t0
        (tmp / MANIFEST_FILE).write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    return out
