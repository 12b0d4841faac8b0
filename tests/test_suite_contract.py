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
    EMU_UNAVAILABLE,
    GN,
    NOISE,
    NOISE_ATOL,
    assert_ref64,
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


@pytest.mark.parametrize("name", ["cpu", "triton", "cuda", "cuda_emu"])
def test_fused_backend_has_every_op(name):
    """Every op SPEC lists and every op the package declares (native: a kernel for the backend's
    dispatch key; triton: the op ``torch.ops.ganreg_triton.<op>`` and SPEC's launchers in
    ``ganreg_ext.triton_kernels.<family>``)."""
    if name == "triton" and importlib.util.find_spec("triton") is None:
        pytest.skip("triton is not installed")
    if name == "cuda" and not native_with_cuda():
        pytest.skip("ganreg_ext._C was built without CUDA")
    if name == "cuda_emu" and name not in AVAILABLE:
        pytest.skip(f"the test backend cuda_emu is not loaded ({EMU_UNAVAILABLE})")
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
    expected = {"reference": "cpu", "cpu": "cpu", "cuda": "cuda", "cuda_emu": "cpu", "triton": "cuda" if gpu else "cpu"}
    assert device == expected[backend]
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
        *_block_ops(backend, x, y, seed),
    ]  # fmt: skip


def _block_ops(backend, x, y, seed):
    """bias_act (bias_act_grad in its backward, to second order), upfirdn2d (and its adjoint),
    filtered_lrelu, and ADA (ada_augment, ada_augment_adj) in float64, so positions agree."""
    g, b = leaf(x), leaf(torch.randn(x.shape[1], generator=torch.Generator().manual_seed(seed)).to(x.device))
    f = torch.tensor([1.0, 3.0, 2.0, -0.5], device=x.device)  # asymmetric
    ba = gx.bias_act(g, b, act="swish", clamp=1.2, backend=backend)  # bias_act
    dx, db = torch.autograd.grad(ba, (g, b), y, create_graph=True)  # bias_act_grad, order 1
    d2 = torch.autograd.grad((dx * y).sum(), (g, b))  # bias_act_grad, order 2
    lr = gx.bias_act(g, b, act="lrelu", backend=backend)  # saves its output: bias_act_grad from y
    u = gx.upfirdn2d(g, f, up=2, down=[1, 2], padding=[3, 2, 1, 2], backend=backend)
    fl = gx.filtered_lrelu(g, f, f, b, up=2, down=2, padding=2, clamp=1.0, backend=backend)
    x64 = leaf(x.double())
    B, _, H, W = x.shape
    prm = gx.sample_ada_params(B, H, W, 1.0, "bg", device=x.device, cutout=True,
                               generator=torch.Generator(device=x.device).manual_seed(seed))  # fmt: skip
    a = gx.ada_augment(x64, prm, backend=backend)
    return [
        ba, dx, db, *d2, lr, torch.autograd.grad(lr, g, y)[0],
        u, torch.autograd.grad(u, g, torch.ones_like(u))[0],  # upfirdn2d (forward and adjoint)
        fl, torch.autograd.grad(fl, (g, b), torch.ones_like(fl))[0],
        a, torch.autograd.grad(a, x64, y.double())[0],  # ada_augment, ada_augment_adj
    ]  # fmt: skip


@fused
def test_poisoned_outputs_are_fully_written(backend, device, seed):
    """Poisoning is on (a fresh output of the backend's allocator is NaN), so an element a kernel
    forgets stays NaN: every op's outputs are finite and equal the reference."""
    need(backend, *package_ops())
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


# ---------------------------------------------------------------- the float64 error bound can fail
# (helpers.error_bound, the one table): a planted error of each kind fails it in every dtype, on the
# sums (bias gradient, upfirdn2d taps) and on elementwise results (one element a few units off).

PLANTS = {"dropped": 0.0, "doubled": 2.0, "sign flipped": -1.0}


def _db_case(backend, device, dtype, rows=16, cols=3):
    """bias_act's bias gradient db = Σ_rows w·f'(x + b) of x ``[rows, cols]`` (lrelu), with the
    bound's inputs of test_bias_act (Σ|dx| as terms and as one intermediate rounding each)."""
    x, b = make((rows, cols), dtype, device), make((cols,), dtype, device)
    w = make((rows, cols), dtype, device)
    bl = leaf(b)
    (db,) = torch.autograd.grad(gx.bias_act(x, bl, 1, "lrelu", backend=backend), bl, w)

    def ref64(w64):
        b64 = leaf(b.double())
        (g,) = torch.autograd.grad(gx.bias_act(x.double(), b64, 1, "lrelu", backend="reference"), b64, w64)
        return g

    dx = w.double() * torch.where(x.double() + b.double() > 0, 1.0, 0.2) * 2**0.5
    return db, ref64, w.double(), dx.abs()


@fused
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("plant", list(PLANTS))
def test_error_bound_rejects_a_planted_bias_gradient_term(backend, device, dtype, plant, seed):
    """db of the fused backend passes against the float64 reference, and fails against the float64
    reference of the same input with one term (of median size, in column 0) dropped, doubled or
    sign-flipped."""
    need(backend, "bias_act", "bias_act_grad")
    db, ref64, w64, dx = _db_case(backend, device, dtype)
    terms = dx.sum(0)
    assert_ref64(db, ref64(w64), terms, terms, kind="sum", msg="unmodified")
    col = dx[:, 0]
    j = int(col.sort().indices[col.numel() // 2])
    w_bad = w64.clone()
    w_bad[j, 0] *= PLANTS[plant]
    with pytest.raises(AssertionError, match="error bound"):
        assert_ref64(db, ref64(w_bad), terms, terms, kind="sum", msg=plant)


@fused
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("plant", list(PLANTS))
def test_error_bound_rejects_a_planted_upfirdn2d_term(backend, device, dtype, plant, seed):
    """upfirdn2d's tap sums: the fused output passes against the float64 reference and fails when
    one input pixel (of median size) is dropped, doubled or sign-flipped in the reference's input."""
    need(backend, "upfirdn2d")
    x, f = make((1, 1, 6, 7), dtype, device), torch.rand(4, device=device) + 0.5  # taps of one sign, >= 0.5
    y = gx.upfirdn2d(x, f, padding=[2, 1, 2, 1], backend=backend)
    ref = lambda t: gx.upfirdn2d(t.double(), f.double(), padding=[2, 1, 2, 1], backend="reference")  # noqa: E731
    terms = ref(x.double().abs())
    assert_ref64(y, ref(x), terms, kind="sum", msg="unmodified")
    flat = x.double().abs().flatten()
    j = int(flat.sort().indices[flat.numel() // 2])
    x_bad = x.double().clone()
    x_bad.view(-1)[j] *= PLANTS[plant]
    with pytest.raises(AssertionError, match="error bound"):
        assert_ref64(y, ref(x_bad), terms, kind="sum", msg=plant)


# an elementwise result off by this many units in the last place of its own dtype fails
ELEMENT_ULPS = {torch.float16: 3, torch.bfloat16: 3, torch.float32: 64, torch.float64: 64}


@fused
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("plant", ["ulps off", "zeroed", "sign flipped", "neighbour's value"])
def test_error_bound_rejects_a_planted_element(backend, device, dtype, plant, seed):
    """bias_act's output (tanh, the elementwise bound of test_bias_act): the fused result passes,
    and one element of it altered fails: by ELEMENT_ULPS units of its dtype, zeroed, sign-flipped,
    or replaced by its neighbour's value (a shifted index)."""
    need(backend, "bias_act")
    x = make((64,), dtype, device)
    y = gx.bias_act(x, act="tanh", backend=backend)
    x64 = x.double()
    y64 = gx.bias_act(x64, act="tanh", backend="reference")
    terms = (1 - torch.tanh(x64).square()) * x64.abs()  # |f'(z)|·|z|
    assert_ref64(y, y64, terms, msg="unmodified")
    bad = y.clone()
    # an element of a typical size (~0.5) whose right neighbour differs by more than 0.1 (a neighbour
    # of nearly the same value would be a plant of a few units, the "ulps off" case)
    apart = torch.cat([(y64[1:] - y64[:-1]).abs() > 0.1, y64.new_zeros(1, dtype=torch.bool)])
    j = int(torch.where(apart, (y64.abs() - 0.5).abs(), torch.inf).argmin())
    if plant == "ulps off":
        v = bad[j].double().clone()
        ulp = torch.finfo(dtype).eps * 2.0 ** torch.floor(torch.log2(v.abs()))
        bad[j] = (v - v.sign() * ELEMENT_ULPS[dtype] * ulp).to(dtype)  # toward 0: the grid there is as fine or finer
        assert (bad[j].double() - v).abs() >= ELEMENT_ULPS[dtype] * ulp * 0.99
    elif plant == "zeroed":
        bad[j] = 0
    elif plant == "sign flipped":
        bad[j] = -bad[j]
    else:
        bad[j] = bad[j + 1]
    with pytest.raises(AssertionError, match="error bound"):
        assert_ref64(bad, y64, terms, msg=plant)
