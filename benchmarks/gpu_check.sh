#!/usr/bin/env bash
# One command for a GPU machine (no internet; its own torch + Python):
#
#     bash benchmarks/gpu_check.sh            # or: make gpu-check;  OUT=/some/dir bash benchmarks/gpu_check.sh
#
# Steps, each time-limited and run even when an earlier one failed (rc per step in $OUT/summary.txt):
#   1 build      pip install --no-build-isolation --no-deps -e .   (nvcc from CUDA_HOME / newest /usr/local/cuda-*;
#                falls back to setup.py build_ext --inplace when pip cannot build, e.g. no `wheel` installed)
#   2 info       python -m ganreg_ext info
#   3 tests      pytest tests -x -q       (CUDA and Triton backends on CUDA tensors)
#   4 sanitizer  compute-sanitizer --tool memcheck on benchmarks/cuda_ops_once.py (each cuda op once)
#   5 bench      python -m benchmarks.run --quick --device cuda --out $OUT/bench  (CSV, results.md, PNGs)
# The whole run is held under GPU_CHECK_BUDGET seconds (default 470, i.e. < 8 min on an H100): a step
# gets at most its own limit and never more than what is left; the benchmark writes its CSV case by case
# and stops starting cases at its --budget, and its report is rebuilt from the CSV if it was cut off.
set -u
cd "$(dirname "$0")/.."
OUT="${OUT:-./gpu_out}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
PY="${PYTHON:-$(command -v python || command -v python3)}"
BUDGET="${GPU_CHECK_BUDGET:-470}"
T0=$(date +%s)
SUMMARY="$OUT/summary.txt"
: >"$SUMMARY"
export PYTHONUNBUFFERED=1 KINETO_LOG_LEVEL=5

if [ -z "${CUDA_HOME:-}" ]; then
    CUDA_HOME="$(ls -d /usr/local/cuda-* 2>/dev/null | sort -V | tail -n 1)"
    [ -z "$CUDA_HOME" ] && [ -d /usr/local/cuda ] && CUDA_HOME=/usr/local/cuda
    export CUDA_HOME
fi
export MAX_JOBS="${MAX_JOBS:-$(nproc)}"
# build only the arch of this GPU unless told otherwise (faster; e.g. 9.0 on H100/H200)
if [ -z "${TORCH_CUDA_ARCH_LIST:-}" ]; then
    CAP="$("$PY" -c 'import torch; print("%d.%d" % torch.cuda.get_device_capability())' 2>/dev/null)"
    [ -n "$CAP" ] && export TORCH_CUDA_ARCH_LIST="$CAP"
fi

left() { echo $((BUDGET - ($(date +%s) - T0))); }

# step NAME LIMIT_S COMMAND...   (output in $OUT/NAME.log; rc 124 = time limit)
step() {
    local name="$1" limit="$2"
    shift 2
    local rem
    rem=$(left)
    [ "$limit" -gt "$rem" ] && limit=$rem
    if [ "$limit" -le 5 ]; then
        echo "$name rc=skipped (no time left of ${BUDGET}s)" | tee -a "$SUMMARY"
        return 0
    fi
    echo "=== $name (limit ${limit}s) ===" >&2
    local s rc
    s=$(date +%s)
    timeout --kill-after=10 "$limit" "$@" >"$OUT/$name.log" 2>&1
    rc=$?
    local msg="$name rc=$rc time=$(($(date +%s) - s))s limit=${limit}s log=$name.log"
    [ $rc -eq 124 ] && msg="$msg (TIMED OUT)"
    echo "$msg" | tee -a "$SUMMARY"
    tail -n 5 "$OUT/$name.log" >&2
    return 0
}

{
    echo "date: $(date -u +%FT%TZ)  host: $(hostname)  python: $PY  CUDA_HOME: ${CUDA_HOME:-none}  arch: ${TORCH_CUDA_ARCH_LIST:-default}"
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv 2>/dev/null || echo "nvidia-smi unavailable"
} >"$OUT/env.txt" 2>&1
cat "$OUT/env.txt"

step build 200 "$PY" -m pip install --no-build-isolation --no-deps --no-index -v -e .
# an environment without `wheel`/a recent setuptools fails pip's metadata step ("invalid command
# 'bdist_wheel'"; no internet to fetch them): build in place instead (only setuptools needed)
if ! "$PY" -c "import ganreg_ext._C" >/dev/null 2>&1; then
    step build_inplace 300 "$PY" setup.py build_ext --inplace
fi
step info 40 "$PY" -m ganreg_ext info
step tests 130 "$PY" -m pytest tests -x -q -p no:cacheprovider

SAN="$(command -v compute-sanitizer || ls "${CUDA_HOME:-/nonexistent}/bin/compute-sanitizer" /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -n 1)"
if [ -n "$SAN" ] && [ -x "$SAN" ]; then
    step sanitizer 90 "$SAN" --tool memcheck --error-exitcode 1 --leak-check no "$PY" -m benchmarks.cuda_ops_once --backend cuda
else
    echo "compute-sanitizer not found (PATH, \$CUDA_HOME/bin, /usr/local/cuda*/bin): memcheck skipped" | tee "$OUT/sanitizer.log"
    echo "sanitizer rc=skipped (compute-sanitizer absent)" | tee -a "$SUMMARY"
fi

# the benchmark gets what is left; it stops starting new cases 25 s before its limit
REM=$(($(left) - 15))
if [ "$REM" -gt 30 ]; then
    step bench "$REM" "$PY" -m benchmarks.run --quick --device cuda --out "$OUT/bench" --budget $((REM - 25)) --compile-sizes primary --compile-budget $((REM / 3))
    if [ ! -s "$OUT/bench/results.md" ] && [ -s "$OUT/bench/results.csv" ]; then
        step bench_report 30 "$PY" -m benchmarks.run --report-only --out "$OUT/bench"
    fi
else
    echo "bench rc=skipped (no time left of ${BUDGET}s)" | tee -a "$SUMMARY"
fi

echo "total $(($(date +%s) - T0))s of ${BUDGET}s" | tee -a "$SUMMARY"
echo "--- $SUMMARY"
cat "$SUMMARY"
[ -s "$OUT/bench/results.md" ] && sed -n '1,40p' "$OUT/bench/results.md"
exit 0
