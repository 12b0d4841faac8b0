"""Benchmarks of ganreg_ext: ``python -m benchmarks.run`` (sweep → CSV, markdown, plots),
``pytest benchmarks/ --benchmark-only`` (pytest-benchmark suite), ``python3 -m benchmarks.gpu_check`` (the GPU check
and its verdict table; ``benchmarks/gpu_check.sh`` wraps it)."""

import os as _os

# torch.profiler (CPU peak memory) would print Kineto start/stop lines for every call otherwise;
# read when the profiler first starts, so this must run before torch is imported or profiled.
_os.environ.setdefault("KINETO_LOG_LEVEL", "5")
