"""Benchmarks of ganreg_ext, one front door: ``python -m benchmarks <subcommand> [args]`` (``__main__.py``;
``--help`` lists the subcommands: ``ops`` the sweep → CSV, markdown, plots; ``quick``; ``check``;
``stylegan2``; ``clients``; ``demo-timing``; ``suite`` the pytest-benchmark suite; ``gpu`` the GPU check
and its verdict table, which ``benchmarks/gpu_check.sh`` wraps). See benchmarks/README.md."""

import os as _os

# torch.profiler (CPU peak memory) would print Kineto start/stop lines for every call otherwise;
# read when the profiler first starts, so this must run before torch is imported or profiled.
_os.environ.setdefault("KINETO_LOG_LEVEL", "5")
