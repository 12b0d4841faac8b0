"""bias_act (docs/semantics.md#building-blocks-bias_act-upfirdn2d-filtered_lrelu): the reference against StyleGAN2's conventions and its own closed-form
derivatives, every backend against the reference (acts, dims, clamps, dtypes, layouts, derivative
orders), gradcheck/gradgradcheck/third order, bad input, the ``ganreg_ext.nvlabs`` drop-in, and the
defaults documented in docs/blocks.md."""

from __future__ import annotations

import math
import pathlib
import re

import pytest
import torch
import torch.nn.functional as F
from torch.autograd import gradcheck, gradgradcheck

import ganreg_ext as gx
from ganreg_ext._contract import ACT_CODES
from ganreg_ext.bias_act import ACTIVATIONS
from ganreg_ext.nvlabs import bias_act as nv_bias_act
from ganreg_ext.reference import bias_act as ref
from helpers import (
    ANCHOR_ACTS,
    DTYPES,
    LAYOUTS,
    assert_ref64,
    every_backend,
    fused,
    need,
)

OPS = ("bias_act", "bias_act_grad")
ACTS = list(ACT_CODES)
SMOOTH = ["tanh", "sigmoid", "elu", "selu", "softplus", "swish"]
SQRT2 = math.sqrt(2)
DOCS = pathlib.Path(__file__).resolve().parents[1] / "docs" / "blocks.md"

ANCHOR = ANCHOR_ACTS  # StyleGAN2 conventions (tests/helpers.py)


def _layout(t: torch.Tensor, layout: str) -> torch.Tensor:
    """``t``'s values in a memory layout (channels_last only for 4-d; strided: innermost stride 2)."""
    if layout == "channels_last" and t.dim() == 4:
        return t.contiguous(memory_format=torch.channels_last)
    if layout == "strided" and t.dim() >= 1:
        big = torch.zeros(*t.shape[:-1], 2 * t.shape[-1] + 1, dtype=t.dtype, device=t.device)
        big[..., 1::2] = t
        return big[..., 1::2]
    return t.contiguous()


def _inputs(shape, dim, act, dtype, device, layout="contiguous", clamp=None, gain=None, with_bias=True, alpha=None):
    """``(x, b)`` in ``dtype`` with no element near the clamp boundary (where rounding the output to
    ``dtype`` may legitimately flip the clamp mask): those are moved to ``z = x + b = 0.25`` (or
    another point away from the boundary)."""
    x = (torch.randn(shape, device=device) * 1.5).to(dtype)
    b = (torch.randn(shape[dim], device=device) * 0.5).to(dtype) if with_bias else None
    if clamp:
        bb = torch.zeros((), dtype=dtype, device=device) if b is None else ref._bias_view(b, dim, x.dim())
        bb = bb.expand_as(x)
        g = ACTIVATIONS[act][1] if gain is None else gain

        def near(x):
            a = ACTIVATIONS[act][0] if alpha is None else alpha
            y0 = ref.bias_act(x.double(), None if b is None else b.double(), dim, ACT_CODES[act], a, g, -1)
            return (y0.abs() - clamp).abs() < 0.02 * clamp

        for z in (0.25, -0.5, 0.0, 3.0):
            x = torch.where(near(x), (z - bb.double()).to(dtype), x)
        assert not near(x).any()
    return _layout(x, layout), b


def _interpreted(backend, device) -> bool:
    """Triton on CPU tensors runs in its (slow) interpreter: the matrix takes fewer cases there."""
    return backend == "triton" and torch.device(device).type == "cpu"


def _grads(out, inputs, create_graph=False):
    """∂out/∂inputs, zeros where ``out`` does not depend on an input (also when it depends on none)."""
    if not out.requires_grad:
        return [torch.zeros_like(t) for t in inputs]
    gs = torch.autograd.grad(out, inputs, allow_unused=True, create_graph=create_graph)
    return [torch.zeros_like(t) if g is None else g for t, g in zip(inputs, gs)]


def _run(backend, x0, b0, w, v, **kw):
    """Forward, first- and second-order gradients w.r.t. x and b (cotangents w, v)."""
    x = x0.detach().clone().requires_grad_()  # clone keeps the strides of a dense layout
    if x0.stride() != x.stride():
        x = torch.empty_strided(x0.shape, x0.stride(), dtype=x0.dtype, device=x0.device).copy_(x0).requires_grad_()
    b = None if b0 is None else b0.detach().clone().requires_grad_()
    inputs = [x] + ([b] if b is not None else [])
    y = gx.bias_act(x, b, backend=backend, **kw)
    g1 = torch.autograd.grad((y * w).sum(), inputs, create_graph=True)
    second = (g1[0] * v).sum() + 0.5 * g1[0].square().sum()
    g2 = _grads(second, inputs)
    return y, x, [g.detach() for g in g1], g2


# =============================================================================================
# the reference: StyleGAN2 conventions and the closed-form derivatives


def test_defaults_are_stylegan2s():
    acts = ACTIVATIONS
    assert set(acts) == set(ACT_CODES) == set(ANCHOR)
    for name, (_, alpha, gain) in ANCHOR.items():
        assert acts[name] == (alpha, gain), name
    assert (ref.SELU_LAMBDA, ref.SELU_ALPHA) == (1.0507009873554805, 1.6732632423543772)
    z = torch.linspace(-3, 3, 13, dtype=torch.float64)
    torch.testing.assert_close(gx.bias_act(z, act="selu", backend="reference"), F.selu(z))


@pytest.mark.parametrize("act", ACTS)
def test_reference_matches_stylegan2(act, seed):
    """``act(x + b)·gain`` then clamp, with StyleGAN2's default alpha/gain, against torch.nn.functional;
    first and second derivatives too (|z| < 20: F.softplus switches to the identity above 20)."""
    fn, alpha, gain = ANCHOR[act]
    for dim, shape in ((1, (3, 4, 5, 6)), (0, (4, 7)), (2, (2, 3, 5))):
        for clamp, kw in ((None, {}), (0.7, {"clamp": 0.7}), (None, {"alpha": 0.1, "gain": 0.5})):
            x0, b0 = _inputs(shape, dim, act, torch.float64, "cpu", clamp=clamp, gain=kw.get("gain"), alpha=kw.get("alpha"))
            x, b = x0.clone().requires_grad_(), b0.clone().requires_grad_()
            a, g = kw.get("alpha", alpha), kw.get("gain", gain)
            y_anchor = fn(x + b.reshape([-1 if i == dim else 1 for i in range(x.dim())]), a) * g
            if clamp is not None:
                y_anchor = y_anchor.clamp(-clamp, clamp)
            y = gx.bias_act(x, b, dim, act, backend="reference", **kw)
            torch.testing.assert_close(y, y_anchor, rtol=1e-12, atol=1e-12)
            w = torch.randn(shape, dtype=torch.float64)
            ga = torch.autograd.grad((y_anchor * w).sum(), [x, b], create_graph=True)
            gb = torch.autograd.grad((y * w).sum(), [x, b], create_graph=True)
            for p, q in zip(gb, ga):
                torch.testing.assert_close(p, q, rtol=1e-12, atol=1e-12)
            for p, q in zip(_grads(gb[0].square().sum(), [x, b]), _grads(ga[0].square().sum(), [x, b])):
                torch.testing.assert_close(p, q, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("act", ACTS)
def test_reference_grad_closed_forms(act, seed):
    """``reference.bias_act_grad`` (the fused ops' formulas) = repeated autograd of the reference
    ``bias_act``, orders 1..8, with and without clamp, with several multipliers; the
    piecewise-linear activations also from the output alone (x = None)."""
    code = ACT_CODES[act]
    shape, dim = (3, 4, 5), 1
    for clamp in (-1.0, 0.8):
        x0, b0 = _inputs(shape, dim, act, torch.float64, "cpu", clamp=clamp if clamp > 0 else None, gain=1.3)
        x = x0.clone().requires_grad_()
        y = ref.bias_act(x, b0, dim, code, 0.2, 1.3, clamp)
        m1, m2 = torch.randn(shape, dtype=torch.float64), torch.randn(shape, dtype=torch.float64)
        g = y
        for k in range(1, 9):
            g = _grads((g * (m1 if k == 1 else 1)).sum(), [x], True)[0]
            got = ref.bias_act_grad(x0, b0, None, [m1], dim, code, 0.2, 1.3, clamp, k)
            torch.testing.assert_close(got, g.detach(), rtol=1e-9, atol=1e-9 * (1 + got.abs().max().item()))
            two = ref.bias_act_grad(x0, b0, y.detach(), [m1, m2], dim, code, 0.2, 1.3, clamp, k)
            torch.testing.assert_close(two, got * m2, rtol=1e-12, atol=1e-12 * (1 + got.abs().max().item()))
            if act in ("linear", "relu", "lrelu"):
                from_y = ref.bias_act_grad(None, None, y.detach(), [m1], dim, code, 0.2, 1.3, clamp, k)
                torch.testing.assert_close(from_y, got, rtol=0, atol=0)
    with pytest.raises(ValueError, match="order"):
        ref.bias_act_grad(x0, b0, None, [m1], dim, code, 0.2, 1.3, -1.0, 9)


def test_clamp_gradient_is_zero_where_clamped():
    x = torch.tensor([-3.0, -0.5, 0.0, 0.5, 3.0], dtype=torch.float64, requires_grad=True)
    y = gx.bias_act(x, act="linear", clamp=1.0, backend="reference")
    assert y.tolist() == [-1.0, -0.5, 0.0, 0.5, 1.0]
    (g,) = torch.autograd.grad(y.sum(), x)
    assert g.tolist() == [0.0, 1.0, 1.0, 1.0, 0.0]
    x = torch.tensor([1.0, 2.0], dtype=torch.float64, requires_grad=True)  # |y| == clamp: clamped (0)
    (g,) = torch.autograd.grad(gx.bias_act(x, clamp=1.0, backend="reference").sum(), x)
    assert g.tolist() == [0.0, 0.0]


def test_softplus_is_stable_for_large_inputs():
    z = torch.tensor([-800.0, -50.0, 0.0, 50.0, 800.0], dtype=torch.float64, requires_grad=True)
    y = gx.bias_act(z, act="softplus", backend="reference")
    assert torch.isfinite(y).all()
    g1 = torch.autograd.grad(y.sum(), z, create_graph=True)[0]
    g2 = torch.autograd.grad(g1.sum(), z, create_graph=True)[0]
    g3 = torch.autograd.grad(g2.sum(), z)[0]
    assert torch.isfinite(g1).all() and torch.isfinite(g2).all() and torch.isfinite(g3).all()
    torch.testing.assert_close(g1, torch.sigmoid(z.detach()))


@every_backend
def test_empty_and_scalar_inputs(backend, device):
    need(backend, *OPS)
    x = torch.empty(0, 3, device=device, requires_grad=True)
    y = gx.bias_act(x, torch.zeros(3, device=device), act="lrelu", backend=backend)
    assert y.shape == (0, 3)
    y.sum().backward()
    assert x.grad.shape == (0, 3)
    y = gx.bias_act(torch.tensor(-1.0, device=device), act="lrelu", backend=backend)
    assert y.shape == () and y.item() == pytest.approx(-0.2 * SQRT2)


# =============================================================================================
# every backend against the reference

CASES = [  # (shape, dim, with bias)
    ((3, 5, 4, 7), 1, True),  # NCHW, bias per channel
    ((1, 3, 5, 9), 3, True),  # batch 1, bias along the width
    ((2, 6), 1, True),  # fully connected
    ((3, 2, 11), 0, False),  # no bias
]


def _ref64(x0, b0, w, v, **kw):
    """The float64 reference of what :func:`_run` computes, with the error bound's inputs
    (helpers.error_bound): ``{name: (ref64, terms, inter, kind)}`` for y, dx, d2x (and db, d2b).
    Elementwise, with z = x + b and its magnitude ζ = |x| + |b| (z is rounded once in the kernel's
    accumulation dtype): y = F(z) has terms |F1|·ζ; dx = g1 = w·F1 has |w·F2|·ζ; d2x = (v + g1)·h,
    h = w·F2, has |(v + g1)·w·F3|·ζ (Fk the k-th derivative) plus the cotangent v + g1 that autograd
    forms in the input dtype from the ROUNDED g1 (``inter`` (|v| + 2|g1|)·|h|), whose own error (the terms
    of dx, times |h|) d2x inherits. db, d2b: the sums of
    those over the reduced dims, whose summands (dx, d2x) may be rounded to the dtype first (``inter``
    Σ|dx|: one unit each; still 64× tighter than the old 64 units of Σ|terms|)."""
    x = x0.detach().double().requires_grad_()
    b = None if b0 is None else b0.detach().double().requires_grad_()
    w64, v64 = w.double(), v.double()
    y, _, g1, g2 = _run("reference", x0.double(), None if b0 is None else b0.double(), w64, v64, **kw)
    yy = gx.bias_act(x, b, backend="reference", **kw)
    d1 = _grads(yy.sum(), [x], True)[0]
    h = _grads((w64 * d1).sum(), [x], True)[0]
    h3 = _grads(h.sum(), [x])[0]
    zeta = x0.double().abs()
    if b0 is not None:
        zeta = zeta + ref._bias_view(b0.double().abs(), kw["dim"], x0.dim())
    dx, hd = g1[0], h.detach()
    wg = w64.abs() * kw.get("gain", ACTIVATIONS[kw["act"]][1]) * (1 + zeta)  # derivatives are polynomials in
    # f ∈ [−1, 1] (tanh: 1 − t², which cancels where |t| → 1), times z for swish (z·P0(s) + k·P1(s)): their
    # evaluation errs by a few units of |w|·gain·(1 + |z|)
    out = {
        "forward": (y.detach(), d1.detach().abs() * zeta, None, "elementwise"),
        "dx": (dx, hd.abs() * zeta + wg, None, "elementwise"),
        "d2x": (
            g2[0],
            (h3 * (v64 + dx)).abs() * zeta + (v64 + dx).abs() * wg,
            (v64.abs() + 2 * dx.abs()) * hd.abs(),
            "elementwise",
        ),
    }
    # the error of the fused dx (its own terms, not |dx|: F1 cancels, e.g. swish near z = −1.28) carried by h
    # into d2x through the cotangent v + dx (which cancels too where v ≈ −dx)
    out["d2x"] = (out["d2x"][0], out["d2x"][1] + hd.abs() * out["dx"][1], *out["d2x"][2:])
    if b0 is not None:
        red = [d for d in range(x0.dim()) if d != kw["dim"]]
        out["db"] = (g1[1], (dx.abs() + out["dx"][1]).sum(red), dx.abs().sum(red), "sum")
        out["d2b"] = (g2[1], (g2[0].abs() + out["d2x"][1]).sum(red), (g2[0].abs() + out["d2x"][2]).sum(red), "sum")
    return out


@fused
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_matrix_forward_and_derivatives(backend, device, dtype, layout, seed):
    """Output, first- and second-order gradients w.r.t. x and b against the reference in float64,
    within the error bound of helpers (one final rounding to ``dtype``, the float32 (float64)
    arithmetic), for every activation, default and explicit alpha/gain, with and without clamp
    (clamp 0 included)."""
    need(backend, *OPS)
    cases = CASES
    if _interpreted(backend, device):  # one case per dtype/layout, each case still seen several times
        cases = [CASES[(DTYPES.index(dtype) + LAYOUTS.index(layout)) % len(CASES)]]
    for shape, dim, with_bias in cases:
        for act in ACTS:
            for kw in ({}, {"clamp": 0.6, "gain": 1.5, "alpha": 0.3}, {"clamp": 0.0}):
                x0, b0 = _inputs(
                    shape, dim, act, dtype, device, layout, kw.get("clamp"), kw.get("gain"), with_bias, kw.get("alpha")
                )
                w = torch.randn(shape, device=device).to(dtype)
                v = torch.randn(shape, device=device).to(dtype)
                kw_all = dict(dim=dim, act=act, **kw)
                y, x, g1, g2 = _run(backend, x0, b0, w, v, **kw_all)
                what = f"{act} {kw} {shape} dim={dim}"
                assert y.dtype == dtype and y.shape == x0.shape, what
                assert y.stride() == torch.empty_like(x).stride(), f"{what}: layout not kept {y.stride()}"
                got = {"forward": y, "dx": g1[0], "d2x": g2[0]}
                if with_bias:
                    got.update(db=g1[1], d2b=g2[1])
                for name, (r64, terms, inter, kind) in _ref64(x0, b0, w, v, **kw_all).items():
                    assert got[name].dtype == dtype and got[name].shape == r64.shape, name
                    assert_ref64(got[name], r64, terms, inter, kind, msg=f"{name} {what}")


@every_backend
@pytest.mark.parametrize("act", ACTS)
def test_gradcheck(backend, device, act, seed):
    need(backend, *OPS)
    fast = backend != "reference"  # one random projection on fused backends (the Triton interpreter is slow)
    for kw in ({}, {"clamp": 1.0, "gain": 0.9}):
        x0, b0 = _inputs((2, 3, 4), 1, act, torch.float64, device, clamp=kw.get("clamp"), gain=kw.get("gain"))
        x, b = x0.requires_grad_(), b0.requires_grad_()
        fn = lambda x, b: gx.bias_act(x, b, 1, act, backend=backend, **kw)  # noqa: B023
        assert gradcheck(fn, (x, b), fast_mode=fast)
        assert gradgradcheck(fn, (x, b), fast_mode=fast)


@every_backend
@pytest.mark.parametrize("act", SMOOTH)
def test_third_order(backend, device, act, seed):
    """gradgradcheck of the gradient: the third derivative w.r.t. x and b is exact."""
    need(backend, *OPS)
    x0, b0 = _inputs((2, 3, 3), 1, act, torch.float64, device)
    w = torch.randn(2, 3, 3, dtype=torch.float64, device=device)

    def grad_fn(x, b):
        y = gx.bias_act(x, b, 1, act, backend=backend)
        return torch.autograd.grad((y * w).sum(), x, create_graph=True)[0]

    assert gradgradcheck(grad_fn, (x0.requires_grad_(), b0.requires_grad_()), fast_mode=backend != "reference")


@fused
@pytest.mark.parametrize("act", ["tanh", "swish", "elu", "lrelu"])
def test_higher_orders(backend, device, act, seed):
    """Derivatives of order 1..5 w.r.t. x (nested autograd) and their gradient w.r.t. b, fused
    against the reference (float64)."""
    need(backend, *OPS)
    x0, b0 = _inputs((2, 3, 5), 1, act, torch.float64, device, clamp=2.0)
    res = []
    for name in (backend, "reference"):
        x, b = x0.clone().requires_grad_(), b0.clone().requires_grad_()
        g, out = gx.bias_act(x, b, 1, act, clamp=2.0, backend=name), []
        for _ in range(5):
            g = _grads(g.sum(), [x], True)[0]
            out.append(g)
        out.append(_grads(out[1].square().sum(), [b])[0])
        res.append([t.detach() for t in out])
    for k, (p, q) in enumerate(zip(*res)):
        torch.testing.assert_close(p, q, rtol=1e-9, atol=1e-9 * (1 + q.abs().max().item()), msg=f"order {k + 1}")


@fused
def test_order_limit_is_a_clear_error(backend, device):
    """The fused family supports derivatives of order 1..8 and says so beyond."""
    need(backend, *OPS)
    x = torch.randn(4, 3, dtype=torch.float64, device=device, requires_grad=True)
    g = gx.bias_act(x, act="tanh", backend=backend)
    for _ in range(8):
        g = torch.autograd.grad(g.sum(), x, create_graph=True)[0]
    assert torch.isfinite(g).all()
    with pytest.raises((RuntimeError, ValueError), match="order"):
        torch.autograd.grad(g.sum(), x, create_graph=True)


@every_backend
def test_deterministic_and_inputs_untouched(backend, device, seed):
    need(backend, *OPS)
    x0, b0 = _inputs((3, 4, 9, 7), 1, "lrelu", torch.float32, device, "channels_last")
    keep = (x0.clone(), b0.clone())
    outs = [_run(backend, x0, b0, torch.ones_like(x0), torch.ones_like(x0), act="swish", clamp=1.0) for _ in range(2)]
    assert torch.equal(outs[0][0], outs[1][0])
    for p, q in zip(outs[0][2] + outs[0][3], outs[1][2] + outs[1][3]):
        assert torch.equal(p, q)
    assert torch.equal(x0, keep[0]) and torch.equal(b0, keep[1])


@fused
def test_grad_only_for_bias_or_only_for_x(backend, device, seed):
    """Only b or only x requires grad: the fused gradient against the float64 reference."""
    need(backend, *OPS)
    x0, b0 = _inputs((2, 3, 4, 4), 1, "tanh", torch.float32, device)
    b, b64 = b0.clone().requires_grad_(), b0.double().requires_grad_()
    (db,) = torch.autograd.grad(gx.bias_act(x0, b, act="tanh", backend=backend).sum(), b)
    (db_ref,) = torch.autograd.grad(gx.bias_act(x0.double(), b64, act="tanh", backend="reference").sum(), b64)
    x, x64 = x0.clone().requires_grad_(), x0.double().requires_grad_()
    (dx,) = torch.autograd.grad(gx.bias_act(x, b0, act="tanh", backend=backend).sum(), x)
    (dx_ref,) = torch.autograd.grad(gx.bias_act(x64, b0.double(), act="tanh", backend="reference").sum(), x64)
    zeta = x0.double().abs() + b0.double().abs().view(1, -1, 1, 1)  # |f'|·|z| + the polynomial's units
    terms = dx_ref.abs() * zeta + 1
    assert_ref64(dx, dx_ref, terms, msg="dx")
    assert_ref64(db, db_ref, terms.sum((0, 2, 3)), terms.sum((0, 2, 3)), kind="sum", msg="db")


# =============================================================================================
# bad input


# =============================================================================================
# the StyleGAN drop-in and the documentation


@every_backend
def test_nvlabs_namespace_matches(backend, device, seed):
    need(backend, *OPS)
    x0, b0 = _inputs((2, 4, 5, 5), 1, "lrelu", torch.float32, device, clamp=0.9)
    for act, kw in (("lrelu", {"clamp": 0.9}), ("swish", {}), ("linear", {"gain": 2.0})):
        exp = gx.bias_act(x0, b0, 1, act, backend=backend, **kw)
        with gx.use_backend(backend):
            got = nv_bias_act.bias_act(x=x0, b=b0, dim=1, act=act, impl="cuda", **kw)
        assert torch.equal(got, exp)
        ref_out = nv_bias_act.bias_act(x0, b0, act=act, impl="ref", **kw)
        assert torch.equal(ref_out, gx.bias_act(x0, b0, 1, act, backend="reference", **kw))
    for name, (_, alpha, gain) in ANCHOR.items():
        spec = nv_bias_act.activation_funcs[name]
        assert (spec.def_alpha, spec.def_gain) == (alpha, gain)
        assert spec.has_2nd_grad == (name in SMOOTH)
    assert nv_bias_act._init()


def test_documented_activation_defaults():
    """The activation table of docs/blocks.md (signature defaults: test_upfirdn2d.py)."""
    # the activation table: | `name` | formula | default alpha | default gain |
    table = {}
    for row in re.findall(r"^\| `(\w+)` \|(.*)$", DOCS.read_text(), re.M):
        cells = [c.strip() for c in row[1].split("|")]
        if row[0] in ACT_CODES:
            alpha = 0.0 if cells[1] in ("–", "-") else float(cells[1])
            gain = SQRT2 if cells[2] == "√2" else float(cells[2])
            table[row[0]] = (alpha, gain)
    assert table == ACTIVATIONS


# =============================================================================================
# inputs the planted-bug run found untested (issue 22)


@fused
@pytest.mark.parametrize("act", ["lrelu", "tanh"])
def test_fc_layer_bias_gradient(backend, device, act, seed):
    """A ``[4, 300]`` fully-connected layer, bias along the innermost dim (> 256 = the CPU block):
    db and dx against the float64 reference."""
    need(backend, *OPS)
    x0, b0 = _inputs((4, 300), 1, act, torch.float32, device)
    w = torch.randn(4, 300, device=device)
    y, _, g1, _ = _run(backend, x0, b0, w, w, dim=1, act=act)
    ref = _ref64(x0, b0, w, w, dim=1, act=act)
    for name, got in (("forward", y), ("dx", g1[0]), ("db", g1[1])):
        assert_ref64(got, ref[name][0], ref[name][1], ref[name][2], ref[name][3], msg=name)


# measured divergences from the reference's NaN policy (issue 22); each entry must fail (a fixed one
# is removed from here)
NAN_KNOWN_DIVERGENT: dict = {}  # (backend, act, clamp) → why; strict: an entry that passes fails
NAN_ACTS = ["linear", "relu", "lrelu", "tanh", "sigmoid", "elu", "selu", "softplus", "swish"]


@fused
@pytest.mark.parametrize("clamp", [None, 0.5])
@pytest.mark.parametrize("act", NAN_ACTS)
def test_nan_input_policy(backend, device, act, clamp, seed):
    """A NaN input: the output and the gradient (w.r.t. x and b) are what the reference gives,
    NaN for NaN (docs/semantics.md: NaN propagates through f; the clamp's mask treats a NaN output
    as not clamped for a smooth f, while the piecewise-linear ones give what the reference gives)."""
    need(backend, *OPS)
    if (backend, act, clamp) in NAN_KNOWN_DIVERGENT:  # strict: must still fail, else remove the entry
        with pytest.raises(AssertionError):
            _check_nan(backend, device, act, clamp)
        pytest.xfail(NAN_KNOWN_DIVERGENT[backend, act, clamp])
    _check_nan(backend, device, act, clamp)


def _check_nan(backend, device, act, clamp):
    x0 = torch.randn(3, 4, 5, device=device)
    x0[0, 1, 2] = float("nan")
    x0[2, 3, 0] = float("nan")
    b0 = torch.randn(4, device=device)
    kw = dict(dim=1, act=act, clamp=clamp)
    res = []
    for name in (backend, "reference"):
        x, b = x0.clone().requires_grad_(), b0.clone().requires_grad_()
        y = gx.bias_act(x, b, backend=name, **kw)
        res.append((y.detach(), *torch.autograd.grad(y.sum(), [x, b])))
    for what, p, q in zip(("y", "dx", "db"), *res):
        assert torch.equal(torch.isnan(p), torch.isnan(q)), (
            f"{what}: NaN where the reference has {q[torch.isnan(p) != torch.isnan(q)]}"
        )
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-5, equal_nan=True, msg=what)
