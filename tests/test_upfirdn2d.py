"""upfirdn2d family (docs/semantics.md#building-blocks-bias_act-upfirdn2d-filtered_lrelu): setup_filter, upfirdn2d, upsample2d, downsample2d, filter2d and
filtered_lrelu against hand computations, a direct evaluation of the formula and StyleGAN's
conventions; the adjoint identity; every backend against the reference (dtypes, layouts, odd sizes,
batch 1, derivatives); gradcheck/gradgradcheck; bad input; the ``ganreg_ext.nvlabs`` drop-in; and
the signatures, defaults and runnable example of docs/blocks.md."""

from __future__ import annotations

import ast
import inspect
import math
import pathlib
import re

import pytest
import torch
import torch.nn.functional as F
from torch.autograd import gradcheck, gradgradcheck

import ganreg_ext as gx
from ganreg_ext.nvlabs import bias_act as nv_bias_act
from ganreg_ext.nvlabs import filtered_lrelu as nv_filtered_lrelu
from ganreg_ext.nvlabs import upfirdn2d as nv_upfirdn2d
from ganreg_ext.reference import upfirdn2d as ref
from ganreg_ext.upfirdn2d import parse_padding, parse_scaling
from helpers import (
    DTYPES,
    LAYOUTS,
    assert_close,
    assert_ref64,
    every_backend,
    fused,
    need,
    no_kernels,
)

OPS = ("upfirdn2d",)
BLOCK_OPS = ("upfirdn2d", "bias_act", "bias_act_grad")
DOCS = pathlib.Path(__file__).resolve().parents[1] / "docs" / "blocks.md"
F64 = torch.float64


def _direct(x, f, up=(1, 1), down=(1, 1), padding=(0, 0, 0, 0), flip_filter=False, gain=1.0):
    """The formula, evaluated tap by tap (float64): ``out[k] = gain·Σ_t xu[k·down + t − p0]·F[t]``
    per axis, ``xu`` the zero-inserted image, ``F`` the reversed filter unless ``flip_filter``."""
    (upx, upy), (dx, dy), (px0, px1, py0, py1) = up, down, padding
    x = x.double()
    f2 = torch.ones(1, 1, dtype=F64) if f is None else f.double() if f.dim() == 2 else torch.outer(f.double(), f.double())
    taps = f2 if flip_filter else f2.flip([0, 1])
    n, c, h, w = x.shape
    fh, fw = f2.shape
    oh, ow = (h * upy + py0 + py1 - fh) // dy + 1, (w * upx + px0 + px1 - fw) // dx + 1
    out = torch.zeros(n, c, oh, ow, dtype=F64, device=x.device)
    ky, kx = torch.arange(oh, device=x.device), torch.arange(ow, device=x.device)
    for ty in range(fh):
        iy = ky * dy + ty - py0
        vy = (iy >= 0) & (iy < h * upy) & (iy % upy == 0)
        sy = torch.where(vy, iy // upy, 0)
        for tx in range(fw):
            ix = kx * dx + tx - px0
            vx = (ix >= 0) & (ix < w * upx) & (ix % upx == 0)
            sx = torch.where(vx, ix // upx, 0)
            vals = x[:, :, sy][:, :, :, sx] * (vy[:, None] & vx[None, :])
            out += taps[ty, tx].item() * vals
    return gain * out


def _adjoint_padding(h, w, f, up, down, padding):
    """docs/semantics.md#building-blocks-bias_act-upfirdn2d-filtered_lrelu / docs/ARCHITECTURE.md#the-blocks-raw-ops-bias_act-bias_act_grad-upfirdn2d: the padding of the upfirdn2d that is the adjoint of ``upfirdn2d(x, f, up, down, padding)``."""
    fh, fw = f.shape[0], f.shape[-1]
    (upx, upy), (dx, dy), (px0, px1, py0, py1) = up, down, padding
    ow, oh = (w * upx + px0 + px1 - fw) // dx + 1, (h * upy + py0 + py1 - fh) // dy + 1
    return [fw - px0 - 1, w * upx - ow * dx + px0 - upx + 1, fh - py0 - 1, h * upy - oh * dy + py0 - upy + 1]


def _interpreted(backend, device) -> bool:
    """Triton on CPU tensors runs in its (slow) interpreter: the matrix takes fewer cases there."""
    return backend == "triton" and torch.device(device).type == "cpu"


def _leaf(t):
    out = torch.empty_strided(t.shape, t.stride(), dtype=t.dtype, device=t.device)
    return out.copy_(t.detach()).requires_grad_()


def _layout(t, layout):
    if layout == "channels_last":
        return t.contiguous(memory_format=torch.channels_last)
    if layout == "strided":
        big = torch.zeros(*t.shape[:-1], 2 * t.shape[-1] + 1, dtype=t.dtype, device=t.device)
        big[..., 1::2] = t
        return big[..., 1::2]
    return t.contiguous()


# (name, x shape, filter taps (1-D: separable, 2-D: shape, None), up, down, padding, flip, gain)
CONFIGS = [
    ("identity", (2, 3, 5, 7), None, 1, 1, 0, False, 1.0),
    ("up2-sep4", (1, 2, 5, 6), 4, 2, 1, [2, 1, 2, 1], False, 4.0),
    ("down2-2d", (2, 3, 9, 7), (4, 4), 1, 2, [1, 1, 1, 1], False, 1.0),
    ("up-xy", (1, 3, 4, 5), (3, 2), [2, 3], 1, [1, 0, 2, 1], True, 1.5),
    ("down-xy", (2, 2, 8, 11), 3, 1, [3, 2], [1, 1, 0, 2], False, 1.0),
    ("up-down", (1, 2, 6, 5), 5, 3, 2, [2, 2], True, 2.0),
    ("crop", (3, 1, 7, 9), (2, 3), 1, 1, [-2, 1, 1, -3], False, 0.5),
    ("crop-past-edge", (1, 2, 4, 5), 2, 2, 1, [-12, 10, 3, -1], False, 1.0),
    ("odd-13", (1, 1, 13, 3), (1, 3), 1, 3, [1, 2, 0, 0], False, 1.0),
]
IDS = [c[0] for c in CONFIGS]


def _config(cfg, dtype, device, layout="contiguous"):
    name, shape, taps, up, down, padding, flip, gain = cfg
    x = _layout(torch.randn(shape, device=device).to(dtype), layout)
    if taps is None:
        f = None
    elif isinstance(taps, int):
        f = torch.rand(taps, device=device) + 0.1
    else:
        f = torch.randn(taps, device=device)
    return x, f, dict(up=up, down=down, padding=padding, flip_filter=flip, gain=gain)


def _lists(kw):
    return parse_scaling(kw["up"], "up"), parse_scaling(kw["down"], "down"), parse_padding(kw["padding"])


# =============================================================================================
# hand computations, the formula, StyleGAN's conventions (reference)


def test_hand_computed_examples():
    x = torch.tensor([[[[1.0, 10.0, 100.0]]]])
    f = torch.tensor([[1.0, 2.0]])
    # true convolution: out[k] = Σ_t x[k + t]·f[1 − t]
    assert gx.upfirdn2d(x, f, backend="reference").tolist() == [[[[12.0, 120.0]]]]
    assert gx.upfirdn2d(x, f, flip_filter=True, backend="reference").tolist() == [[[[21.0, 210.0]]]]
    assert gx.upfirdn2d(x, f, gain=3, backend="reference").tolist() == [[[[36.0, 360.0]]]]
    # zero insertion: up − 1 zeros after each pixel
    x = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    exp = [[1.0, 0.0, 2.0, 0.0], [0.0, 0.0, 0.0, 0.0], [3.0, 0.0, 4.0, 0.0], [0.0, 0.0, 0.0, 0.0]]
    assert gx.upfirdn2d(x, None, up=2, backend="reference")[0, 0].tolist() == exp
    assert gx.upfirdn2d(x, None, up=[2, 1], backend="reference")[0, 0].tolist() == [[1.0, 0.0, 2.0, 0.0], [3.0, 0.0, 4.0, 0.0]]
    # padding [px0, px1, py0, py1]: one column left, two rows below
    assert gx.upfirdn2d(x, None, padding=[1, 0, 0, 2], backend="reference")[0, 0].tolist() == [
        [0.0, 1.0, 2.0],
        [0.0, 3.0, 4.0],
        [0.0, 0.0, 0.0],
        [0.0, 0.0, 0.0],
    ]
    # negative padding crops; down keeps every down-th pixel from 0
    x = torch.arange(20.0).reshape(1, 1, 4, 5)
    torch.testing.assert_close(gx.upfirdn2d(x, None, padding=[-1, 0, 0, -1], backend="reference"), x[:, :, :3, 1:])
    torch.testing.assert_close(gx.upfirdn2d(x, None, down=2, backend="reference"), x[:, :, ::2, ::2])
    torch.testing.assert_close(gx.upfirdn2d(x, None, down=[2, 3], backend="reference"), x[:, :, ::3, ::2])
    # a 1-D filter is the separable f ⊗ f
    f1 = torch.tensor([1.0, 2.0, 4.0])
    x = torch.randn(2, 3, 6, 5)
    torch.testing.assert_close(
        gx.upfirdn2d(x, f1, up=2, padding=2, backend="reference"),
        gx.upfirdn2d(x, torch.outer(f1, f1), up=2, padding=2, backend="reference"),
    )


@pytest.mark.parametrize("cfg", CONFIGS, ids=IDS)
def test_reference_matches_the_formula(cfg, seed):
    x, f, kw = _config(cfg, F64, "cpu")
    up, down, padding = _lists(kw)
    exp = _direct(x, f, up, down, padding, kw["flip_filter"], kw["gain"])
    out = gx.upfirdn2d(x, f, backend="reference", **kw)
    assert out.shape == exp.shape and out.is_contiguous()
    torch.testing.assert_close(out, exp, rtol=1e-12, atol=1e-12)
    out = ref.upfirdn2d(
        x, torch.ones(1, 1, dtype=F64) if f is None else f.double(), up, down, padding, kw["flip_filter"], kw["gain"]
    )
    torch.testing.assert_close(out, exp, rtol=1e-12, atol=1e-12)


def test_setup_filter():
    f = gx.setup_filter([1, 3, 3, 1])
    assert f.dtype == torch.float32 and f.shape == (4, 4) and f.device.type == "cpu"
    torch.testing.assert_close(f, torch.outer(torch.tensor([1.0, 3, 3, 1]), torch.tensor([1.0, 3, 3, 1])) / 64)
    assert gx.setup_filter(None).tolist() == [[1.0]] and gx.setup_filter(2.0).tolist() == [[1.0]]
    assert gx.setup_filter(2.0, normalize=False).tolist() == [[4.0]]
    taps = list(range(1, 9))  # >= 8 taps: separable by default
    f = gx.setup_filter(taps)
    assert f.shape == (8,) and f.sum().item() == pytest.approx(1.0)
    assert gx.setup_filter(taps, separable=False).shape == (8, 8)
    assert gx.setup_filter([1, 2], separable=True).tolist() == pytest.approx([1 / 3, 2 / 3])
    assert gx.setup_filter([1, 2], separable=True, flip_filter=True).tolist() == pytest.approx([2 / 3, 1 / 3])
    assert gx.setup_filter([1, 2], separable=True, gain=4).tolist() == pytest.approx([2 / 3, 4 / 3])  # gain^(1/2)
    assert gx.setup_filter([[1, 1], [1, 1]], gain=4).tolist() == [[1.0, 1.0], [1.0, 1.0]]  # gain^(2/2)
    src = torch.tensor([1.0, 3.0, 3.0, 1.0])
    keep = src.clone()
    gx.setup_filter(src, separable=True)
    assert torch.equal(src, keep)  # the input is never modified in place
    assert gx.setup_filter([1, 2], device="meta").device.type == "meta"
    import numpy as np

    assert gx.setup_filter(np.array([1.0, 1.0])).tolist() == [[0.25, 0.25], [0.25, 0.25]]


def test_stylegan_conventions(seed):
    f = gx.setup_filter([1, 3, 3, 1])
    c = torch.full((1, 2, 8, 10), 0.7, dtype=F64)
    up = gx.upsample2d(c, f, backend="reference")
    assert up.shape == (1, 2, 16, 20)
    torch.testing.assert_close(up[:, :, 2:-2, 2:-2], torch.full_like(up[:, :, 2:-2, 2:-2], 0.7))  # constant inside
    down = gx.downsample2d(c, f, backend="reference")
    assert down.shape == (1, 2, 4, 5)
    torch.testing.assert_close(down[:, :, 1:-1, 1:-1], torch.full_like(down[:, :, 1:-1, 1:-1], 0.7))
    filt = gx.filter2d(c, f, backend="reference")
    assert filt.shape == c.shape
    torch.testing.assert_close(filt[:, :, 2:-2, 2:-2], c[:, :, 2:-2, 2:-2])
    # output sizes: up·n, n // down, n (odd sizes, [x, y] factors, extra padding)
    x = torch.randn(2, 3, 7, 9, dtype=F64)
    assert gx.upsample2d(x, f, backend="reference").shape == (2, 3, 14, 18)
    assert gx.upsample2d(x, f, up=[3, 2], backend="reference").shape == (2, 3, 14, 27)
    assert gx.downsample2d(x, f, backend="reference").shape == (2, 3, 3, 4)
    assert gx.downsample2d(x, f, down=[3, 1], backend="reference").shape == (2, 3, 7, 3)
    assert gx.filter2d(x, gx.setup_filter([1, 2, 1]), backend="reference").shape == x.shape
    assert gx.filter2d(x, f, padding=[1, 2, 0, -1], backend="reference").shape == (2, 3, 6, 12)
    assert gx.upsample2d(x, None, backend="reference").shape == (2, 3, 14, 18)
    # box filter [1, 1]: nearest-neighbour upsampling, 2×2 average pooling
    box = gx.setup_filter([1, 1])
    torch.testing.assert_close(
        gx.upsample2d(x, box, backend="reference"), x.repeat_interleave(2, -1).repeat_interleave(2, -2), rtol=1e-12, atol=1e-12
    )
    x8 = torch.randn(2, 3, 8, 6, dtype=F64)
    torch.testing.assert_close(gx.downsample2d(x8, box, backend="reference"), F.avg_pool2d(x8, 2), rtol=1e-12, atol=1e-12)
    # the wrappers are upfirdn2d with the documented padding and gain
    f3 = torch.rand(3, 5, dtype=F64)
    torch.testing.assert_close(
        gx.upsample2d(x, f3, up=2, padding=[1, 0, 0, 2], gain=0.5, backend="reference"),
        gx.upfirdn2d(x, f3, up=2, padding=[1 + 3, 0 + 1, 0 + 2, 2 + 0], gain=2.0, backend="reference"),
    )
    torch.testing.assert_close(
        gx.downsample2d(x, f3, down=2, padding=1, backend="reference"),
        gx.upfirdn2d(x, f3, down=2, padding=[1 + 2, 1 + 1, 1 + 1, 1 + 0], backend="reference"),
    )
    torch.testing.assert_close(
        gx.filter2d(x, f3, padding=[0, 1, 2, 3], flip_filter=True, backend="reference"),
        gx.upfirdn2d(x, f3, padding=[2, 1 + 2, 2 + 1, 3 + 1], flip_filter=True, backend="reference"),
    )


# =============================================================================================
# every backend


@every_backend
@pytest.mark.parametrize("cfg", CONFIGS, ids=IDS)
def test_adjoint_identity(backend, device, cfg, seed):
    """⟨upfirdn2d(x), y⟩ = ⟨x, upfirdn2d(y, f, up=down, down=up, adjoint padding, flipped)⟩, and
    autograd's gradient is that adjoint."""
    need(backend, *OPS)
    x, f, kw = _config(cfg, F64, device)
    up, down, padding = _lists(kw)
    fx = torch.ones(1, 1, dtype=F64, device=device) if f is None else f.double()
    out = gx.upfirdn2d(x, fx, up, down, padding, kw["flip_filter"], kw["gain"], backend=backend)
    y = torch.randn_like(out)
    pad = _adjoint_padding(x.shape[2], x.shape[3], fx, up, down, padding)
    adj = gx.upfirdn2d(y, fx, down, up, pad, not kw["flip_filter"], kw["gain"], backend=backend)
    assert adj.shape == x.shape
    lhs, rhs = (out * y).sum(), (x * adj).sum()
    torch.testing.assert_close(lhs, rhs, rtol=1e-10, atol=1e-10 * (out.abs() * y.abs()).sum().item())
    xl = _leaf(x)
    (g,) = torch.autograd.grad(gx.upfirdn2d(xl, fx, up, down, padding, kw["flip_filter"], kw["gain"], backend=backend), xl, y)
    torch.testing.assert_close(g, adj, rtol=1e-12, atol=1e-12)


@fused
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_matrix(backend, device, dtype, layout, seed):
    """Forward, backward and double backward (the adjoint of the adjoint) against the reference in
    float64 on the same inputs, within the error bound of helpers (float32 (float64) sums of
    Σ|terms| plus one rounding to ``dtype``); random asymmetric filters."""
    need(backend, *OPS)
    configs = CONFIGS
    if _interpreted(backend, device):  # 3 configurations per dtype/layout, each seen 4 times over the matrix
        k = DTYPES.index(dtype) * len(LAYOUTS) + LAYOUTS.index(layout)
        configs = [CONFIGS[(3 * k + i) % len(CONFIGS)] for i in range(3)]
    for cfg in configs:
        x0, f, kw = _config(cfg, dtype, device, layout)
        res = []
        for name, xin in ((backend, x0), ("reference", x0.double())):
            x = _leaf(xin)
            y = gx.upfirdn2d(x, None if f is None else f.to(xin.dtype if name == "reference" else f.dtype), backend=name, **kw)
            w = torch.randn(y.shape, generator=torch.Generator(device).manual_seed(1), device=device).to(dtype)
            w = w.to(xin.dtype).requires_grad_()
            (g,) = torch.autograd.grad(y, x, w, create_graph=True)
            v = torch.randn(g.shape, generator=torch.Generator(device).manual_seed(2), device=device).to(dtype).to(xin.dtype)
            (gw,) = torch.autograd.grad(g, w, v)
            res.append((y.detach(), g.detach(), gw, w.detach(), v))
        (y, g, gw, _, _), (y_r, g_r, gw_r, w, v) = res
        assert y.dtype == dtype and y.is_contiguous() and y.shape == y_r.shape, cfg[0]
        assert g.dtype == dtype and g.shape == x0.shape
        fa = None if f is None else f.abs().double()
        kw_abs = dict(kw, gain=abs(kw["gain"]))
        abs_y = gx.upfirdn2d(x0.abs().double(), fa, backend="reference", **kw_abs)
        xa = _leaf(x0.abs().double())
        (abs_g,) = torch.autograd.grad(gx.upfirdn2d(xa, fa, backend="reference", **kw_abs), xa, w.abs())
        abs_gw = gx.upfirdn2d(v.abs(), fa, backend="reference", **kw_abs)
        for got, exp, abs_sum, what in (
            (y, y_r, abs_y, "forward"),
            (g, g_r, abs_g, "backward"),
            (gw, gw_r, abs_gw, "double backward"),
        ):
            assert_ref64(got, exp, abs_sum, kind="sum", msg=f"{cfg[0]} {what}")


@fused
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_rank1_2d_filters(backend, device, dtype, seed):
    """2-D filters that are outer products (setup_filter's ``[1, 3, 3, 1]``, a random asymmetric
    v ⊗ h with a negative largest tap) — the CPU kernel runs them separably — and the same filters
    with ONE tap moved by 1e-3 of the largest (no longer rank 1: a kernel that still factored them
    would be off by ~1e-3 and fail): forward against the float64 reference on small (whole-plane)
    and, off the interpreter, larger flat (37 x 40: factored when only filtered) and banded planes."""
    need(backend, *OPS)
    v, h = torch.randn(5, dtype=F64), torch.randn(4, dtype=F64)
    v[2] = -4.0  # the largest |tap| of v ⊗ h is negative
    filters = {"stylegan-fir": gx.setup_filter([1, 3, 3, 1]).double(), "v-outer-h": torch.outer(v, h)}
    for name in list(filters):
        g = filters[name].clone()
        g[1, 2] += 1e-3 * g.abs().max()
        filters[name + "+1e-3"] = g
    sizes = [(2, 3, 9, 11)] if _interpreted(backend, device) else [(2, 3, 9, 11), (1, 2, 37, 40), (1, 2, 170, 163)]
    for shape in sizes:
        x = torch.randn(shape, dtype=dtype, device=device)
        for name, f2 in filters.items():
            for kw in (
                dict(padding=2),
                dict(up=2, padding=[2, 1, 3, 1], gain=4.0),
                dict(down=2, padding=1),
                dict(flip_filter=True),
            ):
                f = f2.to(device=device, dtype=dtype)
                got = gx.upfirdn2d(x, f, backend=backend, **kw)
                exp = gx.upfirdn2d(x.double(), f.double(), backend="reference", **kw)
                kw_abs = dict(kw, gain=abs(kw.get("gain", 1.0)))
                abs_y = gx.upfirdn2d(x.abs().double(), f.abs().double(), backend="reference", **kw_abs)
                assert_ref64(got, exp, abs_y, kind="sum", msg=f"{name} {tuple(shape)} {kw}")


@every_backend
@pytest.mark.parametrize("cfg", [c for c in CONFIGS if c[0] in ("up2-sep4", "down-xy", "up-down", "crop")], ids=lambda c: c[0])
def test_gradcheck(backend, device, cfg, seed):
    need(backend, *OPS)
    x, f, kw = _config(cfg, F64, device)
    x = x[:1, :2, :5, :5].contiguous().requires_grad_()
    fn = lambda x: gx.upfirdn2d(x, f, backend=backend, **kw)  # noqa: E731
    assert gradcheck(fn, (x,), fast_mode=True)
    assert gradgradcheck(fn, (x,), fast_mode=True)


@fused
def test_wrappers(backend, device, seed):
    need(backend, *OPS)
    f = gx.setup_filter([1, 3, 3, 1], device=device)
    f12 = gx.setup_filter(torch.hann_window(12, periodic=False), device=device)
    x0 = torch.randn(1, 3, 9, 8, device=device).contiguous(memory_format=torch.channels_last)
    cases = [
        (gx.upsample2d, dict(f=f)),
        (gx.downsample2d, dict(f=f12, down=[2, 1], gain=2.0)),
        (gx.filter2d, dict(f=f, padding=1)),
        (gx.upsample2d, dict(f=f12, up=[2, 3], padding=[0, 1, -1, 0])),
        (gx.downsample2d, dict(f=f)),
        (gx.filter2d, dict(f=f12, flip_filter=True)),
    ]
    for fn, kw in cases[:3] if _interpreted(backend, device) else cases:
        res = []
        for name in ("reference", backend):
            x = _leaf(x0)
            y = fn(x, backend=name, **kw)
            (g,) = torch.autograd.grad(y.square().sum(), x)
            res.append((y.detach(), g))
        for p, q in zip(*res):
            assert_close(p, q, factor=4)


def _filtered_lrelu_direct(x, fu, fd, b, up, down, padding, gain, slope, clamp, flip):
    """StyleGAN3's filtered_lrelu written out with the tap-by-tap formula (float64)."""
    y = x.double() + (0 if b is None else b.double().reshape(1, -1, 1, 1))
    y = _direct(y, fu, (up, up), (1, 1), padding, flip, up * up)
    y = F.leaky_relu(y, slope) * gain
    if clamp is not None:
        y = y.clamp(-clamp, clamp)
    return _direct(y, fd, (1, 1), (down, down), (0, 0, 0, 0), flip, 1.0)


FL_CASES = [  # fu taps, fd taps, up, down, padding, clamp, flip
    (12, 12, 2, 2, [11, 10, 11, 10], None, False),
    (4, 6, 2, 1, 3, 0.5, True),
    (None, 4, 1, 2, [1, 2], None, False),
    (None, None, 1, 1, 0, 1.0, False),
    (3, None, 3, 1, [0, 1, 2, 0], None, False),
]


@pytest.mark.parametrize("case", FL_CASES, ids=lambda c: f"fu{c[0]}-fd{c[1]}-up{c[2]}-down{c[3]}")
def test_filtered_lrelu_is_its_composition(case, seed):
    fu_taps, fd_taps, up, down, padding, clamp, flip = case
    x = torch.randn(2, 3, 9, 8, dtype=F64)
    b = torch.randn(3, dtype=F64)
    fu = None if fu_taps is None else gx.setup_filter(torch.rand(fu_taps) + 0.1)
    fd = None if fd_taps is None else gx.setup_filter(torch.rand(fd_taps) + 0.1)
    out = gx.filtered_lrelu(x, fu, fd, b, up, down, padding, 1.3, 0.25, clamp, flip, backend="reference")
    p = _lists(dict(up=1, down=1, padding=padding))[2]
    torch.testing.assert_close(out, _filtered_lrelu_direct(x, fu, fd, b, up, down, p, 1.3, 0.25, clamp, flip))
    # StyleGAN3's output size
    fuw, fdw = 1 if fu is None else fu.shape[-1], 1 if fd is None else fd.shape[-1]
    ow = (8 * up + p[0] + p[1] - (fuw - 1) - (fdw - 1) + (down - 1)) // down
    oh = (9 * up + p[2] + p[3] - (fuw - 1) - (fdw - 1) + (down - 1)) // down
    assert out.shape == (2, 3, oh, ow)
    # the documented composition, op by op
    y = gx.bias_act(x, b, backend="reference")
    y = gx.upfirdn2d(y, fu, up=up, padding=padding, flip_filter=flip, gain=up**2, backend="reference")
    y = gx.bias_act(y, act="lrelu", alpha=0.25, gain=1.3, clamp=clamp, backend="reference")
    y = gx.upfirdn2d(y, fd, down=down, flip_filter=flip, backend="reference")
    assert torch.equal(out, y)


@fused
def test_filtered_lrelu_backends(backend, device, seed):
    need(backend, *BLOCK_OPS)
    fu = gx.setup_filter(torch.hann_window(8, periodic=False), device=device)
    fd = gx.setup_filter([1, 3, 3, 1], device=device)
    # (no clamp in float16: rounding y to float16 may legitimately flip the clamp mask next to the bound)
    for dtype, layout, clamp in (
        (torch.float32, "channels_last", 1.0),
        (torch.float16, "contiguous", None),
        (torch.bfloat16, "channels_last", None),
        (F64, "strided", 1.0),
    ):
        x0 = _layout(torch.randn(2, 4, 7, 6, device=device).to(dtype), layout)
        b0 = torch.randn(4, device=device).to(dtype)
        res = []
        for name in ("reference", backend):
            x, b = _leaf(x0), _leaf(b0)
            y = gx.filtered_lrelu(x, fu, fd, b, up=2, down=2, padding=[5, 4, 5, 4], clamp=clamp, backend=name)
            gx_, gb = torch.autograd.grad(y.square().sum(), [x, b])
            res.append((y.detach(), gx_, gb))
        (y_r, gx_r, gb_r), (y, gx_b, gb) = res
        assert y.dtype == dtype and y.shape == y_r.shape == (2, 4, 7, 6)
        f = 8 if dtype in (torch.float16, torch.bfloat16) else 4
        assert_close(y, y_r, factor=f, msg=str(dtype))
        assert_close(gx_b, gx_r, factor=f, msg=str(dtype))
        assert_close(gb, gb_r, factor=f * 16, msg=str(dtype))
    # float64 gradcheck/gradgradcheck through the whole composition
    x = torch.randn(1, 1, 3, 4, dtype=F64, device=device, requires_grad=True)
    b = torch.randn(1, dtype=F64, device=device, requires_grad=True)
    fn = lambda x, b: gx.filtered_lrelu(x, fu.double(), fd.double(), b, 2, 2, [5, 4, 5, 4], backend=backend)  # noqa: E731
    assert gradcheck(fn, (x, b), fast_mode=backend != "reference")
    if not _interpreted(backend, device):  # (the ops' own gradgradchecks run on every backend)
        assert gradgradcheck(fn, (x, b), fast_mode=backend != "reference")


@fused
@pytest.mark.parametrize(
    "up,down,fu_taps,fd_taps",
    [([2, 1], 1, (1, 8), (1, 4)), (2, [1, 2], 24, 24), (1, 1, 24, None)],
    ids=["up2x1", "stylegan3-24taps", "24taps"],
)
def test_filtered_lrelu_anisotropic_and_long_filters(backend, device, up, down, fu_taps, fd_taps, seed):
    """filtered_lrelu with anisotropic up=[2, 1] / down=[1, 2] and StyleGAN3's 24-tap filters (more
    than 16 taps per phase), random asymmetric taps, clamp: output, dx and db against the float64
    reference (bound: the composition applied to |x|, |b|, |f| with a linear activation)."""
    need(backend, *BLOCK_OPS)
    if _interpreted(backend, device) and fu_taps == 24:
        pytest.skip("24×24 taps take minutes in the Triton interpreter: test_tiles.py::test_stylegan3_filter_sizes covers them")

    def filt(taps):
        return None if taps is None else torch.randn(taps, dtype=F64, device=device) / 4

    fu, fd = filt(fu_taps), filt(fd_taps)
    x0 = torch.randn(2, 3, 7, 6, dtype=F64, device=device)
    b0 = torch.randn(3, dtype=F64, device=device)
    padding = [3, 2, 4, 3] if fu_taps != 24 else [23, 22, 23, 22]
    kw = dict(up=up, down=down, padding=padding, gain=1.3, slope=0.25)
    res = []
    for name in (backend, "reference"):
        x, b = _leaf(x0), _leaf(b0)
        y = gx.filtered_lrelu(x, fu, fd, b, clamp=3.0, backend=name, **kw)
        w = torch.randn(y.shape, generator=torch.Generator(device).manual_seed(3), dtype=F64, device=device)
        res.append((y.detach(), *torch.autograd.grad(y, [x, b], w), w))
    (y, dx, db, w), (y_r, dx_r, db_r, _) = res
    ab = lambda t: None if t is None else t.abs()  # noqa: E731
    kw_lin = dict(kw, slope=1.0)
    terms = gx.filtered_lrelu(x0.abs(), ab(fu), ab(fd), b0.abs(), backend="reference", **kw_lin)
    xa = _leaf(x0.abs())
    (dterms,) = torch.autograd.grad(gx.filtered_lrelu(xa, ab(fu), ab(fd), None, backend="reference", **kw_lin), xa, w.abs())
    assert_ref64(y, y_r, terms, kind="sum", msg="forward")
    assert_ref64(dx, dx_r, dterms, kind="sum", msg="dx")
    assert_ref64(db, db_r, dterms.sum((0, 2, 3)), kind="sum", msg="db")


@every_backend
def test_empty_batch(backend, device):
    need(backend, *OPS)
    x = torch.empty(0, 3, 5, 5, device=device, requires_grad=True)
    y = gx.upsample2d(x, gx.setup_filter([1, 3, 3, 1], device=device), backend=backend)
    assert y.shape == (0, 3, 10, 10)
    y.sum().backward()
    assert x.grad.shape == x.shape


# =============================================================================================
# bad input


# =============================================================================================
# the StyleGAN drop-in and the documentation


@every_backend
def test_nvlabs_namespace_matches(backend, device, seed):
    need(backend, *BLOCK_OPS)
    f = nv_upfirdn2d.setup_filter([1, 3, 3, 1], device=device)
    assert torch.equal(f, gx.setup_filter([1, 3, 3, 1], device=device))
    x = torch.randn(1, 2, 8, 7, device=device)
    b = torch.randn(2, device=device)
    pairs = [
        (lambda **k: nv_upfirdn2d.upfirdn2d(x=x, f=f, up=2, down=[1, 2], padding=[1, 2], **k), lambda **k: gx.upfirdn2d(x, f, 2, [1, 2], [1, 2], **k)),
        (lambda **k: nv_upfirdn2d.upsample2d(x, f, **k), lambda **k: gx.upsample2d(x, f, **k)),
        (lambda **k: nv_upfirdn2d.downsample2d(x, f, padding=1, **k), lambda **k: gx.downsample2d(x, f, padding=1, **k)),
        (lambda **k: nv_upfirdn2d.filter2d(x, f, gain=2, **k), lambda **k: gx.filter2d(x, f, gain=2, **k)),
        (
            lambda **k: nv_filtered_lrelu.filtered_lrelu(x, f, f, b, up=2, down=2, padding=3, clamp=0.5, **k),
            lambda **k: gx.filtered_lrelu(x, f, f, b, up=2, down=2, padding=3, clamp=0.5, **k),
        ),
    ]  # fmt: skip
    for nv, ours in pairs:
        with gx.use_backend(backend):
            assert torch.equal(nv(impl="cuda"), ours(backend=backend))  # "cuda": the default backend
        with gx.use_backend(backend), no_kernels():
            assert torch.equal(nv(impl="ref"), ours(backend="reference"))  # "ref": the reference, no kernel
    assert nv_upfirdn2d._parse_padding(3) == (3, 3, 3, 3) and nv_upfirdn2d._parse_padding([1, 2]) == (1, 1, 2, 2)
    assert nv_upfirdn2d._parse_scaling(2) == (2, 2) and nv_upfirdn2d._parse_scaling([1, 3]) == (1, 3)
    assert nv_upfirdn2d._get_filter_size(None) == (1, 1) and nv_upfirdn2d._get_filter_size(torch.ones(3, 5)) == (5, 3)
    assert nv_upfirdn2d._get_filter_size(torch.ones(4)) == (4, 4)
    assert nv_upfirdn2d._init() and nv_filtered_lrelu._init() and nv_bias_act._init()


def _doc_block(tag: str) -> str:
    m = re.search(rf"```python\n# {tag}\n(.*?)```", DOCS.read_text(), re.S)
    assert m, f"docs/blocks.md has no ```python block starting with '# {tag}'"
    return m.group(1)


def _doc_signatures(tag: str) -> dict[str, tuple[list[str], dict]]:
    """``{call name: (parameter names, defaults)}`` of the signature lines of a docs block."""
    out = {}
    env = {"sqrt": math.sqrt, "torch": torch}
    for line in filter(None, (ln.strip() for ln in _doc_block(tag).splitlines())):
        call = ast.parse(line, mode="eval").body
        params = [a.id for a in call.args] + [k.arg for k in call.keywords]
        out[ast.unparse(call.func)] = (
            params,
            {k.arg: eval(compile(ast.Expression(k.value), "doc", "eval"), env) for k in call.keywords},
        )
    return out


@pytest.mark.parametrize("tag", ["signatures", "nvlabs signatures"])
def test_documented_signatures_and_defaults(tag):
    namespaces = {"gx": gx, "bias_act": nv_bias_act, "upfirdn2d": nv_upfirdn2d, "filtered_lrelu": nv_filtered_lrelu}
    sigs = _doc_signatures(tag)
    expected = {"bias_act", "upfirdn2d", "setup_filter", "upsample2d", "downsample2d", "filter2d", "filtered_lrelu"}
    assert {name.split(".")[1] for name in sigs} == expected
    for name, (params, defaults) in sigs.items():
        mod, fn = name.split(".")
        sig = inspect.signature(getattr(namespaces[mod], fn))
        assert list(sig.parameters) == params, f"{name}: documented {params}, code {list(sig.parameters)}"
        for p, value in defaults.items():
            assert sig.parameters[p].default == value, f"{name}({p}=…): documented {value!r}, code {sig.parameters[p].default!r}"


def test_documented_example_runs():
    """The swap example of docs/blocks.md, as written (on the reference backend: the default
    backend's kernels are tested above)."""
    with gx.use_backend("reference"):
        exec(compile(_doc_block("example"), "docs/blocks.md", "exec"), {})
