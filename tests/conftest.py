"""Shared test set-up: Triton runs under its interpreter on CPU-only machines, outputs of every
fused kernel start as NaN (poisoned), fresh seeds are drawn per test (printed on failure), and every
backend-parametrized test gets its tensors' device from the ``device`` fixture (enforced)."""

import os
import random

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")  # must precede the first triton import

import ganreg_ext as gx  # noqa: E402
from helpers import EMU_UNAVAILABLE, backend_device, lacks_device_fixture, set_poison  # noqa: E402


@pytest.fixture(autouse=True)
def _poison_outputs():
    set_poison(True)
    yield
    set_poison(False)


def _backend_param(node):
    callspec = getattr(node, "callspec", None)
    return callspec.params.get("backend") if callspec is not None else None


@pytest.fixture
def device(request) -> str:
    """The device of the test's ``backend`` parameter (cpu for tests without one)."""
    backend = _backend_param(request.node)
    return backend_device(backend) if backend is not None else "cpu"


def pytest_runtest_setup(item):
    if lacks_device_fixture(item):
        pytest.fail(f"{item.nodeid} is parametrized by backend: it must take the `device` fixture and put its tensors there")


@pytest.fixture
def seed(request):
    """A fresh random seed per test; shown in the failure report so it can be replayed."""
    s = int(os.environ.get("GANREG_TEST_SEED", random.SystemRandom().randrange(2**31)))
    torch.manual_seed(s)
    request.node.user_properties.append(("seed", s))
    return s


def pytest_runtest_makereport(item, call):
    if call.when == "call" and call.excinfo is not None and not call.excinfo.errisinstance(pytest.skip.Exception):
        for k, v in item.user_properties:
            if k == "seed":
                print(f"\n[replay with GANREG_TEST_SEED={v}]")


def pytest_report_header(config):
    emu = "cuda_emu (test backend)" if EMU_UNAVAILABLE is None else f"no cuda_emu ({EMU_UNAVAILABLE})"
    return f"ganreg_ext backends: {gx.available_backends()} + {emu}  TRITON_INTERPRET={os.environ.get('TRITON_INTERPRET')}"
