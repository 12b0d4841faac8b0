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


# ---------------------------------------------------------------- the blocks and ADA (issue 22)
# Random shapes, parameters, dtypes and layouts; fused backends against the float64 reference within
# helpers.error_bound (the bounds of test_bias_act / test_upfirdn2d / test_tiles, imported from there).
# Derandomized (the same examples every run: CI is stable) with few examples under the Triton
# interpreter; a failure prints the falsifying example.

import pytest  # noqa: E402
from hypothesis import assume  # noqa: E402
from test_bias_act import _inputs, _ref64, _run  # noqa: E402
from test_tiles import _ada, _ufd_check  # noqa: E402

from helpers import LAYOUTS, assert_ref64, make  # noqa: E402

BLOCK_DTYPES = [torch.float64, torch.float32, torch.float16, torch.bfloat16]


def _examples(backend, device, strategy, check, cpu: int = 25, interpreted: int = 6) -> None:
    """Run ``check(case)`` over derandomized examples of ``strategy`` (fewer in the interpreter)."""
    slow = backend == "triton" and torch.device(device).type == "cpu"

    @settings(max_examples=interpreted if slow else cpu, derandomize=True, database=None, deadline=None, print_blob=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])  # fmt: skip
    @given(strategy)
    def run(case):
        torch.manual_seed(case["seed"])
        check(case)
        ran.append(case)

    ran = []
    run()
    n = interpreted if slow else cpu
    assert len(ran) >= n // 2, f"only {len(ran)} of {n} examples ran"
    print(f"{len(ran)} examples")


@st.composite
def _bias_act_cases(draw, big: bool):
    nd = draw(st.integers(1, 4))
    shape = [draw(st.integers(1, 5)) for _ in range(nd)]
    dim = draw(st.integers(0, nd - 1))
    if big:  # past the CPU kernels' blocks of 256 along the bias dim / innermost dim
        shape[draw(st.sampled_from([dim, nd - 1]))] = draw(st.integers(250, 600))
    dtype = draw(st.sampled_from(BLOCK_DTYPES))
    act = draw(st.sampled_from(list(ACT_NAMES)))
    clamp = draw(st.sampled_from([None, 0.0, 0.7, 3.0])) if dtype in (torch.float32, torch.float64) else None
    with_bias = draw(st.booleans()) and nd > 1  # 1-d x with a bias: test_bias_of_a_1d_input (a known bug)
    return dict(shape=tuple(shape), dim=dim, dtype=dtype, act=act, clamp=clamp, with_bias=with_bias,
                gain=draw(st.sampled_from([None, 0.6, 2.0])), alpha=draw(st.sampled_from([None, 0.1, 0.4])),
                layout=draw(st.sampled_from(LAYOUTS)), seed=draw(st.integers(0, 2**31 - 1)))  # fmt: skip


from ganreg_ext._contract import ACT_CODES as ACT_NAMES  # noqa: E402


@fused
@pytest.mark.parametrize("big", [False, True], ids=["small", "past-a-block"])
def test_bias_act_property(backend, device, big):
    """bias_act forward, dx, db, d2x, d2b against the float64 reference over random shapes, dims,
    activations, clamps, gains, alphas, dtypes and layouts."""
    need(backend, "bias_act", "bias_act_grad")

    def check(c):
        kw = {k: c[k] for k in ("clamp", "gain", "alpha") if c[k] is not None}
        x0, b0 = _inputs(c["shape"], c["dim"], c["act"], c["dtype"], device, c["layout"], kw.get("clamp"), kw.get("gain"),
                         c["with_bias"], kw.get("alpha"))  # fmt: skip
        w, v = torch.randn(c["shape"], device=device).to(c["dtype"]), torch.randn(c["shape"], device=device).to(c["dtype"])
        kw_all = dict(dim=c["dim"], act=c["act"], **kw)
        y, _, g1, g2 = _run(backend, x0, b0, w, v, **kw_all)
        got = {"forward": y, "dx": g1[0], "d2x": g2[0]}
        if b0 is not None:
            got.update(db=g1[1], d2b=g2[1])
        for name, (r64, terms, inter, kind) in _ref64(x0, b0, w, v, **kw_all).items():
            assert_ref64(got[name], r64, terms, inter, kind, msg=f"{name} {c}")

    if big and backend == "triton" and torch.device(device).type == "cpu":
        pytest.skip("blocks of 256 are the CPU kernels' (test_tiles covers the Triton tiles)")
    _examples(backend, device, _bias_act_cases(big), check, cpu=15 if big else 30, interpreted=8)


@fused
def test_bias_of_a_1d_input(backend, device):
    """x ``[n]`` with a bias ``[n]`` along dim 0: db = dx elementwise (nothing to reduce)."""
    need(backend, "bias_act", "bias_act_grad")
    x, b = torch.randn(3, device=device, requires_grad=True), torch.randn(3, device=device, requires_grad=True)
    w = torch.randn(3, device=device)
    dx, db = torch.autograd.grad(gx.bias_act(x, b, dim=0, act="tanh", backend=backend), [x, b], w)
    torch.testing.assert_close(db, dx)


@st.composite
def _upfirdn2d_cases(draw):
    up, down = [draw(st.integers(1, 3)) for _ in range(2)], [draw(st.integers(1, 3)) for _ in range(2)]
    sep = draw(st.booleans())
    fw = draw(st.integers(1, 6))
    fh = fw if sep else draw(st.integers(1, 6))
    H, W = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    pad = [draw(st.integers(-2, 4)) for _ in range(4)]
    assume(W * up[0] + pad[0] + pad[1] - fw >= 0 and H * up[1] + pad[2] + pad[3] - fh >= 0)
    return dict(shape=(draw(st.integers(1, 2)), draw(st.integers(1, 3)), H, W), f=(fw,) if sep else (fh, fw), up=up,
                down=down, padding=pad, flip_filter=draw(st.booleans()), gain=draw(st.sampled_from([1.0, 0.5, 4.0])),
                dtype=draw(st.sampled_from(BLOCK_DTYPES)), layout=draw(st.sampled_from(LAYOUTS)),
                seed=draw(st.integers(0, 2**31 - 1)))  # fmt: skip


def test_reference_upfirdn2d_negative_gain_separable():
    """gain < 0 with a 1-d (separable) filter: the reference equals gain times the gain-1 result."""
    x, f = torch.randn(1, 1, 3, 4, dtype=torch.float64), torch.randn(2, dtype=torch.float64)
    y = gx.upfirdn2d(x, f, padding=[1, 0, 1, 0], gain=-0.5, backend="reference")
    torch.testing.assert_close(y, -0.5 * gx.upfirdn2d(x, f, padding=[1, 0, 1, 0], backend="reference"))


@fused
def test_upfirdn2d_property(backend, device):
    """upfirdn2d forward and adjoint (its x-gradient) against the float64 reference over random
    up/down factors, separable and 2-D asymmetric filters, paddings and crops, flips, gains, dtypes
    and layouts."""
    need(backend, "upfirdn2d")

    def check(c):
        x = make(c["shape"], c["dtype"], device, c["layout"])
        f = torch.randn(c["f"], device=device)
        _ufd_check(x, f, backend, up=c["up"], down=c["down"], padding=c["padding"], flip_filter=c["flip_filter"], gain=c["gain"])

    _examples(backend, device, _upfirdn2d_cases(), check, cpu=100, interpreted=10)  # (replaces 400 raw-op configs)


@st.composite
def _filtered_lrelu_cases(draw):
    up, down = draw(st.sampled_from([1, 2, [2, 1], [1, 2]])), draw(st.sampled_from([1, 2, [1, 2]]))
    dtype = draw(st.sampled_from([torch.float64, torch.float32]))
    return dict(shape=(draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(2, 7)), draw(st.integers(2, 7))),
                fu=draw(st.sampled_from([None, 1, 4, 6, (3, 4)])), fd=draw(st.sampled_from([None, 2, 4, (4, 3)])), up=up,
                down=down, padding=[draw(st.integers(0, 4)) for _ in range(4)], with_bias=draw(st.booleans()),
                gain=draw(st.sampled_from([1.0, 1.4])), slope=draw(st.sampled_from([0.2, 0.0, 1.5])),
                clamp=draw(st.sampled_from([None, 0.8])) if dtype == torch.float64 else None, flip=draw(st.booleans()),
                dtype=dtype, seed=draw(st.integers(0, 2**31 - 1)))  # fmt: skip


@fused
def test_filtered_lrelu_property(backend, device):
    """filtered_lrelu output, dx and db against the float64 reference over random filters (none,
    1-D, 2-D, asymmetric), anisotropic up/down, paddings, slopes, gains and clamps (bound: the
    composition applied to |x|, |b|, |f| with a linear activation, as test_upfirdn2d)."""
    need(backend, "upfirdn2d", "bias_act", "bias_act_grad")

    def check(c):
        filt = lambda s: None if s is None else torch.randn(s, dtype=torch.float64, device=device) / 2  # noqa: E731
        fu, fd = filt(c["fu"]), filt(c["fd"])
        x0 = torch.randn(c["shape"], dtype=torch.float64, device=device)
        b0 = torch.randn(c["shape"][1], dtype=torch.float64, device=device) if c["with_bias"] else None
        kw = dict(up=c["up"], down=c["down"], padding=c["padding"], gain=c["gain"], slope=c["slope"], flip_filter=c["flip"])
        try:
            gx.filtered_lrelu(x0, fu, fd, b0, backend="reference", **kw)
        except ValueError:
            assume(False)  # an empty output for this padding: not an example
        res = []
        for name, dt in ((backend, c["dtype"]), ("reference", torch.float64)):
            cast = lambda t, dt=dt: None if t is None else t.to(dt)  # noqa: E731
            x = x0.to(dt).requires_grad_()
            b = None if b0 is None else b0.to(dt).requires_grad_()
            y = gx.filtered_lrelu(x, cast(fu), cast(fd), b, clamp=c["clamp"], backend=name, **kw)
            w = torch.randn(y.shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64).to(device, dt)
            res.append((y.detach(), *torch.autograd.grad(y, [t for t in (x, b) if t is not None], w), w))
        ab = lambda t: None if t is None else t.abs()  # noqa: E731
        kw_lin = dict(kw, slope=max(1.0, c["slope"]), gain=abs(c["gain"]))
        terms = gx.filtered_lrelu(x0.abs(), ab(fu), ab(fd), ab(b0), backend="reference", **kw_lin)
        xa = x0.abs().requires_grad_()
        y_lin = gx.filtered_lrelu(xa, ab(fu), ab(fd), None, backend="reference", **kw_lin)
        (dterms,) = torch.autograd.grad(y_lin, xa, res[1][-1].abs())
        inter = None if c["dtype"] == torch.float64 else terms  # the upsampled tensor rounds to the dtype
        dinter = None if c["dtype"] == torch.float64 else dterms
        assert_ref64(res[0][0], res[1][0], terms, inter, kind="sum", msg=f"forward {c}")
        assert_ref64(res[0][1], res[1][1], dterms, dinter, kind="sum", msg=f"dx {c}")
        if b0 is not None:
            s = dterms.sum((0, 2, 3))
            assert_ref64(res[0][2], res[1][2], s, s, kind="sum", msg=f"db {c}")

    _examples(backend, device, _filtered_lrelu_cases(), check, cpu=30, interpreted=6)


@st.composite
def _ada_cases(draw):
    C = draw(st.sampled_from([1, 3]))
    return dict(shape=(draw(st.integers(1, 9)), C, draw(st.integers(1, 20)), draw(st.integers(1, 20))),
                preset=draw(st.sampled_from(["bgc", "bg", "b", "g", "c"] if C == 3 else ["bg", "b", "g"])),
                p=draw(st.sampled_from([0.3, 1.0])), cutout=draw(st.booleans()),
                dtype=draw(st.sampled_from([torch.float64, torch.float32])), layout=draw(st.sampled_from(LAYOUTS)),
                seed=draw(st.integers(0, 2**31 - 1)))  # fmt: skip


@fused
def test_ada_property(backend, device):
    """ADA forward and adjoint against the float64 reference (float32: no worse than the float32
    reference, test_tiles._ada) over random batches (the CPU adjoint's chunks at B < 8 and B >= 8),
    channel counts, sizes, presets, probabilities, cutout, dtypes and layouts."""
    need(backend, "ada_augment", "ada_augment_adj")

    def check(c):
        B, _, H, W = c["shape"]
        gen = torch.Generator(device=device).manual_seed(c["seed"])
        prm = gx.sample_ada_params(B, H, W, c["p"], c["preset"], device=device, cutout=c["cutout"], generator=gen)
        _ada(make(c["shape"], c["dtype"], device, c["layout"]), prm, backend)

    _examples(backend, device, _ada_cases(), check, cpu=25, interpreted=6)
