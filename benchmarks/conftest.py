"""pytest-benchmark suite over the same cases as ``python -m benchmarks ops`` at small sizes:

    python -m benchmarks suite [--bench-device cuda] [--bench-compile] [--bench-ops r1,diff_augment]
    (= pytest benchmarks/test_bench.py --benchmark-only ...)

``torch.compile`` rows are opt-in (``--bench-compile``): a cold compile costs 10–60 s per graph on a
small CPU machine.
"""

import os

import pytest

os.environ.setdefault("KINETO_LOG_LEVEL", "5")


def pytest_addoption(parser):
    g = parser.getgroup("ganreg benchmarks")
    g.addoption("--bench-device", default=None, help="cpu or cuda (default: cuda if available)")
    g.addoption("--bench-compile", action="store_true", help="include torch.compile of the reference")
    g.addoption("--bench-ops", default="all", help="op families, comma separated (see benchmarks/cases.py)")
    g.addoption("--bench-rounds", type=int, default=20, help="timed rounds per benchmark (>= 20)")


@pytest.fixture(scope="session")
def bench_device(pytestconfig):
    import torch

    name = pytestconfig.getoption("--bench-device") or ("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        pytest.skip("--bench-device cuda: no CUDA device")
    return torch.device(name)
