"""Is a folder an nledit export, exactly as nledit writes it? Checked before any of its code
runs, is evaluated or leaves the machine.

An export carries code (``modeling_nledit.py``) that ``trust_remote_code=True`` executes, and a
manifest of file hashes that lives in the same folder. Hashes alone therefore prove nothing
against someone who edits a file and re-hashes the manifest, so the manifest is never trusted for
what may be in the folder. What nledit checks without running anything from the folder
(``inspect_export``; ``check_export`` raises on any failure, and every reader calls it):

- every file, recursively, is a regular file of a kind nledit writes (``export_files``), listed
  in the manifest with its sha256 (no symlinks, no unlisted files, no missing ones);
- ``modeling_nledit.py`` is byte-identical to a run-time nledit knows: its own ``gate.py`` or
  one shipped by an earlier release (``KNOWN_RUNTIMES``); no other code file; no ``auto_map``
  in any JSON file but nledit's own in ``config.json`` (``gate.foreign_code``);
- every JSON file parses and the manifest and ``config.json``'s ``nledit`` block have the
  fields and types nledit writes; the range tensors are finite, with sigma ≥ 0, shapes matching
  the edits, neuron indices and layers inside the base model (``export_schema``);
- ``config.json``'s ``nledit`` block, the range file's metadata and the manifest describe the
  same edits (operator, layer, method).

``verify`` adds the one check that runs the export's (checked) code: the stored reference logits.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import NleditError
from ..models.loading import sha256_file
from ..runtime import gate
from . import code_refs
from . import schema as export_schema
from .files import MANIFEST_FILE, MODELING_FILE, REFERENCE_FILE, file_kind

# sha256 of modeling_nledit.py as shipped by earlier releases: their exports keep verifying.
KNOWN_RUNTIMES = {
    "aa8658b5a258ea3e8628f672f54c83bdfc764aab5245d786e35a2b8faae4d50b": "0.1.0",
    "381c32a71b767f7188e31ea69167c96ac47a2982e0a8d6db2e2c1507d5df61bc": "0.1.0+leace",
    "58090499b204977c355d2cb8db2faf863ca191d7259d2e298789da92338a39c5": "0.1.0+quorum",
    "d6bbf1037fcc934c83f027bf2e1d90c0afc8f0693b7059d35adc70e2026f72bb": "0.1.0+kernels",
    "1d70a939429daff0268df1fa601c5a5839786931c585279e41e9b41131d7bc30": "0.1.0+resave",
    "823f6faec5a25cbeb5920a510e33b4a76404b592cc6a4b9f5b1b551d428ca414": "0.1.0+operators",
}
_AUTO_TARGETS = gate.OWN_AUTO_MAP
REFERENCE_DTYPES = ("float32", "bfloat16", "float16")
_SHA256 = re.compile(r"[0-9a-f]{64}")


class IntegrityError(NleditError, ValueError):
    """The folder is not an nledit export, or it was altered after export."""


@dataclass
class Findings:
    """Named checks, each passed or failed with a detail."""

    checks: list[tuple[str, bool, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(passed for _, passed, _ in self.checks)

    def add(self, name: str, passed: bool, detail: str = "") -> None:
        self.checks.append((name, passed, detail))

    def failures(self) -> list[str]:
        return [f"{n}: {d}" if d else n for n, p, d in self.checks if not p]


def runtime_sha256() -> str:
    """sha256 of this installation's run-time (``gate.py``, exported as ``modeling_nledit.py``)."""
    return sha256_file(Path(gate.__file__))


def is_known_runtime(digest: str) -> bool:
    """Whether ``digest`` is the sha256 of a run-time some nledit release exports."""
    return digest == runtime_sha256() or digest in KNOWN_RUNTIMES


def walk(out: Path) -> tuple[list[str], list[str]]:
    """(regular files, anything else) under ``out``, as sorted POSIX paths relative to it.

    Symlinks are never followed; a symlink, socket or device file lands in the second list.
    """
    files, odd = [], []
    stack = [out]
    while stack:
        folder = stack.pop()
        for p in folder.iterdir():
            rel = p.relative_to(out).as_posix()
            if p.is_symlink():
                odd.append(rel)
            elif p.is_dir():
                stack.append(p)
            elif p.is_file():
                files.append(rel)
            else:
                odd.append(rel)
    return sorted(files), sorted(odd)


def read_manifest(out: Path) -> dict[str, Any]:
    """The export's manifest, or an ``IntegrityError`` saying why there is none."""
    path = out / MANIFEST_FILE
    if not out.is_dir():
        raise IntegrityError(f"{out}: not a folder")
    if path.is_symlink() or not path.is_file():
        raise IntegrityError(f"{out}: no {MANIFEST_FILE}; not an nledit export")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise IntegrityError(f"{path}: not valid JSON ({err})") from None
    files = doc.get("files") if isinstance(doc, dict) else None
    if not isinstance(files, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and _SHA256.fullmatch(v) for k, v in files.items()
    ):
        raise IntegrityError(f"{path}: no valid `files` table of sha256 digests")
    return doc


def check_kinds(out: Path, findings: Findings) -> None:
    """Every file is of a kind nledit writes, whatever the manifest lists."""
    files, _ = walk(out)
    foreign = [name for name in files if file_kind(name) is None]
    findings.add("only files nledit writes", not foreign, ", ".join(foreign))


def check_files(out: Path, manifest: dict[str, Any], findings: Findings) -> None:
    """Every file present, listed and intact; nothing else in the folder, at any depth."""
    listed: dict[str, str] = manifest["files"]
    files, odd = walk(out)
    present = set(files) - {MANIFEST_FILE}
    findings.add("no symlinks or special files", not odd, ", ".join(odd))
    missing = sorted(set(listed) - present)
    extra = sorted(present - set(listed))
    findings.add("all files present", not missing, ", ".join(missing))
    findings.add("no unlisted files", not extra, ", ".join(extra))
    bad = [n for n in sorted(set(listed) & present) if sha256_file(out / n) != listed[n]]
    findings.add("sha256 of every file", not bad, ", ".join(bad))


def check_code(out: Path, findings: Findings) -> None:
    """``modeling_nledit.py`` is a known run-time and the only code config.json points to."""
    path = out / MODELING_FILE
    if path.is_symlink() or not path.is_file():
        findings.add("known nledit run-time", False, f"{MODELING_FILE} is missing")
    else:
        digest = sha256_file(path)
        findings.add(
            "known nledit run-time",
            is_known_runtime(digest),
            ""
            if is_known_runtime(digest)
            else f"{MODELING_FILE} differs from every nledit "
            f"run-time (sha256 {digest[:12]}…); it was altered and will not be run",
        )
    config = _json(out / "config.json")
    auto = config.get("auto_map") if isinstance(config, dict) else None
    wrong = (
        ["no auto_map"]
        if not isinstance(auto, dict)
        else [f"{k} -> {v}" for k, v in auto.items() if _AUTO_TARGETS.get(k) != v]
    )
    if isinstance(config, dict) and config.get("model_type") != "nledit":
        wrong.append(f"model_type {config.get('model_type')!r}")
    findings.add("config.json loads only the nledit run-time", not wrong, ", ".join(wrong))
    foreign = gate.foreign_code(str(out))
    findings.add("no other code, no other auto_map", not foreign, "; ".join(foreign))
    files, _ = walk(out)
    refs = code_refs.code_references(out, files)
    findings.add("no other reference to code", not refs, "; ".join(refs))


def check_contents(out: Path, manifest: dict[str, Any], findings: Findings) -> bool:
    """Every JSON file, the manifest, config.json's nledit block, the range tensors and the
    reference file hold what nledit writes there; returns whether they all do."""
    files, _ = walk(out)
    problems = export_schema.json_problems(out, files) + export_schema.manifest_problems(manifest)
    problems += code_refs.text_problems(out, files)
    config = _json(out / "config.json")
    block = config.get("nledit") if isinstance(config, dict) else None
    problems += export_schema.block_problems(block)
    problems += export_schema.index_problems(out, files)
    if isinstance(config, dict):
        problems += export_schema.config_problems(config)
        problems += export_schema.weight_dtype_problems(out, files, config)
    if not problems:
        problems += export_schema.ranges_problems(out, config)
        if (out / REFERENCE_FILE).is_file() or not isinstance(manifest.get("resaved"), dict):
            problems += export_schema.reference_problems(out, config)  # a re-save has none
    if not problems and not findings.failures():  # no foreign code: safe to read with transformers
        problems += export_schema.tokenizer_problems(out)
    findings.add("every file holds what nledit writes", not problems, "; ".join(problems))
    return not problems


def check_agreement(out: Path, manifest: dict[str, Any], findings: Findings) -> None:
    """config.json, the range file and the manifest describe the same edits."""
    config = _json(out / "config.json")
    block = config.get("nledit") if isinstance(config, dict) else None
    specs = block.get("edits") if isinstance(block, dict) else None
    if not isinstance(specs, list) or not all(isinstance(s, dict) for s in specs):
        findings.add("config, ranges and manifest agree", False, "config.json has no nledit edits")
        return
    problems = []
    meta = _range_metadata(out / gate.RANGES_FILE)
    if meta is None:
        problems.append(f"{gate.RANGES_FILE} is unreadable")
    elif meta.get("edits") != specs:
        problems.append(f"the edits in {gate.RANGES_FILE} differ from config.json")
    recorded = {e.get("name"): e for e in manifest.get("edits", []) if isinstance(e, dict)}
    method = manifest.get("method")
    for s in specs:
        entry = recorded.get(s.get("edit"))
        if entry is None:
            problems.append(f"edit {s.get('edit')!r} is not in the manifest")
            continue
        op = entry.get("operator")
        op_name = op.get("name") if isinstance(op, dict) else op
        # a LEACE edit is a whole-vector gate (mode vector) carrying the edit's own operator
        mode = (
            "range" if (s.get("mode"), s.get("operator")) == ("vector", "leace") else s.get("mode")
        )
        if mode in ("range", "neuron") and op_name != s.get("operator"):
            problems.append(
                f"{s.get('name')}: operator {s.get('operator')!r} in config.json, "
                f"{op_name!r} in the manifest"
            )
        if entry.get("layer") != s.get("layer"):
            problems.append(f"{s.get('name')}: layer differs between config.json and manifest")
        if method in ("range", "neuron") and mode != method:
            problems.append(f"{s.get('name')}: mode {s.get('mode')!r}, manifest method {method!r}")
    findings.add("config, ranges and manifest agree", not problems, "; ".join(problems))


def inspect_export(out: Path) -> Findings:
    """Every check that needs no code from ``out``; raises only when there is no manifest."""
    manifest = read_manifest(out)
    findings = Findings()
    check_kinds(out, findings)
    check_files(out, manifest, findings)
    check_code(out, findings)
    if check_contents(out, manifest, findings):  # agreement needs well-formed contents
        try:
            check_agreement(out, manifest, findings)
        except (TypeError, AttributeError) as err:  # a field of a type nledit never writes
            why = f"the edits of config.json or {MANIFEST_FILE} are malformed ({err})"
            findings.add("config, ranges and manifest agree", False, why)
    return findings


def logits_dtype(out: Path) -> Any:
    """The torch dtype the export's reference logits were computed in (float32 when the file
    does not say: exports written before it was recorded)."""
    import torch
    from safetensors import safe_open

    with safe_open(str(out / REFERENCE_FILE), framework="pt") as f:
        name = (f.metadata() or {}).get("dtype", "float32")
    if name not in REFERENCE_DTYPES:
        raise IntegrityError(f"{REFERENCE_FILE}: unknown dtype {name!r}")
    return getattr(torch, name)


def check_logits(out: Path, findings: Findings, device: str, atol: float = 1e-4) -> None:
    """Load the export (its code was checked) and compare with the stored reference logits."""
    import torch
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSequenceClassification

    config = AutoConfig.from_pretrained(out, trust_remote_code=True)
    auto = (
        AutoModelForCausalLM
        if "AutoModelForCausalLM" in config.auto_map
        else AutoModelForSequenceClassification
    )
    # verify re-hashes a weight-free checkpoint's base in full (a load trusts a cheaper identity)
    block = getattr(config, "nledit", None) or {}
    full = {"nledit_check_base": "full"} if block.get("base_weights") else {}
    dtype = logits_dtype(out)  # one copy of the weights, in the dtype the logits came from
    model = auto.from_pretrained(out, trust_remote_code=True, dtype=dtype, **full)
    model = model.to(device).eval()
    ref = load_file(str(out / REFERENCE_FILE))
    worst = 0.0
    with torch.no_grad():
        for key in sorted(k for k in ref if k.startswith("input_ids.")):
            i = key.split(".", 1)[1]
            logits = model(input_ids=ref[key][None].to(device)).logits[0]
            logits = logits[-1] if logits.dim() == 2 else logits
            worst = max(worst, (logits.float().cpu() - ref[f"logits.{i}"]).abs().max().item())
    findings.add("reference logits reproduced", worst <= atol, f"max abs difference {worst:.2e}")


def verify(out: Path, device: str = "cpu") -> Findings:
    """Every check on ``out``; loads the model only when the files and the code are intact."""
    findings = inspect_export(out)
    resaved = read_manifest(out).get("resaved") if findings.ok else None
    if isinstance(resaved, dict):  # save_pretrained wrote the weights; no reference logits
        findings.add(
            "re-saved, not the original export",
            True,
            f"by {resaved.get('by')} in {resaved.get('dtype')} (transformers "
            f"{resaved.get('transformers')}); reference logits and card were not carried over",
        )
        return findings
    if findings.ok:
        try:
            check_logits(out, findings, device)
        except Exception as err:  # loading failed: that is the finding
            findings.add("checkpoint loads", False, str(err).splitlines()[0] if str(err) else "")
    return findings


@dataclass
class ExportReport:
    """An export that passed every check: its folder, manifest and config.json."""

    folder: Path
    manifest: dict[str, Any]
    config: dict[str, Any]
    findings: Findings


def check_export(
    out: Path, action: str = "use it", *, logits: bool = False, device: str = "cpu"
) -> ExportReport:
    """The one decision whether ``out`` is an nledit export: raise ``IntegrityError`` naming
    every failed check (and its files) unless it passes all of ``inspect_export`` (and, with
    ``logits``, reproduces its reference logits, as ``nledit verify`` does)."""
    out = Path(out)
    findings = verify(out, device) if logits else inspect_export(out)
    if not findings.ok:
        raise IntegrityError(
            f"{out}: refusing to {action}; the export fails verification:\n  "
            + "\n  ".join(findings.failures())
        )
    return ExportReport(out, read_manifest(out), _json(out / "config.json"), findings)


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None


def _range_metadata(path: Path) -> dict[str, Any] | None:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = json.loads((f.metadata() or {}).get("nledit", "{}"))
    except Exception:  # a truncated or foreign file: the finding, not a crash
        return None
    return meta if isinstance(meta, dict) else None
