#!/usr/bin/env bash
# The GPU check in one command (a thin wrapper of `python -m benchmarks gpu`; the driver is benchmarks/gpu_check.py):
#     bash benchmarks/gpu_check.sh [--dry-run] [--out DIR] [--budget S]    # or: make gpu-check; OUT=/dir bash benchmarks/gpu_check.sh
# Python: $PYTHON, else ./.venv/bin/python when there is one, else python3 (the GPU machine's own).
cd "$(dirname "$0")/.." || exit 1
PY="${PYTHON:-python3}"
[ -z "${PYTHON:-}" ] && [ -x .venv/bin/python ] && PY=.venv/bin/python
exec "$PY" -m benchmarks gpu "$@"
