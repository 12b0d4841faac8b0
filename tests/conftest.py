"""Shared test set-up: Triton runs under its interpreter on CPU-only machines, outputs of every
fused kernel start as NaN (poisoned), and fresh seeds are drawn per test (printed on failure)."""

import os
import random

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")  # must precede the first triton import

import ganreg_ext as gx  # noqa: E402
from ganreg_ext import _dispatch  # noqa: E402


@pytest.fixture(autouse=True)
def _poison_outputs():
    _dispatch.set_poison(True)
    yield
    _dispatch.set_poison(False)


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
    return f"ganreg_ext backends: {gx.available_backends()}  TRITON_INTERPRET={os.environ.get('TRITON_INTERPRET')}"
