"""Property tests (hypothesis): every fused backend equals the reference over random shapes, strides,
dtypes and value ranges (tiny ~1e-30, huge ~1e30 with float32 overflow to inf, denormals), and
every backend is deterministic (bitwise-equal repeated calls; for ``cpu`` also across thread counts).
A failure prints the falsifying example; replay it with the printed ``@reproduce_failure`` blob."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ganreg_ext as gx
from helpers import ALL_OPS, CONS, CR, DA, GN, NOISE, NOISE_ATOL, TOL, assert_close, assert_sum_close, every_backend, fused, need

SETTINGS = settings(max_examples=25, deadline=None, print_blob=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])  # fmt: skip
DTYPES = [torch.float32, torch.float16, torch.bfloat16, torch.float64]
# magnitudes: denormal (float32), tiny, ordinary, huge (float32 squares overflow to inf)
MAGNITUDES = [1e-40, 1e-30, 1e-20, 1e-3, 1.0, 1e3, 1e20, 1e30]


@dataclass(frozen=True)
class Spec:
    """A random tensor: ``build(device)`` makes it on the test's device (printed by hypothesis)."""

    shape: tuple
    dtype: torch.dtype
    mag: float
    layout: str
    seed: int

    def build(self, device) -> torch.Tensor:
        def base(*size):  # scaled and cast BEFORE the view is taken, so the view's strides survive
            x = torch.randn(*size, generator=torch.Generator().manual_seed(self.seed), dtype=torch.float64)
            return (x * self.mag).to(self.dtype).to(device)

        shape = self.shape
        if self.layout == "sliced":
            return base(*shape[:-1], 2 * shape[-1])[..., ::2]
        if self.layout == "transposed" and len(shape) >= 3:
            return base(shape[0], *shape[1:][::-1]).transpose(1, -1)
        if self.layout == "offset":
            return base(math.prod(shape) + 3)[3:].view(shape)
        x = base(*shape)
        return x.contiguous(memory_format=torch.channels_last) if self.layout == "channels_last" and x.dim() == 4 else x


@st.composite
def tensors(draw, min_dim=1, max_dim=4, image=False):
    """A :class:`Spec`: random shape, dtype, layout (contiguous / transposed / sliced / channels_last /
    storage offset) and magnitude; values are finite in their dtype or overflow."""
    dtype = draw(st.sampled_from(DTYPES))
    mag = draw(st.sampled_from(MAGNITUDES if dtype in (torch.float32, torch.float64) else [1e-3, 1.0, 1e2]))
    if image:
        shape = (draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 9)), draw(st.integers(1, 9)))
    else:
        nd = draw(st.integers(min_dim, max_dim))
        shape = tuple(draw(st.integers(1, 6)) for _ in range(nd))
    layout = draw(st.sampled_from(["contiguous", "sliced", "transposed", "channels_last", "offset"]))
    return Spec(shape, dtype, mag, layout, draw(st.integers(0, 2**31 - 1)))


def _per_sample(t):
    return t.reshape(t.shape[0], -1).sum(1)


def _sum_atol(acc, numel):
    """Sums of squares of tiny values: every subnormal term may round (or flush) by up to ``tiny``."""
    return numel * torch.finfo(acc).tiny


@fused
@SETTINGS
@given(data=tensors(), second=tensors(), per_sample=st.booleans(), inv=st.sampled_from([None, 1.0, 2.0**-16, 3.0]))
def test_sqnorm_matches_reference(backend, device, data, second, per_sample, inv):
    need(backend, *GN)
    x, y = data.build(device), second.build(device)
    grads = [x]
    if per_sample and y.shape[0] == x.shape[0] or not per_sample:
        grads.append(y)
    got = gx.grad_sqnorm(grads, per_sample=per_sample, inv_scale=inv, backend=backend)
    want = gx.grad_sqnorm(grads, per_sample=per_sample, inv_scale=inv, backend="reference")
    assert got.dtype == want.dtype and got.shape == want.shape
    # Σ|terms| in float64 (finite where the float32 sum overflows: an inf must match an inf)
    terms = [(g.double() * (inv or 1.0)).square() for g in grads]
    abs_sum = sum(_per_sample(t) if per_sample else t.sum() for t in terms)
    assert_sum_close(got, want, abs_sum, atol=_sum_atol(got.dtype, sum(g.numel() for g in grads)))


@fused
@SETTINGS
@given(data=tensors(), gamma=st.sampled_from([0.0, 0.1, 10.0]), center=st.sampled_from([0.0, 1.0]), one_sided=st.booleans())
def test_penalties_and_gradients_match_reference(backend, device, data, gamma, center, one_sided):
    need(backend, *GN)
    x, dtype, mag = data.build(device), data.dtype, data.mag
    if mag > 1e3 or mag < 1e-20:
        x = (x.double() / mag).to(dtype)  # gradients of huge/tiny penalties overflow/underflow: ordinary values here
    outs = {}
    for b in (backend, "reference"):
        g = x.detach().clone().requires_grad_()
        r1 = gx.r1_penalty(g, gamma=gamma, reduction="none", backend=b)
        gp = gx.gradient_penalty(g, center=center, one_sided=one_sided, reduction="none", backend=b)
        (r1.sum() + gp.sum()).backward()
        outs[b] = (r1.detach(), gp.detach(), g.grad)
    s = _per_sample(x.double().square())
    atol = _sum_atol(outs[backend][0].dtype, x.numel())
    assert_sum_close(outs[backend][0], outs["reference"][0], gamma / 2 * s, atol=atol)
    assert_sum_close(outs[backend][1], outs["reference"][1], 10 * (s.sqrt() + center) ** 2, atol=atol)
    # the GP coefficient (‖g‖ − c)/‖g‖ cancels near the center: a few more units in the last place
    assert_close(outs[backend][2], outs["reference"][2], factor=8, msg=f"penalty gradient [{backend}]")


@fused
@SETTINGS
@given(data=tensors(image=True), seed=st.integers(0, 2**63 - 1), sigma=st.sampled_from([0.0, 0.1, 3.0]))
def test_noise_ops_match_reference(backend, device, data, seed, sigma):
    need(backend, *NOISE)
    x, dtype = data.build(device), data.dtype
    got = gx.path_length_noise_dot(x, seed=seed, backend=backend)
    want = gx.path_length_noise_dot(x, seed=seed, backend="reference")
    # a signed sum Σ x·y; the streams agree to 1e-5 absolute (docs/semantics.md#path-length-regularization-stylegan2), y = n / sqrt(H·W)
    y = gx.path_length_noise(x.shape, seed, device=device, dtype=torch.float64)
    hw = math.sqrt(x.shape[2] * x.shape[3])
    abs_x = x.double().abs()
    assert_sum_close(
        got, want, (abs_x * y.abs()).sum(), atol=float(NOISE_ATOL * abs_x.sum() / hw) + _sum_atol(got.dtype, x.numel())
    )
    got = gx.instance_noise(x, sigma, seed=seed, backend=backend)
    want = gx.instance_noise(x, sigma, seed=seed, backend="reference")
    assert got.dtype == x.dtype and got.shape == x.shape
    rtol, atol = TOL[dtype]
    torch.testing.assert_close(got, want, rtol=rtol, atol=atol + NOISE_ATOL * sigma)


@fused
@SETTINGS
@given(a=tensors(), data=st.data())
def test_consistency_matches_reference(backend, device, a, data):
    need(backend, *CONS)
    x, dtype, mag = a.build(device), a.dtype, a.mag
    gen = torch.Generator().manual_seed(data.draw(st.integers(0, 1000)))
    y = (torch.randn(x.shape, generator=gen, dtype=torch.float64) * mag).to(dtype).to(device)
    outs = {}
    for b in (backend, "reference"):
        xa, ya = x.detach().clone().requires_grad_(), y.detach().clone().requires_grad_()
        loss = gx.consistency_loss(xa, ya, backend=b)
        if torch.isfinite(loss):
            loss.backward()
        outs[b] = (loss.detach(), xa.grad, ya.grad)
    mse = (x.double() - y.double()).square().mean()
    assert_sum_close(outs[backend][0], outs["reference"][0], mse, atol=torch.finfo(outs[backend][0].dtype).tiny)
    if outs["reference"][1] is not None:
        for got, want in zip(outs[backend][1:], outs["reference"][1:]):
            assert_close(got, want, msg="mse grad")


@fused
@SETTINGS
@given(
    data=tensors(image=True),
    policy=st.sampled_from(["color", "translation", "cutout", "color,translation,cutout", "translation,cutout"]),
    seed=st.integers(0, 10**6),
)
def test_augment_matches_reference(backend, device, data, policy, seed):
    need(backend, *DA, *CR)
    x, dtype, mag = data.build(device), data.dtype, data.mag
    if mag > 1e20:
        x = (x.double() / mag).to(dtype)  # colour means of ~1e30 values overflow differently by summation order
    B, _, H, W = x.shape
    g = torch.Generator().manual_seed(seed)
    dp = {k: v.to(device) for k, v in gx.sample_diffaug_params(B, H, W, policy, generator=g).items()}
    cp = {k: v.to(device) for k, v in gx.sample_cr_params(B, H, W, generator=g).items()}
    cot = torch.randn(x.shape, generator=g).to(dtype).to(device)
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
            # elementwise in the output dtype; the colour means cancel: float32 error relative to the magnitude
            rtol, atol = TOL[want.dtype]
            torch.testing.assert_close(got, want, rtol=rtol * 4, atol=atol * 4 * max(min(mag, 1e20), 1.0))


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
    B, _, H, W = x.shape
    for sampler, op in ((gx.sample_diffaug_params, gx.diff_augment), (gx.sample_cr_params, gx.cr_augment)):
        params = {k: v.to(x.device) for k, v in sampler(B, H, W, generator=gen).items()}
        outs.append(op(x, params=params, backend=backend))
    return [o.detach() for o in outs]


@every_backend
def test_bitwise_deterministic_repeated_calls(backend, device, seed):
    need(backend, *ALL_OPS)
    x = torch.randn(4, 3, 16, 16, device=device) * 3  # small: the triton interpreter is slow; cpu has a larger test below
    first = _all_outputs(backend, x, seed)
    again = _all_outputs(backend, x, seed)
    for i, (a, b) in enumerate(zip(first, again)):
        assert torch.equal(a, b), f"{backend}: output {i} differs between identical calls"


def test_cpu_bitwise_across_thread_counts(seed):
    need("cpu", *ALL_OPS)
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
