#!/usr/bin/env bash
# The GPU path proven: one run of bench/gpu_check.py, within 8 minutes on an H200.
#
#   bash bench/gpu_check.sh                 # CUDA when torch sees a GPU, else CPU, scaled down
#   bash bench/gpu_check.sh --cpu           # CPU, scaled down, even with a GPU
#   bash bench/gpu_check.sh --budget 300    # the whole run's seconds (default 450 CUDA, 900 CPU)
#   bash bench/gpu_check.sh --parts ab      # only some parts (a..e, see docs/benchmarks.md)
#
# It installs nothing: it uses .venv (the README's set-up, run here only when .venv is missing)
# or, with PYTHON=/path/to/python, a Python that already has the project's requirements
# (then the checkout is put on its PYTHONPATH; docs/benchmarks.md says how for an offline GPU
# machine). Prints a table and, as its last line, one JSON object. Exit status: 0 when every
# part ran and (on a GPU) every target passed, 1 otherwise, 2 when there is no Python to run.
set -uo pipefail
cd "$(dirname "$0")/.."

if [ -n "${PYTHON:-}" ]; then
    export PYTHONPATH="$PWD:$PWD/daemon${PYTHONPATH:+:$PYTHONPATH}"
else
    if [ ! -x .venv/bin/python ]; then
        echo "gpu_check: no .venv, running the README's set-up: bash scripts/setup.sh"
        if ! bash scripts/setup.sh; then
            echo "gpu_check: the set-up failed (an offline machine cannot install; see" \
                "docs/benchmarks.md for PYTHON=...)" >&2
            exit 2
        fi
    fi
    PYTHON=.venv/bin/python
fi

# The budget Python keeps to, and a hard stop behind it: SIGINT at budget + 15 s (it then
# prints what it has), SIGKILL 10 s later; then the partial JSON it wrote after each part.
budget=""
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
    case "${args[$i]}" in
        --budget) budget=${args[$((i + 1))]:-} ;;
        --budget=*) budget=${args[$i]#--budget=} ;;
    esac
done
if [ -z "$budget" ]; then
    # The same default as gpu_check.py's (450 s on CUDA, 900 s on a CPU), told apart cheaply.
    if [[ " $* " != *" --cpu "* ]] && nvidia-smi -L >/dev/null 2>&1; then
        budget=450
    else
        budget=900
    fi
fi
hard=$((${budget%.*} + 15))
partial=$(mktemp "${TMPDIR:-/tmp}/nst-gpu-check-XXXXXX.json")
trap 'rm -f "$partial"' EXIT

PYTHONUNBUFFERED=1 timeout -s INT -k 10 "$hard" \
    "$PYTHON" bench/gpu_check.py --budget "$budget" --partial "$partial" "$@"
rc=$?
if { [ "$rc" = 124 ] || [ "$rc" = 137 ]; } && ! grep -q '"complete": true' "$partial"; then
    # Killed before its summary: the JSON it wrote after its last finished part.
    echo "gpu_check: stopped after ${hard} s; the figures taken until then:"
    if [ -s "$partial" ]; then cat "$partial"; else echo '{"check": "gpu_check", "parts": {}}'; fi
    exit 1
fi
exit "$rc"
