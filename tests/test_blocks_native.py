"""Native (CPU C++) raw ops of the building blocks ``bias_act``, ``bias_act_grad`` and ``upfirdn2d``
(docs/ARCHITECTURE.md#the-blocks-raw-ops-bias_act-bias_act_grad-upfirdn2d): only what the public API
cannot reach (issue 23, one test level per behaviour): stride-0 operands, a float32 bias with a half
x, derivative orders up to 8 and the order limit, ``bias_act_grad`` from the output alone, the C++
argument errors (the public checks reject bad input first), thread-count bitwise equality, poisoned
outputs of padding-only rows. Values, dtypes, layouts, gradchecks and opcheck are tested once, through
the public API on every backend (test_bias_act, test_upfirdn2d, test_fuzz, test_tiles, test_compile),
against the float64 reference within helpers.error_bound."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as Fn

import ganreg_ext as gx
import ganreg_ext.ops.native  # noqa: F401  (loads ganreg_ext._C)
from ganreg_ext import _dispatch
from helpers import assert_ref64

C = torch.ops.ganreg_C

ACTS = {"linear": 0, "relu": 1, "lrelu": 2, "tanh": 3, "sigmoid": 4, "elu": 5, "selu": 6, "softplus": 7, "swish": 8}
SMOOTH = ("tanh", "sigmoid", "elu", "selu", "softplus", "swish")
SELU_L, SELU_A = 1.0507009873554805, 1.6732632423543772


def act_fn(name, alpha):
    return {
        "linear": lambda z: z,
        "relu": torch.relu,
        "lrelu": lambda z: torch.where(z < 0, alpha * z, z),
        "tanh": torch.tanh,
        "sigmoid": torch.sigmoid,
        "elu": lambda z: torch.where(z < 0, torch.expm1(z), z),
        "selu": lambda z: SELU_L * torch.where(z < 0, SELU_A * torch.expm1(z), z),
        "softplus": lambda z: Fn.softplus(z),
        "swish": lambda z: z * torch.sigmoid(z),
    }[name]


def bshape(x, dim):
    return [-1 if d == dim else 1 for d in range(x.dim())]


def ref_bias_act(x, b, dim, act, alpha, gain, clamp):
    z = x.double() + (b.double().view(bshape(x, dim)) if b is not None else 0)
    y = act_fn(act, alpha)(z) * gain
    if clamp >= 0:
        y = y.clamp(-clamp, clamp)
    return y


def ref_deriv(z, act, alpha, order):
    """f^(order)(z) elementwise by repeated autograd of the eager f (float64)."""
    z = z.detach().double().requires_grad_()
    d = act_fn(act, alpha)(z)
    for _ in range(order):
        if not d.requires_grad:  # constant: every further derivative is 0
            return torch.zeros_like(z)
        (d,) = torch.autograd.grad(d.sum(), z, create_graph=True, allow_unused=True)
        if d is None:
            return torch.zeros_like(z)
    return d.detach()


def ref_bias_act_grad(x, b, y, mults, dim, act, alpha, gain, clamp, order):
    prod = mults[0].double()
    for m in mults[1:]:
        prod = prod * m.double()
    if x is not None:
        z = x.double() + (b.double().view(bshape(x, dim)) if b is not None else 0)
        d = ref_deriv(z, act, alpha, order)
    else:  # piecewise linear from the sign of y·gain
        s = y.double() * gain > 0
        one = torch.ones_like(prod)
        d = {"linear": one, "relu": s.double(), "lrelu": torch.where(s, one, alpha * one)}[act]
        if order >= 2:
            d = torch.zeros_like(d)
    out = prod * gain * d
    if clamp >= 0:
        # a stored y is compared in its own dtype (a clamped y holds the clamp rounded to it)
        mask = y.abs() < clamp if y is not None else (act_fn(act, alpha)(z) * gain).abs() < clamp
        out = torch.where(mask, out, torch.zeros_like(out))
    return out


def zmag(x, b, dim):
    """|x| + |b| (float64): the magnitude whose rounding an elementwise kernel carries."""
    return x.double().abs() + (b.double().abs().view(bshape(x, dim)) if b is not None else 0)


def close(actual, ref64, scale):
    """``actual`` within helpers.error_bound of the float64 eager result; ``scale``: the magnitudes
    the kernel's arithmetic rounds (|gain|·|multipliers|·(1 + |z|), derivatives being polynomials)."""
    assert_ref64(actual, ref64, scale)


# ------------------------------------------------------------------------------------ bias_act


@pytest.mark.parametrize("shape,dim", [((37,), 0), ((3, 1029), 1), ((3, 1029), 0), ((2, 3, 1, 5), 2), ((4, 1, 1), 1)])
def test_bias_act_shapes(shape, dim):
    for act in ACTS:
        x = torch.randn(shape)
        b = torch.randn(shape[dim])
        y = C.bias_act(x, b, dim, ACTS[act], 0.2, 1.0, -1.0)
        close(y, ref_bias_act(x, b, dim, act, 0.2, 1.0, -1.0), 2 * (1 + zmag(x, b, dim)))
    # expanded (stride-0) operands
    x = torch.randn(3, 1, 5).expand(3, 4, 5)
    b = torch.randn(4)
    close(
        C.bias_act(x, b, 1, ACTS["swish"], 0.2, 1.0, -1.0),
        ref_bias_act(x, b, 1, "swish", 0.2, 1.0, -1.0),
        2 * (1 + zmag(x, b, 1)),
    )
    gy = torch.randn(1, 4, 1).expand(3, 4, 5)
    m2 = torch.randn(3, 4, 5)
    out = C.bias_act_grad(x, b, None, [gy, m2], 1, ACTS["tanh"], 0.2, 1.0, -1.0, 2)
    scale = 4 * (gy * m2).double().abs() * (1 + zmag(x, b, 1))
    close(out, ref_bias_act_grad(x, b, None, [gy, m2], 1, "tanh", 0.2, 1.0, -1.0, 2), scale)
    y = C.bias_act(torch.randn(()), None, 0, ACTS["tanh"], 0.2, 1.0, -1.0)  # 0-d without b
    assert y.shape == ()
    assert C.bias_act(torch.randn(0, 3), torch.randn(3), 1, 3, 0.2, 1.0, -1.0).shape == (0, 3)


def test_bias_act_mixed_bias_dtype_and_large_values():
    x = torch.tensor([-200.0, -30.0, -20.5, -1e-3, 0.0, 1e-3, 19.9, 20.5, 30.0, 200.0, float("inf"), -float("inf")])
    y = C.bias_act(x, None, 0, ACTS["softplus"], 0.0, 1.0, -1.0)
    r = Fn.softplus(x.double())  # threshold 20 in torch: x for x > 20
    assert torch.allclose(y.double(), r, rtol=1e-7, atol=1e-30)
    for act in ("sigmoid", "tanh", "swish", "elu", "selu"):
        y = C.bias_act(x, None, 0, ACTS[act], 0.2, 1.0, -1.0)
        r = ref_bias_act(x, None, 0, act, 0.2, 1.0, -1.0)
        fin = torch.isfinite(r)
        assert torch.equal(torch.isfinite(y), fin)
        assert torch.allclose(y.double()[fin], r[fin], rtol=2e-6, atol=1e-30)
    xn = torch.tensor([float("nan"), 1.0])
    for act in ACTS:
        assert torch.isnan(C.bias_act(xn, None, 0, ACTS[act], 0.2, 1.0, 3.0)[0])
    # half x with a float32 bias: math in float32
    x = torch.randn(3, 4).half()
    b = torch.randn(4)
    y = C.bias_act(x, b, 1, ACTS["lrelu"], 0.2, 2.0, -1.0)
    close(y, ref_bias_act(x, b, 1, "lrelu", 0.2, 2.0, -1.0), 4 * (1 + zmag(x, b, 1)))


# ------------------------------------------------------------------------------- bias_act_grad


@pytest.mark.parametrize("act", ["linear", "relu", "lrelu"])
def test_bias_act_grad_piecewise_from_y(act):
    torch.manual_seed(3)
    x = torch.randn(4, 6, 3)
    b = torch.randn(6)
    for clamp in (-1.0, 0.9):
        for gain in (1.4, -0.7):
            y = C.bias_act(x, b, 1, ACTS[act], 0.2, gain, clamp)
            gy = torch.randn_like(x)
            out = C.bias_act_grad(None, None, y, [gy], 1, ACTS[act], 0.2, gain, clamp, 1)
            close(out, ref_bias_act_grad(None, None, y, [gy], 1, act, 0.2, gain, clamp, 1), abs(gain) * gy.double().abs())
            if act != "linear" or clamp >= 0:  # from x: the same values (no z exactly 0 here)
                out_x = C.bias_act_grad(x, b, y if clamp >= 0 else None, [gy], 1, ACTS[act], 0.2, gain, clamp, 1)
                torch.testing.assert_close(out_x, out)
            out2 = C.bias_act_grad(None, None, y, [gy, gy], 1, ACTS[act], 0.2, gain, clamp, 2)
            assert (out2 == 0).all()


def test_bias_act_grad_high_orders():
    z = torch.linspace(-4, 4, 41, dtype=torch.float64)
    one = torch.ones_like(z)
    for act in SMOOTH:
        for order in range(1, 9):
            out = C.bias_act_grad(z, None, None, [one], 0, ACTS[act], 0.0, 1.0, -1.0, order)
            r = ref_deriv(z, act, 0.0, order)
            assert torch.allclose(out, r, rtol=1e-9, atol=1e-9 * max(1.0, r.abs().max().item())), (act, order)
        with pytest.raises(RuntimeError, match="order > 8"):
            C.bias_act_grad(z, None, None, [one], 0, ACTS[act], 0.0, 1.0, -1.0, 9)
    with pytest.raises(RuntimeError, match="order must be >= 1"):
        C.bias_act_grad(z, None, None, [one], 0, 3, 0.0, 1.0, -1.0, 0)


def test_bias_act_errors():
    x = torch.randn(2, 3, 4)
    with pytest.raises(RuntimeError, match="b must be 1-D of size"):
        C.bias_act(x, torch.randn(4), 1, 0, 0.2, 1.0, -1.0)
    with pytest.raises(RuntimeError, match="dim must be in"):
        C.bias_act(x, torch.randn(3), 3, 0, 0.2, 1.0, -1.0)
    with pytest.raises(RuntimeError, match="act must be"):
        C.bias_act(x, None, 1, 9, 0.2, 1.0, -1.0)
    with pytest.raises(RuntimeError, match="x must be float16, bfloat16, float32 or float64"):
        C.bias_act(x.int(), None, 1, 0, 0.2, 1.0, -1.0)
    with pytest.raises(RuntimeError, match="x is required for a smooth"):
        C.bias_act_grad(None, None, x, [x], 1, 3, 0.2, 1.0, -1.0, 1)
    with pytest.raises(RuntimeError, match="x or y is required"):
        C.bias_act_grad(None, None, None, [x], 1, 1, 0.2, 1.0, -1.0, 1)
    with pytest.raises(RuntimeError, match="must have the shape of mults"):
        C.bias_act_grad(x, None, None, [x, x[0]], 1, 3, 0.2, 1.0, -1.0, 1)
    with pytest.raises(RuntimeError, match="non-empty"):
        C.bias_act_grad(x, None, None, [], 1, 3, 0.2, 1.0, -1.0, 1)


def test_bias_act_threads_bitwise():
    x = torch.randn(4, 64, 33, 17)
    b = torch.randn(64)
    gy = torch.randn_like(x)
    n = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        a = C.bias_act(x, b, 1, 8, 0.2, 1.4, 2.0), C.bias_act_grad(x, b, None, [gy], 1, 8, 0.2, 1.4, 2.0, 2)
        torch.set_num_threads(max(2, n))
        c = C.bias_act(x, b, 1, 8, 0.2, 1.4, 2.0), C.bias_act_grad(x, b, None, [gy], 1, 8, 0.2, 1.4, 2.0, 2)
    finally:
        torch.set_num_threads(n)
    assert all(torch.equal(u, v) for u, v in zip(a, c))


# ----------------------------------------------------------------------------------- upfirdn2d


def test_upfirdn2d_threads_bitwise():
    x = torch.randn(2, 16, 40, 40)
    f = torch.tensor([1.0, 3.0, 3.0, 1.0])
    n = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        a = [
            C.upfirdn2d(x, f, [2, 2], [1, 1], [2, 1, 2, 1], False, 1.0),
            C.upfirdn2d(x, torch.outer(f, f), [1, 1], [2, 2], [1, 1, 1, 1], False, 1.0),
        ]
        torch.set_num_threads(max(2, n))
        b = [
            C.upfirdn2d(x, f, [2, 2], [1, 1], [2, 1, 2, 1], False, 1.0),
            C.upfirdn2d(x, torch.outer(f, f), [1, 1], [2, 2], [1, 1, 1, 1], False, 1.0),
        ]
    finally:
        torch.set_num_threads(n)
    assert all(torch.equal(u, v) for u, v in zip(a, b))


def test_upfirdn2d_errors():
    x = torch.randn(1, 2, 5, 5)
    f = torch.ones(3)
    with pytest.raises(RuntimeError, match="f must be 1-D"):
        C.upfirdn2d(x, torch.ones(2, 2, 2), [1, 1], [1, 1], [0, 0, 0, 0], False, 1.0)
    with pytest.raises(RuntimeError, match="up must be >= 1"):
        C.upfirdn2d(x, f, [0, 1], [1, 1], [0, 0, 0, 0], False, 1.0)
    with pytest.raises(RuntimeError, match="down must be >= 1"):
        C.upfirdn2d(x, f, [1, 1], [1, 0], [0, 0, 0, 0], False, 1.0)
    with pytest.raises(RuntimeError, match="output would be empty"):
        C.upfirdn2d(x, f, [1, 1], [1, 1], [-2, -2, 0, 0], False, 1.0)
    with pytest.raises(RuntimeError, match="padding must be"):
        C.upfirdn2d(x, f, [1, 1], [1, 1], [0, 0], False, 1.0)
    with pytest.raises(RuntimeError, match="NCHW"):
        C.upfirdn2d(x[0], f, [1, 1], [1, 1], [0, 0, 0, 0], False, 1.0)
    with pytest.raises(RuntimeError, match="x must be float16"):
        C.upfirdn2d(x.int(), f, [1, 1], [1, 1], [0, 0, 0, 0], False, 1.0)
    with pytest.raises(RuntimeError, match="f must not be empty"):
        C.upfirdn2d(x, torch.ones(0), [1, 1], [1, 1], [0, 0, 0, 0], False, 1.0)


def test_upfirdn2d_empty_and_poison():
    _dispatch.set_poison(True)
    f = torch.ones(3)
    assert C.upfirdn2d(torch.randn(0, 3, 4, 4), f, [1, 1], [1, 1], [1, 1, 1, 1], False, 1.0).shape == (0, 3, 4, 4)
    # output rows/columns that read nothing but padding are written (zeros), never left unwritten
    x = torch.randn(1, 1, 2, 2)
    for up, down in (([1, 1], [1, 1]), ([3, 2], [1, 2]), ([1, 2], [3, 1])):
        y = C.upfirdn2d(x, f, up, down, [6, 5, 4, 7], False, 1.0)
        assert not torch.isnan(y).any()
        want = gx.upfirdn2d(x.double(), f.double(), up, down, [6, 5, 4, 7], backend="reference")
        assert_ref64(y, want, gx.upfirdn2d(x.double().abs(), f.double(), up, down, [6, 5, 4, 7], backend="reference"), kind="sum")
    # zero-sized planes with a non-empty output: all zeros
    y = C.upfirdn2d(torch.randn(1, 2, 0, 3), f, [1, 1], [1, 1], [1, 1, 2, 2], False, 1.0)
    assert y.shape == (1, 2, 2, 3) and (y == 0).all()
