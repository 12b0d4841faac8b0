"""Native (CPU C++) kernels of the building blocks ``bias_act``, ``bias_act_grad`` and ``upfirdn2d``
(docs/ARCHITECTURE.md#the-blocks-raw-ops-bias_act-bias_act_grad-upfirdn2d, docs/semantics.md#building-blocks-bias_act-upfirdn2d-filtered_lrelu) against eager references written here from the formulas:
every activation, with/without bias, dims, clamp, dtypes, layouts; derivative orders against
repeated ``torch.autograd.grad`` of the eager forward; upfirdn2d against zero insertion + padding
(index shift, negative crops) + conv2d; the adjoint identity; gradcheck/gradgradcheck through
``torch.ops.ganreg_C`` (C++ autograd); argument errors. Outputs are poisoned (conftest)."""

from __future__ import annotations

import random

import pytest
import torch
import torch.nn.functional as Fn

import ganreg_ext.ops.native  # noqa: F401  (loads ganreg_ext._C)
from ganreg_ext import _dispatch

C = torch.ops.ganreg_C

ACTS = {"linear": 0, "relu": 1, "lrelu": 2, "tanh": 3, "sigmoid": 4, "elu": 5, "selu": 6, "softplus": 7, "swish": 8}
SMOOTH = ("tanh", "sigmoid", "elu", "selu", "softplus", "swish")
SELU_L, SELU_A = 1.0507009873554805, 1.6732632423543772
TOL = {torch.float64: 1e-12, torch.float32: 2e-6, torch.float16: 2e-3, torch.bfloat16: 1.6e-2}


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


def make_layout(t, layout):
    if layout == "contiguous":
        return t.contiguous()
    if layout == "channels_last":
        return t.contiguous(memory_format=torch.channels_last)
    if layout == "transposed":  # same logical tensor, permuted storage
        return t.transpose(-1, -2).contiguous().transpose(-1, -2)
    if layout == "sliced":  # non-dense view
        big = torch.zeros(*t.shape[:-1], 2 * t.shape[-1], dtype=t.dtype)
        big[..., ::2] = t
        return big[..., ::2]
    raise ValueError(layout)


def close(a, b, dtype, scale=None):
    tol = TOL[dtype]
    s = scale if scale is not None else max(1.0, b.abs().max().item() if b.numel() else 1.0)
    err = (a.double() - b.double()).abs().max().item() if a.numel() else 0.0
    assert err <= tol * s * 4, f"max err {err} > {tol * s * 4}"


# ------------------------------------------------------------------------------------ bias_act


@pytest.mark.parametrize("act", list(ACTS))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
def test_bias_act_forward(act, dtype):
    torch.manual_seed(1)
    for layout in ("contiguous", "channels_last", "transposed", "sliced"):
        for dim, use_b, clamp in ((1, True, -1.0), (1, False, 0.7), (2, True, 0.5), (3, True, -1.0)):
            x0 = (torch.randn(2, 5, 7, 9) * 3).to(dtype)
            x = make_layout(x0, layout)
            b = torch.randn(x.shape[dim]).to(dtype) if use_b else None
            y = C.bias_act(x, b, dim, ACTS[act], 0.3, 1.7, clamp)
            assert y.dtype == dtype and y.shape == x.shape
            assert not torch.isnan(y).any()
            if x.is_contiguous(memory_format=torch.channels_last) and layout == "channels_last":
                assert y.is_contiguous(memory_format=torch.channels_last)
            if layout in ("contiguous", "channels_last", "transposed"):
                assert y.stride() == x.stride()
            r = ref_bias_act(x0, b, dim, act, 0.3, 1.7, clamp)
            close(y, r.to(dtype), dtype, scale=max(1.0, r.abs().max().item()))


@pytest.mark.parametrize("shape,dim", [((37,), 0), ((3, 1029), 1), ((3, 1029), 0), ((2, 3, 1, 5), 2), ((4, 1, 1), 1)])
def test_bias_act_shapes(shape, dim):
    for act in ACTS:
        x = torch.randn(shape)
        b = torch.randn(shape[dim])
        y = C.bias_act(x, b, dim, ACTS[act], 0.2, 1.0, -1.0)
        close(y, ref_bias_act(x, b, dim, act, 0.2, 1.0, -1.0).float(), torch.float32)
    # expanded (stride-0) operands
    x = torch.randn(3, 1, 5).expand(3, 4, 5)
    b = torch.randn(4)
    close(
        C.bias_act(x, b, 1, ACTS["swish"], 0.2, 1.0, -1.0), ref_bias_act(x, b, 1, "swish", 0.2, 1.0, -1.0).float(), torch.float32
    )
    gy = torch.randn(1, 4, 1).expand(3, 4, 5)
    m2 = torch.randn(3, 4, 5)
    out = C.bias_act_grad(x, b, None, [gy, m2], 1, ACTS["tanh"], 0.2, 1.0, -1.0, 2)
    close(out, ref_bias_act_grad(x, b, None, [gy, m2], 1, "tanh", 0.2, 1.0, -1.0, 2).float(), torch.float32)
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
    close(y, ref_bias_act(x, b, 1, "lrelu", 0.2, 2.0, -1.0).half(), torch.float16)


# ------------------------------------------------------------------------------- bias_act_grad


@pytest.mark.parametrize("act", list(ACTS))
@pytest.mark.parametrize("order", [1, 2, 3])
def test_bias_act_grad_orders(act, order):
    torch.manual_seed(2)
    for dtype, clamp, nm, layout in (
        (torch.float64, -1.0, 1, "contiguous"),
        (torch.float64, 0.8, 2, "channels_last"),
        (torch.float32, -1.0, 3, "transposed"),
        (torch.float32, 1.1, 1, "sliced"),
    ):
        x0 = (torch.randn(2, 3, 5, 6, dtype=torch.float64) * 2).to(dtype)
        x = make_layout(x0, layout)
        b = torch.randn(3, dtype=dtype)
        y = C.bias_act(x, b, 1, ACTS[act], 0.25, 1.3, clamp)
        mults = [make_layout(torch.randn_like(x0), lo) for lo in ("contiguous", "channels_last", "sliced")[:nm]]
        out = C.bias_act_grad(x, b, y if clamp >= 0 else None, mults, 1, ACTS[act], 0.25, 1.3, clamp, order)
        assert out.dtype == mults[0].dtype and out.stride() == mults[0].stride()
        r = ref_bias_act_grad(x0, b, y if clamp >= 0 else None, mults, 1, act, 0.25, 1.3, clamp, order)
        close(out, r, dtype, scale=max(1.0, r.abs().max().item()))
        if clamp >= 0:  # the mask recomputed from x when y is not given
            out2 = C.bias_act_grad(x, b, None, mults, 1, ACTS[act], 0.25, 1.3, clamp, order)
            close(
                out2,
                ref_bias_act_grad(x0, b, None, mults, 1, act, 0.25, 1.3, clamp, order),
                dtype,
                scale=max(1.0, r.abs().max().item()),
            )


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
            close(out, ref_bias_act_grad(None, None, y, [gy], 1, act, 0.2, gain, clamp, 1).float(), torch.float32)
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


def test_bias_act_grad_dtypes():
    torch.manual_seed(4)
    for dtype in (torch.float16, torch.bfloat16, torch.float32):
        x = torch.randn(3, 8, 5).to(dtype)
        b = torch.randn(8).to(dtype)
        gy = torch.randn(3, 8, 5).to(dtype)
        for act in ACTS:
            out = C.bias_act_grad(x, b, None, [gy], 1, ACTS[act], 0.2, 1.0, -1.0, 1)
            assert out.dtype == dtype
            close(out, ref_bias_act_grad(x, b, None, [gy], 1, act, 0.2, 1.0, -1.0, 1).to(dtype), dtype)
            # clamp not representable in the dtype: a clamped (stored) y must still mask its gradient
            y = C.bias_act(x, b, 1, ACTS[act], 0.2, 1.0, 0.9)
            out = C.bias_act_grad(x, b, y, [gy], 1, ACTS[act], 0.2, 1.0, 0.9, 1)
            clamped = y.abs() >= torch.tensor(0.9, dtype=dtype)
            assert clamped.any() and (out[clamped] == 0).all()
            close(out, ref_bias_act_grad(x, b, y, [gy], 1, act, 0.2, 1.0, 0.9, 1).to(dtype), dtype)


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


@pytest.mark.parametrize("act", list(ACTS))
def test_bias_act_gradcheck(act):
    torch.manual_seed(5)
    # away from the kinks of the piecewise activations (finite differences)
    x = torch.randn(2, 3, 4, dtype=torch.float64)
    x = torch.where(x.abs() < 0.1, x.sign() * 0.3 + x, x).requires_grad_()
    b = (torch.randn(3, dtype=torch.float64) * 0.01).requires_grad_()
    for clamp in (-1.0, 10.0):

        def f(x, b):
            return C.bias_act(x, b, 1, ACTS[act], 0.2, 1.3, clamp)

        assert torch.autograd.gradcheck(f, (x, b))
        assert torch.autograd.gradgradcheck(f, (x, b))


@pytest.mark.parametrize("act", SMOOTH)
def test_bias_act_grad_gradcheck(act):
    """bias_act_grad as a function of x, b and the multipliers (its vjp is the closed family)."""
    torch.manual_seed(6)
    x = torch.randn(2, 3, 4, dtype=torch.float64, requires_grad=True)
    b = torch.randn(3, dtype=torch.float64, requires_grad=True)
    m1 = torch.randn(2, 3, 4, dtype=torch.float64, requires_grad=True)
    m2 = torch.randn(2, 3, 4, dtype=torch.float64).transpose(1, 2).contiguous().transpose(1, 2).requires_grad_()

    def f(x, b, m1, m2):
        return C.bias_act_grad(x, b, None, [m1, m2], 1, ACTS[act], 0.2, 1.3, -1.0, 2)

    assert torch.autograd.gradcheck(f, (x, b, m1, m2))
    assert torch.autograd.gradgradcheck(f, (x, b, m1, m2))


def test_bias_act_third_order_matches_eager():
    torch.manual_seed(7)
    for act in SMOOTH:
        x = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
        b = torch.randn(4, dtype=torch.float64, requires_grad=True)
        outs = []
        for fn in (
            lambda x, b: C.bias_act(x, b, 1, ACTS[act], 0.2, 1.3, -1.0),
            lambda x, b: ref_bias_act(x, b, 1, act, 0.2, 1.3, -1.0),
        ):
            y = fn(x, b)
            (g,) = torch.autograd.grad((y * y).sum(), x, create_graph=True)
            (g2,) = torch.autograd.grad((g * g).sum(), x, create_graph=True)
            g3 = torch.autograd.grad(g2.sum(), (x, b))
            outs.append((g, g2) + g3)
        for a, r in zip(*outs):
            torch.testing.assert_close(a, r, rtol=1e-9, atol=1e-9)


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


def ref_upfirdn2d(x, f, up, down, pad, flip, gain):
    """Zero insertion, padding as an index shift (negative = crop, any amount), conv2d, keep every
    down-th output: out[k] = gain·Σ_t xu[k·down + t − p0]·F[t], F = f reversed unless flip."""
    N, Cc, H, W = x.shape
    (upx, upy), (dx, dy), (px0, px1, py0, py1) = up, down, pad
    x = x.double()
    f = f.double()
    f2 = torch.outer(f, f) if f.ndim == 1 else f
    fh, fw = f2.shape
    xu = x.new_zeros(N, Cc, H * upy, W * upx)
    xu[:, :, ::upy, ::upx] = x
    Hp, Wp = H * upy + py0 + py1, W * upx + px0 + px1
    xp = x.new_zeros(N, Cc, max(Hp, 0), max(Wp, 0))
    # xp[i] = xu[i − p0]
    i0, i1 = max(0, py0), min(Hp, H * upy + py0)
    j0, j1 = max(0, px0), min(Wp, W * upx + px0)
    if i1 > i0 and j1 > j0:
        xp[:, :, i0:i1, j0:j1] = xu[:, :, i0 - py0 : i1 - py0, j0 - px0 : j1 - px0]
    w = f2 if flip else f2.flip([0, 1])
    y = Fn.conv2d(xp.reshape(N * Cc, 1, Hp, Wp), w[None, None])
    y = y[:, :, ::dy, ::dx] * gain
    return y.reshape(N, Cc, *y.shape[2:])


def adjoint_params(x_shape, f, up, down, pad):
    fw = f.shape[-1]
    fh = f.shape[0]
    (upx, upy), (dx, dy), (px0, px1, py0, py1) = up, down, pad
    h, w = x_shape[2], x_shape[3]
    ow = (w * upx + px0 + px1 - fw) // dx + 1
    oh = (h * upy + py0 + py1 - fh) // dy + 1
    return [fw - px0 - 1, w * upx - ow * dx + px0 - upx + 1, fh - py0 - 1, h * upy - oh * dy + py0 - upy + 1]


def random_case(rng, max_hw=9):
    up = [rng.randint(1, 3), rng.randint(1, 3)]
    down = [rng.randint(1, 3), rng.randint(1, 3)]
    sep = rng.random() < 0.5
    fw = rng.randint(1, 6)
    f = torch.randn(fw, dtype=torch.float64) if sep else torch.randn(rng.randint(1, 6), fw, dtype=torch.float64)
    fh = f.shape[0]
    while True:
        H, W = rng.randint(1, max_hw), rng.randint(1, max_hw)
        pad = [rng.randint(-3, 4) for _ in range(4)]
        if (W * up[0] + pad[0] + pad[1] - fw) // down[0] >= 0 and (H * up[1] + pad[2] + pad[3] - fh) // down[1] >= 0:
            return up, down, pad, f, H, W, rng.random() < 0.5


def test_upfirdn2d_random_configs():
    rng = random.Random(11)
    torch.manual_seed(11)
    for _ in range(400):
        up, down, pad, f, H, W, flip = random_case(rng)
        x = torch.randn(rng.randint(1, 2), rng.randint(1, 3), H, W, dtype=torch.float64)
        gain = rng.choice([1.0, 0.5, 4.0])
        y = C.upfirdn2d(x, f, up, down, pad, flip, gain)
        r = ref_upfirdn2d(x, f, up, down, pad, flip, gain)
        assert y.shape == r.shape and y.is_contiguous()
        torch.testing.assert_close(y, r, rtol=1e-12, atol=1e-12, msg=lambda m: f"{m} {up} {down} {pad} {f.shape} {H}x{W}")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "sliced"])
def test_upfirdn2d_dtypes_layouts(dtype, layout):
    torch.manual_seed(12)
    f1 = torch.tensor([1.0, 3.0, 3.0, 1.0]) / 8
    f2 = torch.randn(3, 4)
    for f, up, down, pad in (
        (f1, [2, 2], [1, 1], [2, 1, 2, 1]),
        (f1, [1, 1], [2, 2], [1, 1, 1, 1]),
        (f2, [2, 1], [1, 2], [1, 2, 0, 1]),
        (f2, [3, 3], [2, 2], [-1, 2, 2, -1]),
    ):
        x0 = torch.randn(2, 5, 11, 13).to(dtype)
        x = make_layout(x0, layout)
        y = C.upfirdn2d(x, f.to(torch.float32), up, down, pad, False, 2.0)
        assert y.dtype == dtype and y.is_contiguous()
        r = ref_upfirdn2d(x0, f, up, down, pad, False, 2.0)
        close(y, r.to(dtype), dtype, scale=max(1.0, r.abs().max().item()))


@pytest.mark.parametrize("sep", [True, False])
def test_upfirdn2d_stylegan_sizes(sep):
    torch.manual_seed(13)
    f = torch.tensor([1.0, 3.0, 3.0, 1.0]) / 8
    f = f if sep else torch.outer(f, f) + 0.01 * torch.randn(4, 4)
    x = torch.randn(2, 8, 32, 32)
    for up, down, pad in (([2, 2], [1, 1], [2, 1, 2, 1]), ([1, 1], [2, 2], [1, 1, 1, 1]), ([1, 1], [1, 1], [2, 1, 2, 1])):
        y = C.upfirdn2d(x, f, up, down, pad, False, 4.0 if up[0] == 2 else 1.0)
        r = ref_upfirdn2d(x, f, up, down, pad, False, 4.0 if up[0] == 2 else 1.0)
        torch.testing.assert_close(y.double(), r, rtol=1e-5, atol=1e-5)


def test_upfirdn2d_large_plane_bands():
    """Planes larger than one band (several bands per plane, rows re-read at band borders)."""
    torch.manual_seed(14)
    x = torch.randn(1, 2, 300, 260)
    for f, up, down, pad in ((torch.randn(5), [2, 2], [1, 1], [2, 2, 3, 1]), (torch.randn(4, 3), [1, 1], [2, 3], [1, 1, 1, 2])):
        y = C.upfirdn2d(x, f, up, down, pad, True, 1.0)
        torch.testing.assert_close(y.double(), ref_upfirdn2d(x, f, up, down, pad, True, 1.0), rtol=1e-4, atol=1e-4)


def test_upfirdn2d_adjoint_identity():
    rng = random.Random(15)
    torch.manual_seed(15)
    for _ in range(150):
        up, down, pad, f, H, W, flip = random_case(rng)
        x = torch.randn(2, 2, H, W, dtype=torch.float64)
        y = C.upfirdn2d(x, f, up, down, pad, flip, 1.5)
        g = torch.randn_like(y)
        apad = adjoint_params(x.shape, f, up, down, pad)
        xt = C.upfirdn2d(g, f, down, up, apad, not flip, 1.5)
        assert xt.shape == x.shape, (xt.shape, x.shape, up, down, pad, f.shape)
        lhs, rhs = (y * g).sum().item(), (x * xt).sum().item()
        assert abs(lhs - rhs) <= 1e-10 * max(1.0, abs(lhs)), (lhs, rhs)


def test_upfirdn2d_gradcheck():
    rng = random.Random(16)
    torch.manual_seed(16)
    for _ in range(12):
        up, down, pad, f, H, W, flip = random_case(rng, max_hw=5)
        x = torch.randn(1, 2, H, W, dtype=torch.float64, requires_grad=True)

        def fn(x):
            return C.upfirdn2d(x, f, up, down, pad, flip, 1.5)

        assert torch.autograd.gradcheck(fn, (x,))
        assert torch.autograd.gradgradcheck(fn, (x,))


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
        torch.testing.assert_close(y.double(), ref_upfirdn2d(x, f, up, down, [6, 5, 4, 7], False, 1.0))
    # zero-sized planes with a non-empty output: all zeros
    y = C.upfirdn2d(torch.randn(1, 2, 0, 3), f, [1, 1], [1, 1], [1, 1, 2, 2], False, 1.0)
    assert y.shape == (1, 2, 2, 3) and (y == 0).all()


def test_blocks_opcheck():
    """Schema, fake kernel (strides of empty_like / contiguous NCHW), autograd registration."""
    torch.manual_seed(17)
    x = torch.randn(2, 3, 5, 6, dtype=torch.float64, requires_grad=True)
    b = torch.randn(3, dtype=torch.float64, requires_grad=True)
    xc = torch.randn(2, 3, 5, 6).contiguous(memory_format=torch.channels_last).requires_grad_()
    gy = torch.randn(2, 3, 5, 6, dtype=torch.float64, requires_grad=True)
    f = torch.tensor([1.0, 3.0, 3.0, 1.0], dtype=torch.float64)
    for op, args in (
        (C.bias_act, (x, b, 1, 8, 0.2, 1.3, -1.0)),
        (C.bias_act, (xc, None, 1, 2, 0.2, 1.3, 0.5)),
        (C.bias_act_grad, (x, b, None, [gy], 1, 3, 0.2, 1.3, -1.0, 2)),
        (C.bias_act_grad, (None, None, x, [gy], 1, 1, 0.2, 1.3, -1.0, 1)),
        (C.upfirdn2d, (x, f, [2, 2], [1, 1], [2, 1, 2, 1], False, 4.0)),
        (C.upfirdn2d, (xc, torch.outer(f, f).float(), [1, 1], [2, 2], [1, 1, 1, 1], True, 1.0)),
    ):
        res = torch.library.opcheck(op, args)
        assert all(v == "SUCCESS" for v in res.values()), res
