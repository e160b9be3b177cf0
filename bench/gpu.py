"""The side-by-side benchmark on whatever device is present (``bench/gpu.sh`` runs it).

    PYTHONPATH=. .venv/bin/python bench/gpu.py --device cuda --size llama-3.2-1b --json out.json

One model (random weights in a real shape, ``bench/scale.py``'s ``CONFIGS``), one recipe (the
quick start's, shrunk: ``--per-class`` fit examples per class), on ``--device``. Every figure is
a wall time on that device (synchronised), and each is also given as a ratio to a plain forward
pass over the same fitting examples, so the figures compare across machines:

    plain_forward_s   the model's own forward over the fitting examples (logits everywhere)
    fit_pass_s        nledit's fit pass over the same examples (stops after the edited layer)
    table_s           the erasure table (every condition on the evaluation examples)
    perplexity_s      the perplexity windows, base and edited
    export_s          the export with the weights copied, and ``export_bytes_per_s``
    tokens_per_s      plain forward of the export (its gates on) and of the base, and their ratio

The results file is one JSON object: ``device`` (cuda/mps/cpu), ``device_name``, ``model``,
``params``, ``dtype``, ``examples``, ``query_tokens``, ``seconds`` (the times above),
``over_plain_forward`` (each time / plain_forward_s), ``export_bytes_per_s``, ``tokens_per_s``
(``edited``, ``base``, ``ratio``) and ``machine`` (``bench/common.py``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine
from scale import RECIPE, SHRINK, build


def sync(device: str) -> None:
    """Wait for queued work on ``device`` (timings are wall times)."""
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    elif device == "mps":
        torch.mps.synchronize()


def clock(device: str, fn: Any) -> float:
    """Wall time of ``fn()`` on ``device``."""
    sync(device)
    t0 = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t0


def device_name(device: str) -> str:
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(device)
    return device


def tokens_per_s(model: Any, ids: torch.Tensor, device: str) -> float:
    with torch.no_grad():
        model(input_ids=ids)  # warm-up
        return ids.numel() / clock(device, lambda: model(input_ids=ids))


def bench(size: str, dtype: str, device: str, per_class: int, work: Path) -> dict[str, Any]:
    from transformers import AutoModelForCausalLM

    from nledit.fitting.collect import collect
    from nledit.fitting.recipe_fit import fit
    from nledit.pipeline import evaluate, export_fitted
    from nledit.recipe import load_recipe

    folder = work / "base"
    shape = build(size, dtype, folder)
    over = {**SHRINK, "model.id": str(folder), "model.dtype": dtype, "model.device": device}
    over["data.fit_per_class"] = per_class
    if device != "cpu":
        over.pop("threads")  # threads pin CPU work only
    recipe, text = load_recipe(str(RECIPE), over)
    fitted = fit(recipe, text)
    cm, ex = fitted.cm, fitted.data.fit

    @torch.no_grad()
    def plain() -> None:
        for batch in cm.batches(ex.texts, recipe.batch_size):
            inputs = dict(batch.inputs)
            inputs.pop("logits_to_keep", None)
            cm.model(**inputs)

    plain()  # warm-up (kernels, caches)
    plain_s = clock(device, plain)
    fit_s = clock(device, lambda: collect(cm, ex, sorted(set(fitted.layers)), recipe.batch_size))
    result = evaluate(fitted)
    out = work / "export"
    export_s = clock(device, lambda: export_fitted(fitted, out, result, overwrite=False))
    tok = fitted.cm.tokenizer
    tokens = sum(min(len(tok(t)["input_ids"]), recipe.data.max_length) for t in ex.texts)
    load = {"trust_remote_code": True, "dtype": getattr(torch, dtype)}
    edited = AutoModelForCausalLM.from_pretrained(out, **load).to(device).eval()
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 49152, (1, 256), generator=g).to(device)
    e_tps = tokens_per_s(edited, ids, device)
    b_tps = tokens_per_s(cm.model, ids, device)
    seconds = {
        "plain_forward_s": plain_s,
        "fit_pass_s": fit_s,
        "table_s": fitted.timings["eval_s"],
        "perplexity_s": fitted.timings.get("perplexity_s", 0.0),
        "export_s": export_s,
    }
    return {
        "device": device.split(":")[0],
        "device_name": device_name(device),
        "model": size,
        "params": shape["params"],
        "dtype": dtype,
        "examples": len(ex.texts),
        "query_tokens": tokens,
        "seconds": seconds,
        "over_plain_forward": {k: v / plain_s for k, v in seconds.items()},
        "export_bytes_per_s": shape["weights_bytes"] / export_s,
        "tokens_per_s": {"edited": e_tps, "base": b_tps, "ratio": e_tps / b_tps},
        "machine": machine(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--device", required=True, help="cuda, cuda:1, mps or cpu")
    ap.add_argument("--size", default="llama-3.2-1b")
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--per-class", type=int, default=16, help="fit examples per class")
    ap.add_argument("--json", required=True, help="the results file")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="nledit-gpu-"))
    try:
        res = bench(args.size, args.dtype, args.device, args.per_class, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    res["command"] = " ".join(["bench/gpu.py", *sys.argv[1:]])
    text = json.dumps(res, indent=2) + "\n"
    Path(args.json).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
