"""Tests of the Triton launchers of the building-block families (issue 14, docs/semantics.md#building-blocks-bias_act-upfirdn2d-filtered_lrelu), called directly:
``ganreg_ext.triton_kernels.bias_act.{bias_act, bias_act_grad}`` and
``ganreg_ext.triton_kernels.upfirdn2d.upfirdn2d`` (on CPU machines under ``TRITON_INTERPRET=1``,
which conftest sets; outputs start NaN-poisoned, so an unwritten element fails).

Only what the public API cannot reach (issue 23, one test level per behaviour): extreme and tiny
arguments of each activation, orders 4..8 against repeated autograd of an eager float64 forward
written here, ``bias_act_grad`` from y alone, twelve multipliers in one launch, the host polynomial
tables, the launchers' own argument errors and device checks. Values over dtypes, layouts, bias dims,
orders 1..3, upfirdn2d configurations and its adjoint are tested once through the public API on every
backend (test_bias_act, test_upfirdn2d, test_fuzz, test_tiles) against the float64 reference within
helpers.error_bound, as ``check`` here.
"""

from __future__ import annotations

import os

import pytest
import torch

from helpers import TOL, assert_ref64, make

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


def check(actual, expected, dtype, factor=1.0):
    """``actual`` (dtype ``dtype``) within helpers.error_bound of the float64 ``expected``: operands
    here have magnitudes ~1, so the kernel's arithmetic rounds values of magnitude ~(1 + |expected|)
    (``factor`` more for the long polynomials of high orders), elementwise (no max|ref| scaling)."""
    assert actual.dtype == dtype and actual.shape == expected.shape, (actual.dtype, actual.shape, expected.shape)
    assert_ref64(actual, expected, factor * (1 + expected.double().abs()))


def alpha_for(act):
    return 0.2 if act == "lrelu" else 0.37  # alpha must be ignored by the other acts


# ------------------------------------------------------------------------------------ bias_act


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


@pytest.mark.parametrize("act", SMOOTH)
def test_bias_act_grad_high_orders(seed, act):
    """Orders 4..8 (the host polynomials) against autograd, float32 and float64 math."""
    x = make((3, 4, 7), scale=1.5, device=DEV)
    b = torch.randn(4, device=DEV)
    for order in range(4, MAX_ACT_ORDER + 1):
        m = make(x.shape, device=DEV)
        ref = grad_truth(x, b, [m], 1, act, 0.0, 1.2, -1.0, order)
        out = tba.bias_act_grad(x, b, None, [m], 1, ACT_CODES[act], 0.0, 1.2, -1.0, order)
        # f^(k) = q·(z·A(u) + B(u)) with u, q ∈ [−1, 1]: its evaluation rounds terms of magnitude up to
        # Σ|coefficients|·(1 + |z|) (in the thousands at order 8), times |m|·gain
        rows = tba.coefficients(ACT_CODES[act], order) if act not in ("elu", "selu") else [[1.0]]
        coef = 1 + sum(abs(c) for row in rows for c in row)
        terms = coef * (1 + z_of(x, b, 1).double().abs()) * m.double().abs() * 1.2
        assert_ref64(out, ref, terms, msg=f"{act} order {order}")
        if order in (5, 8):
            xd, bd, md = x.double(), b.double(), m.double()
            out64 = tba.bias_act_grad(xd, bd, None, [md], 1, ACT_CODES[act], 0.0, 1.2, -1.0, order)
            assert_ref64(out64, ref, terms, msg=f"{act} order {order} (float64)")


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


@pytest.mark.parametrize("act", PIECEWISE)
def test_bias_act_grad_piecewise_from_x_mixed_layouts(seed, act):
    """linear/relu/lrelu with x given (the public autograd passes y for relu/lrelu: unreachable
    there), x and the multipliers each in another 4-d layout (the kernel's 4-dim offsets)."""
    x = make((2, 6, 3, 5), F32, DEV, "channels_last", scale=1.5)
    b = torch.randn(6, device=DEV)
    m0, m1 = make(x.shape, F32, DEV, "strided"), make(x.shape, F32, DEV, "contiguous")
    for order, mults in ((1, [m0]), (2, [m0, m1])):
        out = tba.bias_act_grad(x, b, None, mults, 1, ACT_CODES[act], 0.3, 1.3, -1.0, order)
        check(out, grad_truth(x, b, mults, 1, act, 0.3, 1.3, -1.0, order), F32)


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
