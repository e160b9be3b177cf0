#!/usr/bin/env bash
# The side-by-side benchmark on whatever accelerator is present: fit, erasure table, perplexity,
# export throughput and a plain forward as the reference (bench/gpu.py documents the figures and
# the results file). Usage, from the repository root:
#
#     bench/gpu.sh [RESULTS.json]        # default: docs/benchmarks/<device>.gpu.json
#
# cuda: a random-weight Llama-3.2-1B shape in bf16, 16 fit examples per class;
# mps:  the same in float16; cpu: SmolLM2-135M's shape in float32, 2 per class, one thread.
# PYTHON overrides the interpreter (default: .venv/bin/python, else python3).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}"
DEVICE="$("$PY" -c 'import torch
print("cuda" if torch.cuda.is_available() else
      "mps" if torch.backends.mps.is_available() else "cpu")')"
OUT="${1:-docs/benchmarks/${DEVICE}.gpu.json}"
echo "device: ${DEVICE}; results: ${OUT}"
case "$DEVICE" in
  cuda) ARGS=(--size llama-3.2-1b --dtype bfloat16 --per-class 16) ;;
  mps)  ARGS=(--size llama-3.2-1b --dtype float16 --per-class 16) ;;
  *)    export OMP_NUM_THREADS=1
        ARGS=(--size smollm2-135m --dtype float32 --per-class 2) ;;
esac
PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" TQDM_DISABLE=1 \
  "$PY" bench/gpu.py --device "$DEVICE" "${ARGS[@]}" --json "$OUT"
