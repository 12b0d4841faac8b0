"""Tests of the Triton launchers of the building-block families (issue 14, docs/semantics.md#building-blocks-bias_act-upfirdn2d-filtered_lrelu), called directly:
``ganreg_ext.triton_kernels.bias_act.{bias_act, bias_act_grad}`` and
``ganreg_ext.triton_kernels.upfirdn2d.upfirdn2d`` (on CPU machines under ``TRITON_INTERPRET=1``,
which conftest sets; outputs start NaN-poisoned, so an unwritten element fails).

The truths are eager float64 formulas written here from the math (not the package's reference):
``bias_act`` from ``torch`` activations; ``bias_act_grad`` from repeated ``torch.autograd.grad`` of
that eager forward (orders 1..3 for every act, 4..8 for the smooth ones); ``upfirdn2d`` from zero
insertion + ``F.pad`` + ``conv2d`` + slicing, and the adjoint identity ``<U x, y> = <x, Uᵀ y>`` with
the adjoint of docs/ARCHITECTURE.md#the-blocks-raw-ops-bias_act-bias_act_grad-upfirdn2d. Operands are fresh random draws (``seed`` fixture), sizes odd,
layouts contiguous / channels_last / innermost-strided (mixed within a call too), all four dtypes.
Tolerances: the output dtype's (``helpers.TOL``) against the float64 truth; upfirdn2d's absolute
part scales with ``Σ|x·f|`` (float32 accumulation of the taps), so one wrong or missing tap fails.
"""

from __future__ import annotations

import os

import pytest
import torch
import torch.nn.functional as F

from helpers import DTYPES, LAYOUTS, TOL, make

pytest.importorskip("triton")
if not torch.cuda.is_available() and os.environ.get("TRITON_INTERPRET") != "1":
    pytest.skip("Triton kernels need CUDA or TRITON_INTERPRET=1", allow_module_level=True)

from ganreg_ext._contract import ACT_CODES, MAX_ACT_ORDER  # noqa: E402
from ganreg_ext.triton_kernels import _utils as U  # noqa: E402
from ganreg_ext.triton_kernels import bias_act as tba  # noqa: E402
from ganreg_ext.triton_kernels import upfirdn2d as tbu  # noqa: E402

DEV = "cpu" if U.INTERPRET else "cuda"
F16, BF16, F32, F64 = torch.float16, torch.bfloat16, torch.float32, torch.float64
LAM, ALS = 1.0507009873554805, 1.6732632423543772
SMOOTH = ["tanh", "sigmoid", "elu", "selu", "softplus", "swish"]
PIECEWISE = ["linear", "relu", "lrelu"]


# ------------------------------------------------------------------------------ eager truths


def act_eager(z: torch.Tensor, act: str, alpha: float) -> torch.Tensor:
    """f(z) of docs/semantics.md#building-blocks-bias_act-upfirdn2d-filtered_lrelu, differentiable any number of times by autograd."""
    if act == "linear":
        return z
    if act == "relu":
        return torch.relu(z)
    if act == "lrelu":
        return torch.where(z < 0, alpha * z, z)
    if act == "tanh":
        return torch.tanh(z)
    if act == "sigmoid":
        return torch.sigmoid(z)
    if act == "elu":
        return torch.where(z >= 0, z, torch.expm1(z))
    if act == "selu":
        return LAM * torch.where(z >= 0, z, ALS * torch.expm1(z))
    if act == "softplus":
        return torch.log1p(torch.exp(z))
    assert act == "swish"
    return z * torch.sigmoid(z)


def z_of(x, b, dim):
    """``x + b`` (b broadcast along ``dim``) in float64."""
    z = x.double()
    if b is not None:
        shape = [1] * x.dim()
        shape[dim] = -1
        z = z + b.double().reshape(shape)
    return z


def bias_act_truth(x, b, dim, act, alpha, gain, clamp):
    y = gain * act_eager(z_of(x, b, dim), act, alpha)
    return y.clamp(-clamp, clamp) if clamp >= 0 else y


def deriv_truth(x, b, dim, act, alpha, gain, order):
    """``gain·f^(order)(x + b)`` by repeated autograd of the eager forward (elementwise: the gradient
    of the sum is the derivative)."""
    z = z_of(x, b, dim).requires_grad_(True)
    g = gain * act_eager(z, act, alpha)
    for _ in range(order):
        if not g.requires_grad:  # a constant: every further derivative is 0
            return torch.zeros_like(z)
        (g,) = torch.autograd.grad(g.sum(), z, create_graph=True)
    return g.detach()


def grad_truth(x, b, mults, dim, act, alpha, gain, clamp, order):
    """``Π mults · gain·f^(order)(z) · [|gain·f(z)| < clamp]``."""
    out = deriv_truth(x, b, dim, act, alpha, gain, order)
    for m in mults:
        out = out * m.double()
    if clamp >= 0:
        out = out * (bias_act_truth(x, b, dim, act, alpha, gain, -1.0).abs() < clamp)
    return out


def check(actual, expected, dtype, factor=1.0, scale=None):
    """``actual`` (dtype ``dtype``) against the float64 ``expected``: the dtype's rtol, its atol
    times ``scale`` (default: the largest |expected|, at least 1)."""
    assert actual.dtype == dtype and actual.shape == expected.shape, (actual.dtype, actual.shape, expected.shape)
    rtol, atol = TOL[dtype]
    scale = max(1.0, float(expected.abs().max())) if scale is None else scale
    torch.testing.assert_close(actual.double(), expected, rtol=rtol * factor, atol=atol * factor * scale)


def alpha_for(act):
    return 0.2 if act == "lrelu" else 0.37  # alpha must be ignored by the other acts


# ------------------------------------------------------------------------------------ bias_act


@pytest.mark.parametrize("act", list(ACT_CODES))
@pytest.mark.parametrize("with_b,clamp", [(True, -1.0), (False, 0.8), (True, 0.6)])
def test_bias_act_forward(seed, act, with_b, clamp):
    x = make((2, 5, 7, 3), scale=1.5, device=DEV)
    b = torch.randn(5, device=DEV) if with_b else None
    alpha, gain = alpha_for(act), 1.37
    y = tba.bias_act(x, b, 1, ACT_CODES[act], alpha, gain, clamp)
    ref = bias_act_truth(x, b, 1, act, alpha, gain, clamp)
    check(y, ref, F32)
    if clamp >= 0:
        assert bool((ref.abs() == clamp).any()), "the clamp case clamps nothing: test inputs too small"


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("act", ["lrelu", "swish", "tanh"])
def test_bias_act_layouts_dtypes(seed, dtype, layout, act):
    """Layout kept (``torch.empty_like(x)``), dtype of x, float64 math for float64."""
    x = make((3, 4, 5, 9), dtype, DEV, layout, scale=2.0)
    b = torch.randn(4, device=DEV).to(dtype)
    y = tba.bias_act(x, b, 1, ACT_CODES[act], alpha_for(act), 1.41, 1.1)
    assert y.stride() == torch.empty_like(x).stride()
    check(y, bias_act_truth(x, b, 1, act, alpha_for(act), 1.41, 1.1), dtype)


@pytest.mark.parametrize(
    "shape,dim,layout",
    [
        ((6, 11), 1, "contiguous"),
        ((6, 11), 0, "strided"),
        ((2, 3, 4, 5), 3, "channels_last"),
        ((2, 3, 4, 5), -2, "contiguous"),
        ((13,), 0, "strided"),
        ((1, 1, 3, 257), 3, "contiguous"),
    ],
)
def test_bias_act_bias_dim(seed, shape, dim, layout):
    """The bias channel along any dim and layout, a strided bias, several programs (257·3 elements)."""
    x = make(shape, F32, DEV, layout)
    n = shape[dim]
    b = torch.randn(2 * n, device=DEV)[::2]  # non-contiguous bias
    y = tba.bias_act(x, b, dim, ACT_CODES["selu"], 0.0, 0.9, -1.0)
    check(y, bias_act_truth(x, b, dim % len(shape), "selu", 0.0, 0.9, -1.0), F32)
    # and through bias_act_grad (the channel index of the output's memory order)
    g = make(shape, F32, DEV, "channels_last" if layout == "contiguous" and len(shape) == 4 else "contiguous")
    d = tba.bias_act_grad(x, b, None, [g], dim, ACT_CODES["selu"], 0.0, 0.9, -1.0, 1)
    check(d, grad_truth(x, b, [g], dim % len(shape), "selu", 0.0, 0.9, -1.0, 1), F32)


def test_bias_act_extremes(seed):
    """Large |z| (no overflow to NaN: sigmoid/softplus/tanh/swish/elu), tiny |z| (expm1/log1p/tanh
    series) and NaN propagation, in float32 and float64."""
    vals = [-90.0, -30.0, -8.0, -1e-3, -1e-6, 0.0, 1e-6, 1e-3, 0.3, 8.0, 30.0, 90.0]
    for dtype in (F32, F64):
        x = torch.tensor(vals, dtype=dtype, device=DEV)
        for act in ["tanh", "sigmoid", "elu", "selu", "softplus", "swish"]:
            y = tba.bias_act(x, None, 0, ACT_CODES[act], 0.0, 1.0, -1.0)
            ref = bias_act_truth(x, None, 0, act, 0.0, 1.0, -1.0)
            rtol, atol = TOL[dtype]
            torch.testing.assert_close(y.double(), ref, rtol=4 * rtol, atol=1e-30)
            d = tba.bias_act_grad(x, None, None, [torch.ones_like(x)], 0, ACT_CODES[act], 0.0, 1.0, -1.0, 1)
            torch.testing.assert_close(d.double(), deriv_truth(x, None, 0, act, 0.0, 1.0, 1), rtol=4 * rtol, atol=atol)
    # float64: the series (expm1, log1p, tanh) are accurate to a few ulps, far inside TOL[float64]
    x = torch.cat([torch.linspace(-5, 5, 41, dtype=F64), torch.tensor([-0.49, -0.51, -0.24, -0.26, 1e-7], dtype=F64)]).to(DEV)
    for act in SMOOTH:
        y = tba.bias_act(x, None, 0, ACT_CODES[act], 0.0, 1.0, -1.0)
        torch.testing.assert_close(y, bias_act_truth(x, None, 0, act, 0.0, 1.0, -1.0), rtol=4e-15, atol=1e-300)
        d = tba.bias_act_grad(x, None, None, [torch.ones_like(x)], 0, ACT_CODES[act], 0.0, 1.0, -1.0, 1)
        torch.testing.assert_close(d, deriv_truth(x, None, 0, act, 0.0, 1.0, 1), rtol=4e-15, atol=4e-15)
    x = torch.tensor([0.5, float("nan"), -0.5], device=DEV)
    for act in ACT_CODES.values():
        assert tba.bias_act(x, None, 0, act, 0.2, 1.0, 2.0)[1].isnan()


@pytest.mark.parametrize("act", list(ACT_CODES))
@pytest.mark.parametrize("order", [1, 2, 3])
@pytest.mark.parametrize("with_b,clamp", [(True, -1.0), (False, 0.7)])
def test_bias_act_grad_autograd(seed, act, order, with_b, clamp):
    """Orders 1..3 of every act against repeated autograd of the eager forward (order 1 is the vjp
    of bias_act; the clamp mask recomputed from x when y is not given, read from y when it is)."""
    x = make((2, 3, 5, 7), scale=1.5, device=DEV)
    b = torch.randn(3, device=DEV) if with_b else None
    mults = [make(x.shape, device=DEV) for _ in range(order)]
    alpha, gain = alpha_for(act), 1.3
    out = tba.bias_act_grad(x, b, None, mults, 1, ACT_CODES[act], alpha, gain, clamp, order)
    ref = grad_truth(x, b, mults, 1, act, alpha, gain, clamp, order)
    check(out, ref, F32, factor=2.0)
    if clamp >= 0:
        y = tba.bias_act(x, b, 1, ACT_CODES[act], alpha, gain, clamp)
        out_y = tba.bias_act_grad(x, b, y, mults, 1, ACT_CODES[act], alpha, gain, clamp, order)
        check(out_y, ref, F32, factor=2.0)


@pytest.mark.parametrize("act", SMOOTH)
def test_bias_act_grad_high_orders(seed, act):
    """Orders 4..8 (the host polynomials) against autograd, float32 and float64 math."""
    x = make((3, 4, 7), scale=1.5, device=DEV)
    b = torch.randn(4, device=DEV)
    for order in range(4, MAX_ACT_ORDER + 1):
        m = make(x.shape, device=DEV)
        ref = grad_truth(x, b, [m], 1, act, 0.0, 1.2, -1.0, order)
        out = tba.bias_act_grad(x, b, None, [m], 1, ACT_CODES[act], 0.0, 1.2, -1.0, order)
        check(out, ref, F32, factor=8.0)
        if order in (5, 8):
            xd, bd, md = x.double(), b.double(), m.double()
            out64 = tba.bias_act_grad(xd, bd, None, [md], 1, ACT_CODES[act], 0.0, 1.2, -1.0, order)
            check(out64, ref, F64, factor=100.0)


@pytest.mark.parametrize("act", PIECEWISE)
@pytest.mark.parametrize("clamp", [-1.0, 0.5])
@pytest.mark.parametrize("gain", [1.41, -0.7])
def test_bias_act_grad_from_y(seed, act, clamp, gain):
    """Piecewise-linear acts with x = None: f' from the sign of y·gain, f'' = 0, mask from |y|."""
    x = make((2, 3, 4, 5), device=DEV)
    b = torch.randn(3, device=DEV)
    alpha = alpha_for(act)
    y = tba.bias_act(x, b, 1, ACT_CODES[act], alpha, gain, clamp)
    m1, m2 = make(x.shape, device=DEV), make(x.shape, device=DEV, layout="channels_last")
    for order, mults in [(1, [m1]), (2, [m1, m2])]:
        out = tba.bias_act_grad(None, b, y, mults, 1, ACT_CODES[act], alpha, gain, clamp, order)
        check(out, grad_truth(x, b, mults, 1, act, alpha, gain, clamp, order), F32)
        assert out.stride() == m1.stride()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_bias_act_grad_layouts_dtypes(seed, dtype, layout):
    """Output ``empty_like(mults[0])`` in its dtype; x, y and the multipliers each in its own layout
    (contiguous, channels_last, strided mixed in one call)."""
    others = [lay for lay in LAYOUTS if lay != layout]
    x = make((2, 6, 3, 5), dtype, DEV, others[0], scale=1.5)
    b = torch.randn(6, device=DEV).to(dtype)
    m0 = make(x.shape, dtype, DEV, layout)
    m1 = make(x.shape, dtype, DEV, others[1])
    y = tba.bias_act(x, b, 1, ACT_CODES["swish"], 0.0, 1.41, 0.9)
    out = tba.bias_act_grad(x, b, y, [m0, m1], 1, ACT_CODES["swish"], 0.0, 1.41, 0.9, 2)
    assert out.stride() == torch.empty_like(m0).stride()
    ref = grad_truth(x, b, [m0, m1], 1, "swish", 0.0, 1.41, -1.0, 2)
    ref = ref * (y.abs() < 0.9)  # the mask read from the stored y, compared in its dtype
    check(out, ref, dtype)


def test_bias_act_grad_many_mults_one_launch(seed, monkeypatch):
    """Twelve multipliers of mixed dtypes (float64 among them: float64 math) in one launch."""
    launches = []
    kernel = tba._bias_act_grad_kernel

    class Count:
        def __getitem__(self, grid):
            launches.append(grid)
            return kernel[grid]

    monkeypatch.setattr(tba, "_bias_act_grad_kernel", Count())
    x = make((3, 4, 5), device=DEV)
    mults = [make(x.shape, [F32, F16, F64][i % 3], DEV, ["contiguous", "strided"][i % 2], scale=0.9) for i in range(12)]
    out = tba.bias_act_grad(x, None, None, mults, 1, ACT_CODES["tanh"], 0.0, 1.0, -1.0, 1)
    assert len(launches) == 1
    check(out, grad_truth(x, None, mults, 1, "tanh", 0.0, 1.0, -1.0, 1), F32)


def test_bias_act_grad_closed_family(seed):
    """The vjp of ``bias_act_grad(x, [g], order 1)`` with cotangent u is, for x,
    ``bias_act_grad(x, [g, u], order 2)``; for ``g`` it is ``bias_act_grad(x, [u], order 1)``
    (autograd through the eager order-1 formula)."""
    x = make((2, 3, 4), device=DEV)
    b = torch.randn(3, device=DEV)
    g, u = make(x.shape, device=DEV), make(x.shape, device=DEV)
    xx = x.double().requires_grad_(True)
    gg = g.double().requires_grad_(True)
    (d1,) = torch.autograd.grad((1.1 * act_eager(z_of(xx, b, 1), "softplus", 0.0)).sum(), xx, create_graph=True)
    vjp_x, vjp_g = torch.autograd.grad((d1 * gg * u.double()).sum(), [xx, gg])
    code = ACT_CODES["softplus"]
    check(tba.bias_act_grad(x, b, None, [g, u], 1, code, 0.0, 1.1, -1.0, 2), vjp_x, F32)
    check(tba.bias_act_grad(x, b, None, [u], 1, code, 0.0, 1.1, -1.0, 1), vjp_g, F32)


def test_bias_act_errors():
    x = torch.randn(2, 3, device=DEV)
    g = torch.randn(2, 3, device=DEV)
    with pytest.raises(ValueError, match="order"):
        tba.bias_act_grad(x, None, None, [g], 1, 3, 0.0, 1.0, -1.0, 0)
    with pytest.raises(ValueError, match="order"):
        tba.bias_act_grad(x, None, None, [g], 1, 3, 0.0, 1.0, -1.0, MAX_ACT_ORDER + 1)
    with pytest.raises(ValueError, match="needs x"):
        tba.bias_act_grad(None, None, g, [g], 1, ACT_CODES["tanh"], 0.0, 1.0, -1.0, 1)
    with pytest.raises(ValueError, match="y is needed"):
        tba.bias_act_grad(None, None, None, [g], 1, ACT_CODES["relu"], 0.0, 1.0, -1.0, 1)
    with pytest.raises(ValueError, match="at least one"):
        tba.bias_act_grad(x, None, None, [], 1, 3, 0.0, 1.0, -1.0, 1)
    with pytest.raises(ValueError, match="shape"):
        tba.bias_act_grad(x, None, None, [g, torch.randn(3, 2, device=DEV)], 1, 3, 0.0, 1.0, -1.0, 1)
    with pytest.raises(ValueError, match="b must be 1-D"):
        tba.bias_act(x, torch.randn(2, device=DEV), 1, 0, 0.0, 1.0, -1.0)
    with pytest.raises(ValueError, match="activation code"):
        tba.bias_act(x, None, 1, 9, 0.0, 1.0, -1.0)
    # linear with neither x nor y (no clamp): f' = 1, just the product
    out = tba.bias_act_grad(None, None, None, [g, g], 1, ACT_CODES["linear"], 0.0, 2.0, -1.0, 1)
    check(out, 2.0 * g.double() ** 2, F32)


def test_bias_act_polynomials():
    """The host tables: tanh R_k(t) and sigmoid polynomials reproduce autograd at sample points
    (float64, no kernel), so a wrong recurrence fails here first."""
    z = torch.linspace(-3, 3, 13, dtype=F64)
    t, w = torch.tanh(z), torch.tanh(z / 2)
    for k in range(1, MAX_ACT_ORDER + 1):
        for act, u, q in [("tanh", t, 1 - t * t), ("sigmoid", w, (1 - w * w) / 4)]:
            (A, B) = tba.coefficients(ACT_CODES[act], k)
            val = q * sum(c * u**j for j, c in enumerate(B))
            assert not any(A)
            torch.testing.assert_close(val, deriv_truth(z, None, 0, act, 0.0, 1.0, k), rtol=1e-9, atol=1e-9)


# ----------------------------------------------------------------------------------- upfirdn2d


def upfirdn2d_truth(x, f, up, down, padding, flip, gain):
    """Zero insertion, pad (negative crops), ``conv2d`` (a correlation: flip the filter for a true
    convolution), keep every down-th; float64."""
    upx, upy = up
    downx, downy = down
    N, C, H, W = x.shape
    xu = torch.zeros(N * C, 1, H * upy, W * upx, dtype=F64, device=x.device)
    xu[:, :, ::upy, ::upx] = x.double().reshape(N * C, 1, H, W)
    xp = F.pad(xu, list(padding))
    f2 = f.double()
    f2 = torch.outer(f2, f2) if f2.dim() == 1 else f2
    if not flip:
        f2 = f2.flip([0, 1])
    y = F.conv2d(xp, f2[None, None])[:, :, ::downy, ::downx] * gain
    return y.reshape(N, C, y.shape[2], y.shape[3])


def adjoint_padding(x_shape, f, up, down, padding):
    """docs/ARCHITECTURE.md#the-blocks-raw-ops-bias_act-bias_act_grad-upfirdn2d: per axis ``[taps − p0 − 1, n·up − out·down + p0 − up + 1]``."""
    fw = f.shape[-1]
    fh = f.shape[0]
    (upx, upy), (downx, downy), (px0, px1, py0, py1) = up, down, padding
    h, w = x_shape[2], x_shape[3]
    ow = (w * upx + px0 + px1 - fw) // downx + 1
    oh = (h * upy + py0 + py1 - fh) // downy + 1
    return [fw - px0 - 1, w * upx - ow * downx + px0 - upx + 1, fh - py0 - 1, h * upy - oh * downy + py0 - upy + 1]


def check_fir(actual, x, f, up, down, padding, flip, gain):
    """Against the float64 truth; the absolute part of the bound scales with ``Σ|x·f|`` per pixel."""
    ref = upfirdn2d_truth(x, f, up, down, padding, flip, gain)
    mag = upfirdn2d_truth(x.abs(), f.abs(), up, down, padding, flip, abs(gain))
    assert actual.dtype == x.dtype and actual.shape == ref.shape, (actual.shape, ref.shape)
    assert actual.is_contiguous()
    rtol, atol = TOL[x.dtype]
    err = (actual.double() - ref).abs()
    bound = rtol * ref.abs() + atol * mag + 1e-30
    assert bool((err <= bound).all()), f"max err {float(err.max())}, worst ratio {float((err / bound).max())}"


FIR_CASES = [
    # (N, C, H, W), filter shape, up [x, y], down [x, y], padding [px0, px1, py0, py1], flip
    ((2, 2, 7, 9), (4,), [2, 2], [1, 1], [2, 1, 2, 1], False),
    ((1, 3, 9, 5), (3,), [1, 1], [2, 2], [1, 1, 1, 1], True),
    ((1, 2, 5, 6), (3, 4), [3, 1], [1, 2], [2, 3, 0, 1], False),
    ((1, 1, 8, 7), (5, 3), [1, 3], [3, 1], [-1, 2, 3, -2], True),
    ((2, 1, 6, 11), (6,), [2, 3], [3, 2], [4, -3, 2, 5], False),
    ((1, 2, 13, 6), (2, 5), [1, 2], [1, 3], [0, 0, -2, 4], True),
    ((1, 1, 5, 5), (1,), [3, 3], [1, 1], [0, -1, -2, 0], False),
    ((1, 1, 40, 70), (4,), [1, 1], [1, 1], [1, 2, 2, 1], False),  # several tiles per plane
    ((3, 1, 4, 3), (7,), [2, 1], [1, 1], [3, 3, 3, 3], True),  # taps > input
    ((1, 2, 9, 9), (4, 4), [2, 2], [2, 2], [-1, -1, 1, 1], False),
]


@pytest.mark.parametrize("shape,fshape,up,down,padding,flip", FIR_CASES)
def test_upfirdn2d(seed, shape, fshape, up, down, padding, flip):
    """Up/down 1..3 per axis, negative padding, 1-D and 2-D (asymmetric) filters, flip on/off."""
    x = make(shape, F32, DEV)
    f = torch.randn(fshape, device=DEV)
    out = tbu.upfirdn2d(x, f, up, down, padding, flip, 1.7)
    check_fir(out, x, f, up, down, padding, flip, 1.7)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_upfirdn2d_layouts_dtypes(seed, dtype, layout):
    """Input read in place in any layout; contiguous output in x's dtype; a transposed (strided)
    2-D filter and a float32 filter for float64 x."""
    x = make((2, 3, 5, 7), dtype, DEV, layout)
    f = torch.randn(4, 3, device=DEV).t()  # [3, 4], strides (1, 3)
    out = tbu.upfirdn2d(x, f, [2, 1], [1, 2], [1, 2, 0, 2], False, 0.8)
    check_fir(out, x, f, [2, 1], [1, 2], [1, 2, 0, 2], False, 0.8)


ADJ_CASES = [
    ((1, 2, 7, 9), (4,), [2, 2], [1, 1], [2, 1, 2, 1]),
    ((2, 1, 9, 8), (3, 5), [1, 1], [2, 3], [1, 2, -1, 3]),
    ((1, 1, 6, 7), (5,), [3, 2], [2, 3], [3, -1, 0, 2]),
    ((1, 1, 10, 5), (2, 4), [1, 3], [3, 1], [-2, 1, 1, 1]),
]


@pytest.mark.parametrize("shape,fshape,up,down,padding", ADJ_CASES)
@pytest.mark.parametrize("flip", [False, True])
def test_upfirdn2d_adjoint(seed, shape, fshape, up, down, padding, flip):
    """``<U x, y> = <x, U* y>`` with ``U* = upfirdn2d(·, f, down, up, adjoint padding, not flip,
    gain)`` of docs/ARCHITECTURE.md#the-blocks-raw-ops-bias_act-bias_act_grad-upfirdn2d (float64; U* y has x's shape)."""
    x = make(shape, F64, DEV)
    f = torch.randn(fshape, dtype=F64, device=DEV)
    ux = tbu.upfirdn2d(x, f, up, down, padding, flip, 1.3)
    y = torch.randn_like(ux)
    pad = adjoint_padding(x.shape, f, up, down, padding)
    uty = tbu.upfirdn2d(y, f, down, up, pad, not flip, 1.3)
    assert uty.shape == x.shape
    lhs, rhs = (ux * y).sum(), (x * uty).sum()
    scale = float((ux.abs() * y.abs()).sum())
    assert abs(float(lhs - rhs)) <= 1e-12 * scale, (float(lhs), float(rhs))
    check_fir(uty, y, f, down, up, pad, not flip, 1.3)


def test_upfirdn2d_errors():
    x = torch.randn(1, 1, 4, 4, device=DEV)
    f = torch.ones(3, device=DEV)
    with pytest.raises(ValueError, match="empty output"):
        tbu.upfirdn2d(x, torch.ones(6, device=DEV), [1, 1], [1, 1], [0, 0, 0, 0], False, 1.0)
    with pytest.raises(ValueError, match="empty output"):
        tbu.upfirdn2d(x, f, [1, 1], [1, 1], [-3, 0, 0, 0], False, 1.0)
    with pytest.raises(ValueError, match="4-D"):
        tbu.upfirdn2d(x[0], f, [1, 1], [1, 1], [0, 0, 0, 0], False, 1.0)
    with pytest.raises(ValueError, match="filter"):
        tbu.upfirdn2d(x, torch.ones(1, 2, 2, device=DEV), [1, 1], [1, 1], [0, 0, 0, 0], False, 1.0)
    with pytest.raises(ValueError, match=">= 1"):
        tbu.upfirdn2d(x, f, [0, 1], [1, 1], [0, 0, 0, 0], False, 1.0)
    with pytest.raises(ValueError, match="padding"):
        tbu.upfirdn2d(x, f, [1, 1], [1, 1], [0, 0], False, 1.0)
    empty = tbu.upfirdn2d(torch.randn(0, 3, 4, 4, device=DEV), f, [2, 2], [1, 1], [1, 1, 1, 1], False, 1.0)
    assert empty.shape == (0, 3, 8, 8)


def test_launchers_reject_wrong_device():
    if not U.INTERPRET or not torch.cuda.is_available():
        pytest.skip("needs TRITON_INTERPRET=1 and a GPU")
    x = torch.randn(1, 1, 4, 4, device="cuda")
    with pytest.raises(RuntimeError, match="TRITON_INTERPRET"):
        tbu.upfirdn2d(x, torch.ones(3, device="cuda"), [1, 1], [1, 1], [1, 1, 1, 1], False, 1.0)
    with pytest.raises(RuntimeError, match="TRITON_INTERPRET"):
        tba.bias_act(x, None, 1, 0, 0.0, 1.0, -1.0)
