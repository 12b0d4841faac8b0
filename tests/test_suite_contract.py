"""The suite's own contract (issue 12, "GPU truth"): CI fails when a backend that should run here
does not, when a fused backend lacks an op of SPEC, when a backend test builds its tensors on the
wrong device, when poisoning does nothing, and when the sum comparison would accept a dropped or
duplicated term."""

from __future__ import annotations

import importlib.util
import os
from types import SimpleNamespace

import pytest
import torch

import ganreg_ext as gx
from helpers import (
    ALL_OPS,
    AVAILABLE,
    CONS,
    DTYPES,
    GN,
    NOISE,
    NOISE_ATOL,
    assert_sum_close,
    backend_device,
    every_backend,
    fused,
    lacks_device_fixture,
    leaf,
    make,
    missing_ops,
    native_with_cuda,
    need,
    no_kernels,
    package_ops,
    raw_output,
)


def _reason(backend):
    return gx.backend_info()["backends"][backend]["reason"]


# ---------------------------------------------------------------- the backends that must run here


def test_cpu_backend_is_available():
    """CI builds the extension: every C++ test must run, never turn into a skip."""
    assert "cpu" in AVAILABLE, _reason("cpu")


def test_triton_backend_is_available_when_installed():
    if importlib.util.find_spec("triton") is None:
        pytest.skip("triton is not installed")
    assert "triton" in AVAILABLE, _reason("triton")


def test_cuda_backend_is_available_on_a_gpu():
    if not torch.cuda.is_available():
        pytest.skip("no GPU on this machine")
    assert native_with_cuda(), "ganreg_ext._C was built without its CUDA kernels on a machine with a GPU"
    assert "cuda" in AVAILABLE, _reason("cuda")


@pytest.mark.parametrize("name", ["cpu", "triton", "cuda"])
def test_fused_backend_has_every_op(name):
    """Every op SPEC lists and every op the package declares (native: a kernel for the backend's
    dispatch key; triton: the op ``torch.ops.ganreg_triton.<op>`` and SPEC's launchers in
    ``ganreg_ext.triton_kernels.<family>``)."""
    if name == "triton" and importlib.util.find_spec("triton") is None:
        pytest.skip("triton is not installed")
    if name == "cuda" and not native_with_cuda():
        pytest.skip("ganreg_ext._C was built without CUDA")
    assert set(ALL_OPS) <= set(package_ops())
    missing = missing_ops(name, package_ops())
    assert not missing, f"backend {name!r} lacks {missing}"


# ---------------------------------------------------------------- devices


def test_backend_tests_take_the_device_fixture(request):
    """Every collected backend-parametrized test takes ``device`` (conftest also fails each one that
    does not, wherever it runs)."""
    param = SimpleNamespace(params={"backend": "cuda"})
    assert lacks_device_fixture(SimpleNamespace(callspec=param, fixturenames=["backend"]))
    assert not lacks_device_fixture(SimpleNamespace(callspec=param, fixturenames=["backend", "device"]))
    assert not lacks_device_fixture(SimpleNamespace(fixturenames=[]))
    bad = [item.nodeid for item in request.session.items if lacks_device_fixture(item)]
    assert not bad, f"backend-parametrized tests without the `device` fixture: {bad}"


@every_backend
def test_device_fixture_follows_the_backend(backend, device):
    gpu = torch.cuda.is_available()
    assert device == {"reference": "cpu", "cpu": "cpu", "cuda": "cuda", "triton": "cuda" if gpu else "cpu"}[backend]
    assert device == backend_device(backend)
    if backend == "triton" and not gpu:
        assert os.environ.get("TRITON_INTERPRET") == "1"


# ---------------------------------------------------------------- tripwire and poison


@fused
def test_kernel_tripwire_fires(backend, device):
    with no_kernels(), pytest.raises(AssertionError, match="ran"):
        gx.grad_sqnorm(torch.randn(2, 3, device=device), backend=backend)


def _every_op(backend, x, y, dp, cp, seed):
    """Each fused op once (forward and the ops their backwards call), through the public API."""
    g, h = leaf(x), leaf(y)
    s = gx.grad_sqnorm(g, inv_scale=0.5, backend=backend)  # sqnorm
    w = torch.linspace(0.5, 1.5, x.shape[0], device=x.device).requires_grad_()
    (dg,) = torch.autograd.grad(s, g, w, create_graph=True)  # scale
    (dw,) = torch.autograd.grad(dg, w, y)  # dot
    c = gx.consistency_loss(g, h, backend=backend)  # sq_diff_sum
    a = gx.diff_augment(g, params=dp, backend=backend)
    r = gx.cr_augment(g, params=cp, backend=backend)
    return [
        s, dg, dw, c,
        *torch.autograd.grad(c, (g, h)),  # diff_scale
        gx.path_length_noise_dot(x, seed, backend=backend),  # noise_dot
        gx.instance_noise(x, 0.5, seed, backend=backend),  # noise_axpy
        a, torch.autograd.grad(a, g, y)[0],  # diff_augment, diff_augment_adj
        r, torch.autograd.grad(r, g, y)[0],  # cr_augment, cr_augment_adj
    ]  # fmt: skip


@fused
def test_poisoned_outputs_are_fully_written(backend, device, seed):
    """Poisoning is on (a fresh output of the backend's allocator is NaN), so an element a kernel
    forgets stays NaN: every op's outputs are finite and equal the reference."""
    need(backend, *ALL_OPS)
    assert torch.isnan(raw_output(backend, device)).all(), "poisoning is off: unwritten outputs would go unnoticed"
    B, H, W = 3, 8, 9
    x, y = make((B, 2, H, W), device=device, layout="channels_last"), make((B, 2, H, W), device=device)
    dp = gx.sample_diffaug_params(B, H, W, device=device)
    cp = gx.sample_cr_params(B, H, W, device=device)
    got, want = _every_op(backend, x, y, dp, cp, seed), _every_op("reference", x, y, dp, cp, seed)
    for k, (a, b) in enumerate(zip(got, want)):
        assert torch.isfinite(a).all(), f"output {k} of {backend} has unwritten (NaN) elements"
        torch.testing.assert_close(a.detach(), b.detach(), rtol=1e-4, atol=1e-4, msg=f"output {k}")


# ---------------------------------------------------------------- the sum comparison can fail


def _set(t, j, value):
    t.view(-1)[j] = value
    return t


def _sum_case(op, x, b, seed):
    """(fused call, per-element terms in float64, modify(x, j, k): x with term j counted k times, extra atol)."""
    x64, b64 = x.double(), b.double()
    if op == "sqnorm":
        return (
            lambda t, n: gx.grad_sqnorm(t, backend=n),
            x64.square(),
            lambda t, j, k: _set(t, j, t.view(-1)[j] * k**0.5),
            0.0,
        )
    if op == "sq_diff_sum":
        return (
            lambda t, n: gx.consistency_loss(t, b, weight=float(t.numel()), backend=n),
            (x64 - b64).square(),
            lambda t, j, k: _set(t, j, b.view(-1)[j] + (t.view(-1)[j] - b.view(-1)[j]) * k**0.5),
            0.0,
        )
    y = gx.path_length_noise(x.shape, seed, device=x.device, dtype=torch.float64)
    hw = (x.shape[2] * x.shape[3]) ** 0.5
    return (
        lambda t, n: gx.path_length_noise_dot(t, seed, backend=n),
        x64 * y,
        lambda t, j, k: _set(t, j, t.view(-1)[j] * k),
        float(NOISE_ATOL * x64.abs().sum() / hw),
    )


@every_backend
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("op", ["sqnorm", "sq_diff_sum", "noise_dot"])
def test_sum_comparison_rejects_a_dropped_or_duplicated_term(backend, device, dtype, op, seed):
    """The comparison every backend test uses for reductions (float32 bounds for float32 sums of
    float16/bfloat16 inputs) accepts the reference of ``x`` and rejects the reference of ``x`` with
    one term of a typical (median) size dropped or counted twice."""
    need(backend, *{"sqnorm": GN, "sq_diff_sum": CONS, "noise_dot": NOISE}[op])
    x, b = make((2, 3, 16, 16), dtype, device), make((2, 3, 16, 16), dtype, device)
    fn, terms, modify, atol = _sum_case(op, x, b, seed)
    per_sample = op == "sqnorm"
    abs_sum = terms.abs().flatten(1).sum(1) if per_sample else terms.abs().sum()
    got = fn(x, backend)
    assert got.dtype == (torch.float64 if dtype == torch.float64 else torch.float32)
    assert_sum_close(got, fn(x, "reference"), abs_sum, atol=atol)
    row = terms[0].abs().flatten()
    j = row.sort().indices[row.numel() // 2 : row.numel() // 2 + 1]  # median term of sample 0
    for k, what in ((0, "dropped"), (2, "counted twice")):
        with pytest.raises(AssertionError):
            assert_sum_close(got, fn(modify(x.clone(), j, k), "reference"), abs_sum, atol=atol)
            pytest.fail(f"a {what} term was accepted")  # (not an AssertionError: escapes pytest.raises)
