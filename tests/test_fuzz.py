"""Property tests (hypothesis): every fused backend equals the reference over random shapes, strides,
dtypes and value ranges (tiny ~1e-30, huge ~1e30 with float32 overflow to inf, denormals), and
every backend is deterministic (bitwise-equal repeated calls; for ``cpu`` also across thread counts).
A failure prints the falsifying example; replay it with the printed ``@reproduce_failure`` blob."""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ganreg_ext as gx
from ganreg_ext import _dispatch
from helpers import FUSED_BACKENDS, TOL

SETTINGS = settings(max_examples=25, deadline=None, print_blob=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])  # fmt: skip
GN = ("sqnorm", "scale", "dot")
NOISE = ("noise_dot", "noise_axpy")
CONS = ("sq_diff_sum", "diff_scale")
DA = ("diff_augment", "diff_augment_adj")
CR = ("cr_augment", "cr_augment_adj")


def _needs(backend, ops):
    missing = [op for op in ops if backend not in _dispatch._KERNELS.get(op, {})]
    if missing:
        pytest.skip(f"backend {backend!r} has no kernel for {missing}")


FUSED = FUSED_BACKENDS or [pytest.param("<none>", marks=pytest.mark.skip(reason="no fused backend is available here"))]
DTYPES = [torch.float32, torch.float16, torch.bfloat16, torch.float64]
# magnitudes: denormal (float32), tiny, ordinary, huge (float32 squares overflow to inf)
MAGNITUDES = [1e-40, 1e-30, 1e-20, 1e-3, 1.0, 1e3, 1e20, 1e30]


@st.composite
def tensors(draw, min_dim=1, max_dim=4, image=False):
    """(tensor, dtype, magnitude): random shape, dtype, layout (contiguous / transposed / sliced /
    channels_last / expanded-free views), magnitude; values are finite in their dtype or overflow."""
    dtype = draw(st.sampled_from(DTYPES))
    mag = draw(st.sampled_from(MAGNITUDES if dtype in (torch.float32, torch.float64) else [1e-3, 1.0, 1e2]))
    if image:
        shape = (draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 9)), draw(st.integers(1, 9)))
    else:
        nd = draw(st.integers(min_dim, max_dim))
        shape = tuple(draw(st.integers(1, 6)) for _ in range(nd))
    layout = draw(st.sampled_from(["contiguous", "sliced", "transposed", "channels_last", "offset"]))
    seed = draw(st.integers(0, 2**31 - 1))
    gen = torch.Generator().manual_seed(seed)
    if layout == "sliced":
        x = torch.randn(*shape[:-1], 2 * shape[-1], generator=gen, dtype=torch.float64)[..., ::2]
    elif layout == "transposed" and len(shape) >= 3:
        x = torch.randn(shape[0], *shape[1:][::-1], generator=gen, dtype=torch.float64).transpose(1, -1)
    elif layout == "offset":
        x = torch.randn(int(torch.tensor(shape).prod()) + 3, generator=gen, dtype=torch.float64)[3:].view(shape)
    else:
        x = torch.randn(shape, generator=gen, dtype=torch.float64)
    x = (x * mag).to(dtype)
    if layout == "channels_last" and x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    return x, dtype, mag


def _close(got, want, dtype, quad_mag=None, factor=1.0, what=""):
    """Compare with the dtype tolerance; ``quad_mag`` scales atol for outputs quadratic in the input."""
    rtol, atol = TOL[dtype]
    if quad_mag is not None:
        atol = max(atol * min(quad_mag**2, 1.0), 1e-37 if want.dtype != torch.float64 else 1e-300)
    got, want = got.detach(), want.detach()
    # overflow must be consistent: inf exactly where the reference has inf
    assert torch.equal(torch.isinf(got), torch.isinf(want)), f"{what}: inf pattern differs\n{got}\n{want}"
    fin = torch.isfinite(want)
    torch.testing.assert_close(got[fin].to(want.dtype), want[fin], rtol=rtol * factor, atol=atol * factor, msg=what or None)


@pytest.mark.parametrize("backend", FUSED)
@SETTINGS
@given(data=tensors(), second=tensors(), per_sample=st.booleans(), inv=st.sampled_from([None, 1.0, 2.0**-16, 3.0]))
def test_sqnorm_matches_reference(backend, data, second, per_sample, inv):
    _needs(backend, GN)
    x, dtype, mag = data
    y, dtype2, mag2 = second
    grads = [x]
    if per_sample and y.shape[0] == x.shape[0] or not per_sample:
        grads.append(y)
    got = gx.grad_sqnorm(grads, per_sample=per_sample, inv_scale=inv, backend=backend)
    want = gx.grad_sqnorm(grads, per_sample=per_sample, inv_scale=inv, backend="reference")
    assert got.dtype == want.dtype and got.shape == want.shape
    worst = dtype if TOL[dtype][0] >= TOL[dtype2][0] else dtype2  # the looser of the two dtypes
    _close(got, want, worst, quad_mag=max(mag, mag2) * (inv or 1.0), factor=4, what=f"sqnorm[{backend}]")


@pytest.mark.parametrize("backend", FUSED)
@SETTINGS
@given(data=tensors(), gamma=st.sampled_from([0.0, 0.1, 10.0]), center=st.sampled_from([0.0, 1.0]), one_sided=st.booleans())
def test_penalties_and_gradients_match_reference(backend, data, gamma, center, one_sided):
    _needs(backend, GN)
    x, dtype, mag = data
    if mag > 1e3 or mag < 1e-20:
        x = (x.double() / mag).to(dtype)  # gradients of huge/tiny penalties overflow/underflow: ordinary values here
    outs = {}
    for b in (backend, "reference"):
        g = x.detach().clone().requires_grad_()
        r1 = gx.r1_penalty(g, gamma=gamma, reduction="none", backend=b)
        gp = gx.gradient_penalty(g, center=center, one_sided=one_sided, reduction="none", backend=b)
        (r1.sum() + gp.sum()).backward()
        outs[b] = (r1, gp, g.grad)
    for i, (got, want) in enumerate(zip(outs[backend], outs["reference"])):
        _close(
            got.float() if got.dtype != torch.float64 else got,
            want.float() if want.dtype != torch.float64 else want,
            dtype,
            factor=8,
            what=f"penalty output {i}[{backend}]",
        )


@pytest.mark.parametrize("backend", FUSED)
@SETTINGS
@given(data=tensors(image=True), seed=st.integers(0, 2**63 - 1), sigma=st.sampled_from([0.0, 0.1, 3.0]))
def test_noise_ops_match_reference(backend, data, seed, sigma):
    _needs(backend, NOISE)
    x, dtype, mag = data
    got = gx.path_length_noise_dot(x, seed=seed, backend=backend)
    want = gx.path_length_noise_dot(x, seed=seed, backend="reference")
    # backends agree on the stream to 1e-5 absolute (SPEC §3): scale the tolerance with Σ|x|
    bound = 1e-5 * x.double().abs().sum().item() + TOL[dtype][1] * mag
    if torch.isfinite(want):
        assert abs(got.item() - want.item()) <= bound + TOL[dtype][0] * abs(want.item()), (got, want)
    else:
        assert not torch.isfinite(got)
    got = gx.instance_noise(x, sigma, seed=seed, backend=backend)
    want = gx.instance_noise(x, sigma, seed=seed, backend="reference")
    assert got.dtype == x.dtype and got.shape == x.shape
    torch.testing.assert_close(got.double(), want.double(), rtol=TOL[dtype][0], atol=TOL[dtype][1] * max(mag, 1) + 1e-5 * sigma)


@pytest.mark.parametrize("backend", FUSED)
@SETTINGS
@given(a=tensors(), data=st.data())
def test_consistency_matches_reference(backend, a, data):
    _needs(backend, CONS)
    x, dtype, mag = a
    y = (torch.randn(x.shape, generator=torch.Generator().manual_seed(data.draw(st.integers(0, 1000)))) * mag).to(dtype)
    outs = {}
    for b in (backend, "reference"):
        xa, ya = x.detach().clone().requires_grad_(), y.detach().clone().requires_grad_()
        loss = gx.consistency_loss(xa, ya, backend=b)
        if torch.isfinite(loss):
            loss.backward()
        outs[b] = (loss, xa.grad, ya.grad)
    _close(outs[backend][0], outs["reference"][0], dtype, quad_mag=mag, factor=4, what="mse")
    if outs["reference"][1] is not None:
        for got, want in zip(outs[backend][1:], outs["reference"][1:]):
            _close(got, want, dtype, factor=4, what="mse grad")


@pytest.mark.parametrize("backend", FUSED)
@SETTINGS
@given(
    data=tensors(image=True),
    policy=st.sampled_from(["color", "translation", "cutout", "color,translation,cutout", "translation,cutout"]),
    seed=st.integers(0, 10**6),
)
def test_augment_matches_reference(backend, data, policy, seed):
    _needs(backend, DA + CR)
    x, dtype, mag = data
    if mag > 1e20:
        x = (x.double() / mag).to(dtype)  # colour means of ~1e30 values overflow differently by summation order
    B, _, H, W = x.shape
    g = torch.Generator().manual_seed(seed)
    dp = gx.sample_diffaug_params(B, H, W, policy, generator=g)
    cp = gx.sample_cr_params(B, H, W, generator=g)
    cot = torch.randn(x.shape, generator=g).to(dtype)
    for fn in (
        lambda t, b: gx.diff_augment(t, policy, params=dp, backend=b),
        lambda t, b: gx.cr_augment(t, params=cp, backend=b),
    ):
        res = {}
        for b in (backend, "reference"):
            t = x.detach().clone().requires_grad_()
            out = fn(t, b)
            (out.float() * cot.float()).sum().backward()
            res[b] = (out, t.grad)
        for got, want in zip(res[backend], res["reference"]):
            assert got.dtype == want.dtype and got.shape == want.shape
            torch.testing.assert_close(
                got.double(), want.double(), rtol=TOL[dtype][0] * 4, atol=TOL[dtype][1] * 4 * max(min(mag, 1e20), 1.0)
            )


# ---------------------------------------------------------------- determinism


def _all_outputs(backend, x, seed):
    g = x.detach().clone().requires_grad_()
    outs = [gx.grad_sqnorm(g, backend=backend), gx.grad_sqnorm([g, g * 2], per_sample=False, backend=backend)]
    r1 = gx.r1_penalty(g, backend=backend)
    outs += [r1, torch.autograd.grad(r1, g)[0]]
    outs.append(gx.path_length_noise_dot(x, seed=seed, backend=backend))
    outs.append(gx.instance_noise(x, 0.5, seed=seed, backend=backend))
    outs.append(gx.consistency_loss(x, x.flip(0), backend=backend))
    gen = torch.Generator().manual_seed(seed)
    outs.append(gx.diff_augment(x, params=gx.sample_diffaug_params(*x.shape[:1], *x.shape[2:], generator=gen), backend=backend))
    outs.append(gx.cr_augment(x, params=gx.sample_cr_params(*x.shape[:1], *x.shape[2:], generator=gen), backend=backend))
    return [o.detach() for o in outs]


ALL = GN + NOISE + CONS + DA + CR


@pytest.mark.parametrize("backend", ["reference"] + FUSED_BACKENDS)
def test_bitwise_deterministic_repeated_calls(backend, seed):
    if backend != "reference":
        _needs(backend, ALL)
    x = torch.randn(4, 3, 16, 16) * 3  # small: the triton interpreter is slow; cpu has a larger test below
    first = _all_outputs(backend, x, seed)
    for _ in range(1):
        again = _all_outputs(backend, x, seed)
        for i, (a, b) in enumerate(zip(first, again)):
            assert torch.equal(a, b), f"{backend}: output {i} differs between identical calls"


@pytest.mark.skipif("cpu" not in gx.available_backends(), reason="the cpu (C++) backend is not built here")
def test_cpu_bitwise_across_thread_counts(seed):
    _needs("cpu", ALL)
    x = torch.randn(16, 3, 64, 64) * 3  # large enough for at::parallel_for to split the work
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = _all_outputs("cpu", x, seed)
        torch.set_num_threads(2)
        two = _all_outputs("cpu", x, seed)
    finally:
        torch.set_num_threads(old)
    for i, (a, b) in enumerate(zip(one, two)):
        assert torch.equal(a, b), f"cpu: output {i} differs between 1 and 2 threads"
