"""The contents of an export's files, checked without running anything from the folder.

Each function returns the problems it found (empty: none), each naming its file; the caller
(``integrity.inspect_export``) turns them into findings.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from ..runtime import gate
from .files import CONFIG_FILE, MANIFEST_FILE, REFERENCE_FILE, file_kind, is_weight_file

_SHA256 = re.compile(r"[0-9a-f]{64}")
# config.json keys transformers does not hand to the base model's config
_WRAPPER_KEYS = ("model_type", "auto_map", "nledit", "transformers_version", "architectures")


def read_json(path: Path) -> tuple[Any, str | None]:
    """(document, None), or (None, why it cannot be read)."""
    try:
        return json.loads(path.read_text(encoding="utf-8")), None
    except (OSError, UnicodeDecodeError, RecursionError) as err:
        return None, f"{path.name}: cannot be read ({type(err).__name__})"
    except ValueError as err:
        return None, f"{path.name}: not valid JSON ({err})"


def json_problems(out: Path, files: list[str]) -> list[str]:
    """Every JSON file parses, holds an object and no value JSON cannot represent (NaN)."""
    problems = []
    for name in files:
        if not name.endswith(".json"):
            continue
        doc, why = read_json(out / name)
        if why:
            problems.append(why)
        elif not isinstance(doc, dict):
            problems.append(f"{name}: expected a JSON object, got {type(doc).__name__}")
        elif _has_non_finite(doc):
            problems.append(f"{name}: holds NaN or infinity")
    return problems


def _has_non_finite(doc: Any) -> bool:
    if isinstance(doc, float):
        return not math.isfinite(doc)
    if isinstance(doc, dict):
        return any(_has_non_finite(v) for v in doc.values())
    if isinstance(doc, list):
        return any(_has_non_finite(v) for v in doc)
    return False


def _types(doc: dict[str, Any], where: str, fields: dict[str, tuple[type, ...]]) -> list[str]:
    problems = []
    for key, kinds in fields.items():
        if key in doc and (not isinstance(doc[key], kinds) or isinstance(doc[key], bool)):
            names = "/".join(k.__name__ for k in kinds)
            problems.append(f"{where}: {key} is {type(doc[key]).__name__}, expected {names}")
    return problems


def manifest_problems(doc: dict[str, Any]) -> list[str]:
    """The manifest's fields have the types nledit writes (the file table is read_manifest's)."""
    where = MANIFEST_FILE
    problems = _types(
        doc,
        where,
        {
            "method": (str,),
            "nledit_version": (str,),
            "recipe_sha256": (str,),
            "edits": (list,),
            "base_weights": (list,),
            "base_model": (dict,),
            "data": (dict,),
            "metrics": (dict,),
            "card": (dict,),
            "versions": (dict,),
            "timings": (dict,),
        },
    )
    if doc.get("weights", "copy") not in ("copy", "reference"):
        problems.append(f"{where}: weights {doc.get('weights')!r} is neither copy nor reference")
    if isinstance(doc.get("edits"), list) and not all(_edit_entry(e) for e in doc["edits"]):
        problems.append(f"{where}: every edit needs a name, a layer and an operator")
    weights = doc.get("base_weights")
    if isinstance(weights, list) and not all(
        isinstance(w, str) and is_weight_file(w) for w in weights
    ):
        problems.append(f"{where}: base_weights names something other than weight files")
    listed = set(weights) if isinstance(weights, list) else set()
    files = doc.get("files") if isinstance(doc.get("files"), dict) else {}
    # a weight file nledit did not copy (Model.safetensors beside model.safetensors, say)
    problems += [
        f"{name}: a weight file the manifest's base_weights does not name"
        for name in sorted(files)
        if is_weight_file(name) and name not in listed
    ]
    return problems


def _edit_entry(entry: Any) -> bool:
    """An edit as the manifest records it (edit_summaries): name, layer, operator (name)."""
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
        return False
    op = entry.get("operator")
    name = op.get("name") if isinstance(op, dict) else op
    return type(entry.get("layer")) is int and isinstance(name, str)


def block_problems(block: Any) -> list[str]:
    """config.json's ``nledit`` block: the fields the run-time reads, with their types."""
    where = f"{CONFIG_FILE}: nledit"
    if not isinstance(block, dict):
        return [f"{CONFIG_FILE}: no nledit block"]
    problems = []
    if block.get("format") != gate.FORMAT:
        problems.append(f"{where}.format is {block.get('format')!r}, not {gate.FORMAT!r}")
    for key in ("layers_path", "base_model_type", "base_architecture", "ranges_sha256"):
        if not isinstance(block.get(key), str):
            problems.append(f"{where}.{key} is missing or not text")
    if isinstance(block.get("layers_path"), str) and not re.fullmatch(
        r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*", block["layers_path"]
    ):
        problems.append(f"{where}.layers_path {block['layers_path']!r} is not a module path")
    if not isinstance(block.get("edits"), list) or not block["edits"]:
        problems.append(f"{where}.edits is missing or empty")
    try:
        gate.base_class(block)
    except gate.NleditLoadError as err:
        problems.append(str(err))
    if "base_weights" in block:
        problems += _base_weights_problems(block["base_weights"], where)
    return problems


_DTYPES = ("auto", "float32", "float16", "bfloat16", "float64")


def config_problems(config: dict[str, Any]) -> list[str]:
    """config.json's own fields transformers reads before any model code: the dtype."""
    problems = []
    for key in ("dtype", "torch_dtype"):
        if key in config and config[key] is not None and config[key] not in _DTYPES:
            problems.append(f"{CONFIG_FILE}: {key} {config[key]!r} is not one of {_DTYPES}")
    return problems


def tokenizer_problems(out: Path) -> list[str]:
    """The tokenizer files load (with no code of the folder's own: that was refused before),
    and every tokenizer file is one the loaded tokenizer writes when saved: a file of a
    tokenizer's name that the tokenizer never reads (foreign content) is refused."""
    import tempfile

    from transformers import AutoTokenizer

    if not any(out.glob("tokenizer*")):  # a model's own save_pretrained writes no tokenizer
        return []
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(out), trust_remote_code=False)
        with tempfile.TemporaryDirectory(prefix="nledit-tok-") as tmp:
            tokenizer.save_pretrained(tmp)
            written = {p.relative_to(tmp).as_posix() for p in Path(tmp).rglob("*") if p.is_file()}
    except Exception as err:  # whatever a corrupted tokenizer file makes transformers raise
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        return [f"tokenizer files (tokenizer.json, tokenizer_config.json): cannot load ({first})"]
    present = {
        p.relative_to(out).as_posix()
        for p in out.rglob("*")
        if p.is_file() and file_kind(p.relative_to(out).as_posix()) == "tokenizer"
    }
    return [
        f"{name}: not a file this tokenizer reads or writes (foreign content)"
        for name in sorted(present - written)
    ]


def weight_dtype_problems(out: Path, files: list[str], config: dict[str, Any]) -> list[str]:
    """The floating-point weight tensors are stored in the dtype config.json records."""
    from safetensors import safe_open

    names = {"float32": "F32", "bfloat16": "BF16", "float16": "F16"}
    want = names.get(str(config.get("dtype") or config.get("torch_dtype") or ""))
    if want is None:
        return []
    problems = []
    for name in files:
        if file_kind(name) != "weights":
            continue
        try:
            with safe_open(str(out / name), framework="pt") as f:
                kinds = {f.get_slice(k).get_dtype() for k in f.keys()}  # noqa: SIM118 (safe_open is no dict)
        except Exception:  # a damaged file: the hash or the load names it
            continue
        other = sorted(k for k in kinds if k in ("F64", "F32", "F16", "BF16") and k != want)
        if other:
            stored = ", ".join(other)
            problems.append(f"{name}: tensors stored as {stored}, config.json says {want}")
    return problems


def _base_weights_problems(ref: Any, where: str) -> list[str]:
    files = ref.get("files") if isinstance(ref, dict) else None
    if not isinstance(files, dict) or not files:
        return [f"{where}.base_weights has no files table"]
    problems = []
    for name, digest in files.items():
        if not is_weight_file(name) or not (isinstance(digest, str) and _SHA256.fullmatch(digest)):
            problems.append(f"{where}.base_weights: {name!r} is not a weight file with its sha256")
    for key in ("folder", "repo_id", "revision", "local"):
        if key in ref and not isinstance(ref[key], str):
            problems.append(f"{where}.base_weights.{key} is not text")
    sizes = ref.get("sizes", {})
    if not isinstance(sizes, dict) or not all(
        name in files and type(n) is int and n >= 0 for name, n in sizes.items()
    ):
        problems.append(f"{where}.base_weights.sizes is not a size in bytes per weight file")
    return problems


def base_shape(config: dict[str, Any]) -> tuple[int | None, int | None, int | None]:
    """(hidden size, number of layers, vocabulary size) of the base model config.json
    describes, as transformers reads it (its attribute maps included); raises ValueError."""
    from transformers import AutoConfig

    block = config["nledit"]
    fields = {k: v for k, v in config.items() if k not in _WRAPPER_KEYS}
    try:
        base = AutoConfig.for_model(block["base_model_type"], **fields)
    except Exception as err:  # an unknown model type or fields its config class refuses
        raise ValueError(
            f"{CONFIG_FILE}: not a {block['base_model_type']!r} configuration "
            f"transformers knows ({str(err).splitlines()[0] if str(err) else type(err).__name__})"
        ) from None
    text = base.get_text_config() if hasattr(base, "get_text_config") else base

    def whole(name: str) -> int | None:
        value = getattr(text, name, None)
        return value if type(value) is int and value > 0 else None

    return whole("hidden_size"), whole("num_hidden_layers"), whole("vocab_size")


def ranges_problems(out: Path, config: dict[str, Any]) -> list[str]:
    """The range tensors load, are finite, match the config's edits and fit the base model."""
    try:
        hidden, layers, _ = base_shape(config)
    except ValueError as err:
        return [str(err)]
    try:
        gate.load_gates(str(out / gate.RANGES_FILE), config["nledit"], hidden, layers)
    except gate.NleditLoadError as err:
        return [str(err).replace(str(out) + "/", "")]
    return []


def reference_problems(out: Path, config: dict[str, Any]) -> list[str]:
    """The reference file holds pairs of token ids (within the vocabulary) and finite logits."""
    from safetensors.torch import load_file

    try:
        ref = load_file(str(out / REFERENCE_FILE))
        _, _, vocab = base_shape(config)
    except ValueError as err:
        return [str(err)]
    except Exception as err:  # safetensors' own errors on a truncated or foreign file
        return [f"{REFERENCE_FILE}: cannot be read ({str(err).splitlines()[0]})"]
    ids = sorted(k for k in ref if k.startswith("input_ids."))
    logits = {f"logits.{k.split('.', 1)[1]}" for k in ids}
    if not ids or logits != set(ref) - set(ids):
        return [f"{REFERENCE_FILE}: not pairs of input_ids.<i> and logits.<i>"]
    for key in ids:
        t, y = ref[key], ref[f"logits.{key.split('.', 1)[1]}"]
        if t.dim() != 1 or not t.numel() or t.is_floating_point() or int(t.min()) < 0:
            return [f"{REFERENCE_FILE}: {key} is not a sequence of token ids"]
        if vocab is not None and int(t.max()) >= vocab:
            return [f"{REFERENCE_FILE}: {key} holds a token id past the vocabulary ({vocab})"]
        if not y.is_floating_point() or y.dim() != 1 or not bool(y.isfinite().all()):
            return [f"{REFERENCE_FILE}: logits of {key} are malformed or not finite"]
    return []


def index_problems(out: Path, files: list[str]) -> list[str]:
    """A weight index maps tensors to weight files of this export (or of the referenced base)."""
    problems = []
    for name in files:
        if not name.endswith(".safetensors.index.json"):
            continue
        doc, _ = read_json(out / name)
        weight_map = doc.get("weight_map") if isinstance(doc, dict) else None
        if not isinstance(weight_map, dict) or not all(
            isinstance(v, str) and is_weight_file(v) and not v.endswith(".json")
            for v in weight_map.values()
        ):
            problems.append(f"{name}: weight_map must map tensors to weight file names")
    return problems
