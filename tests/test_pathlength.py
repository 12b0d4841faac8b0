"""Path length regularization (docs/semantics.md#path-length-regularization-stylegan2): the reference against the NVlabs ``Gpl`` recipe,
gradcheck/gradgradcheck, and the fused-backend matrix (noise-dot and penalty, fused vs reference)."""

from __future__ import annotations

import math

import pytest
import torch
from torch.autograd import gradcheck, gradgradcheck

import ganreg_ext as gx
from ganreg_ext.reference import philox
from helpers import (
    DTYPES,
    GN,
    LAYOUTS,
    NOISE,
    NOISE_ATOL,
    TOL,
    acc_dtype,
    assert_close,
    assert_sum_close,
    fused,
    leaf,
    make,
    need,
)


def nvlabs_pl(pl_grads: torch.Tensor, pl_mean: torch.Tensor, decay: float):
    """NVlabs stylegan2-ada-pytorch ``loss.py`` (Gpl), transcribed."""
    pl_lengths = pl_grads.square().sum(2).mean(1).sqrt()
    pl_mean = pl_mean.lerp(pl_lengths.mean(), decay)
    pl_penalty = (pl_lengths - pl_mean).square()
    return pl_penalty, pl_mean


# =============================================================================================
# the noise


def test_path_length_noise_is_scaled_stream(seed):
    shape = (3, 2, 5, 6)
    y = gx.path_length_noise(shape, seed)
    assert y.shape == shape and y.dtype == torch.float32
    n = philox.normal_stream(math.prod(shape), seed).reshape(shape)
    torch.testing.assert_close(y, n / math.sqrt(30), rtol=1e-6, atol=1e-7)
    assert gx.path_length_noise(shape, seed, dtype=torch.float64).dtype == torch.float64
    assert not torch.equal(y, gx.path_length_noise(shape, seed + 1))
    # NVlabs: pl_noise = randn_like(img) / sqrt(H·W): unit variance times 1/sqrt(HW)
    big = gx.path_length_noise((4, 3, 32, 32), seed)
    assert abs(big.var().item() * 32 * 32 - 1) < 0.1


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16], ids=str)
def test_noise_dot_reference(seed, dtype):
    x = torch.randn(2, 3, 7, 5).to(dtype).requires_grad_()
    out = gx.path_length_noise_dot(x, seed, backend="reference")
    acc = acc_dtype(dtype)
    assert out.dim() == 0 and out.dtype == acc
    y = gx.path_length_noise(x.shape, seed, dtype=torch.float64)
    torch.testing.assert_close(out.double(), (x.detach().double() * y).sum(), rtol=1e-5, atol=1e-5)
    out.backward(torch.tensor(1.7, dtype=acc))
    torch.testing.assert_close(
        x.grad.double(), 1.7 * y, rtol=2e-3 if dtype == torch.float16 else 1e-6, atol=1e-3 if dtype == torch.float16 else 1e-7
    )


def test_noise_dot_logical_index_not_memory(seed):
    """The noise is indexed by the logical NCHW position: channels_last / strided inputs get the same noise."""
    x = torch.randn(2, 3, 6, 5)
    a = gx.path_length_noise_dot(x, seed, backend="reference")
    b = gx.path_length_noise_dot(x.contiguous(memory_format=torch.channels_last), seed, backend="reference")
    torch.testing.assert_close(a, b)


def test_seed_none_uses_torch_rng():
    x = torch.randn(2, 3, 4, 4)
    torch.manual_seed(123)
    a = gx.path_length_noise_dot(x, backend="reference")
    torch.manual_seed(123)
    b = gx.path_length_noise_dot(x, backend="reference")
    c = gx.path_length_noise_dot(x, backend="reference")
    assert torch.equal(a, b) and not torch.equal(b, c)


# =============================================================================================
# the penalty vs NVlabs


@pytest.mark.parametrize("shape", [(5, 4, 8), (1, 3, 5), (6, 16)])
def test_path_length_penalty_matches_nvlabs(seed, shape):
    decay = 0.01 if len(shape) == 3 else 0.37
    g = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    pl_mean = torch.tensor(float(torch.rand(()) * 3), dtype=torch.float64)
    g3 = g if g.dim() == 3 else g.unsqueeze(1)  # [B, w_dim] is num_ws = 1
    exp_pen, exp_mean = nvlabs_pl(g3, pl_mean, decay)
    w = torch.randn(shape[0], dtype=torch.float64)
    (exp_gr,) = torch.autograd.grad((exp_pen * w).sum(), g)
    pen, new_mean = gx.path_length_penalty(g, pl_mean, decay, backend="reference")
    torch.testing.assert_close(pen, exp_pen)
    torch.testing.assert_close(new_mean, exp_mean)
    (gr,) = torch.autograd.grad((pen * w).sum(), g)
    torch.testing.assert_close(gr, exp_gr)  # includes the path through new_mean (coefficient decay)


def test_penalty_gradient_flows_through_new_mean(seed):
    """NVlabs does not detach the lerp: the gradient differs from the detached-mean version."""
    g = torch.randn(4, 3, 5, dtype=torch.float64, requires_grad=True)
    pen, m = gx.path_length_penalty(g, 0.5, 0.3, backend="reference")
    (a,) = torch.autograd.grad(pen.sum(), g)
    lengths = g.square().sum(2).mean(1).sqrt()
    (b,) = torch.autograd.grad((lengths - m.detach()).square().sum(), g)
    assert not torch.allclose(a, b)


def test_regularizer_matches_nvlabs_steps(seed):
    """PathLengthRegularizer vs the NVlabs recipe over 3 steps: loss, pl_mean, d loss / d ws."""
    B, num_ws, w_dim = 3, 4, 6
    W = torch.randn(num_ws * w_dim, 2 * 5 * 5, dtype=torch.float64) / 6
    reg = gx.PathLengthRegularizer(decay=0.2, weight=2.0, backend="reference")
    pl_mean = torch.zeros((), dtype=torch.float64)
    for step in range(3):
        ws = torch.randn(B, num_ws, w_dim, dtype=torch.float64, requires_grad=True)
        img = torch.tanh(ws.reshape(B, -1) @ W).reshape(B, 2, 5, 5)
        s = seed + step
        # NVlabs with the same noise
        pl_noise = gx.path_length_noise(img.shape, s, dtype=torch.float64)
        (pl_grads,) = torch.autograd.grad(outputs=[(img * pl_noise).sum()], inputs=[ws], create_graph=True, only_inputs=True)
        pen, pl_mean_new = nvlabs_pl(pl_grads, pl_mean, 0.2)
        pl_mean = pl_mean_new.detach()
        exp_loss = (pen * 2.0).mean()
        (exp_g,) = torch.autograd.grad(exp_loss, ws, retain_graph=True)
        loss = reg(img, ws, seed=s)
        (g,) = torch.autograd.grad(loss, ws)
        torch.testing.assert_close(loss.double(), exp_loss, rtol=1e-6, atol=1e-9)
        torch.testing.assert_close(reg.pl_mean.double(), pl_mean, rtol=1e-6, atol=1e-9)
        torch.testing.assert_close(g, exp_g, rtol=1e-6, atol=1e-9)
    assert reg.pl_mean.dtype == torch.float32 and reg.pl_mean.dim() == 0 and reg.pl_mean > 0
    assert "pl_mean" in reg.state_dict()
    reg2 = gx.PathLengthRegularizer()
    reg2.load_state_dict(reg.state_dict())
    assert torch.equal(reg2.pl_mean, reg.pl_mean)


# =============================================================================================
# gradients of the reference (float64)


def _cases(backend):
    return {
        "noise_dot": (lambda x: gx.path_length_noise_dot(x, 12345 + 2**40, backend=backend), [(2, 2, 3, 2)]),
        "penalty": (lambda g: gx.path_length_penalty(g, 0.4, 0.1, backend=backend)[0], [(2, 3, 2)]),
        "penalty_2d": (lambda g: gx.path_length_penalty(g, 0.0, 0.5, backend=backend), [(3, 2)]),
    }


@pytest.mark.parametrize("case", list(_cases("reference")))
def test_reference_gradcheck(case, seed):
    fn, shapes = _cases("reference")[case]
    inputs = [torch.randn(*s, dtype=torch.float64, requires_grad=True) for s in shapes]
    assert gradcheck(fn, inputs)
    assert gradgradcheck(fn, inputs)


def test_noise_dot_double_backward(seed):
    """Inside autograd.grad(create_graph=True), then backward: d/dgrad_out of grad_out·y is the noise-dot."""
    x = torch.randn(2, 3, 4, 4, dtype=torch.float64, requires_grad=True)
    t = torch.randn((), dtype=torch.float64, requires_grad=True)
    out = gx.path_length_noise_dot(x * t, seed, backend="reference")
    (gx_,) = torch.autograd.grad(out, x, create_graph=True)  # = t·y
    v = torch.randn_like(x)
    (gt,) = torch.autograd.grad((gx_ * v).sum(), t)
    y = gx.path_length_noise(x.shape, seed, dtype=torch.float64)
    torch.testing.assert_close(gt, (y * v).sum())


# =============================================================================================
# backend matrix

SHAPES = [(1, 3, 5, 7), (4, 3, 8, 8), (2, 1, 9, 13)]


@fused
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_matrix_noise_dot(backend, device, dtype, layout, seed):
    need(backend, *NOISE)
    for shape in SHAPES:
        for s in (seed, seed + (5 << 32)):
            x0 = make(shape, dtype, device, layout)
            res = []
            for name in ("reference", backend):
                x = leaf(x0)
                out = gx.path_length_noise_dot(x, s, backend=name)
                assert out.dim() == 0 and out.dtype == acc_dtype(dtype)
                go = torch.tensor(-1.3, device=device, dtype=out.dtype)
                out.backward(go)
                res.append((out.detach(), x.grad))
            # a signed sum Σ x·y in the accumulation dtype; the streams agree to 1e-5 absolute (docs/semantics.md#path-length-regularization-stylegan2)
            hw = math.sqrt(shape[2] * shape[3])
            y = gx.path_length_noise(shape, s, device=device, dtype=torch.float64)
            x64 = x0.detach().double()
            terms, abs_x = (x64 * y).abs().sum(), x64.abs().sum() / hw
            assert_sum_close(res[1][0], res[0][0], terms, atol=float(NOISE_ATOL * abs_x))
            # backward: −1.3·y in x's dtype (elementwise)
            assert res[1][1].dtype == dtype and res[1][1].shape == x0.shape
            rtol, atol = TOL[dtype]
            torch.testing.assert_close(
                res[1][1], res[0][1], rtol=rtol, atol=atol + 1.3 * NOISE_ATOL / hw, msg=f"backward {shape} {s}"
            )
            assert res[0][1].abs().max() > 0.1


@fused
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_matrix_penalty(backend, device, dtype, layout, seed):
    need(backend, *GN)
    for shape in ((1, 4, 7), (5, 3, 16), (3, 9)):
        g0 = make(shape, dtype, device, layout)
        pl_mean = torch.tensor(0.7, device=device)
        res = []
        for name in ("reference", backend):
            g = leaf(g0)
            pen, m = gx.path_length_penalty(g, pl_mean, 0.1, backend=name)
            w = torch.linspace(-1, 1, shape[0], device=device, dtype=pen.dtype)
            ((pen * w).sum() + m).backward()
            res.append((pen.detach(), m.detach(), g.grad))
        # (len_b − new_mean)²: the lengths come from float32 sums of squares, differences may cancel
        lengths = g0.detach().double().square().flatten(1).sum(1).div(1 if len(shape) == 2 else shape[1]).sqrt()
        assert_sum_close(res[1][0], res[0][0], (lengths + lengths.mean() + 0.7) ** 2)
        assert_sum_close(res[1][1], res[0][1], lengths.mean() + 0.7)
        assert_close(res[1][2], res[0][2])


@fused
@pytest.mark.parametrize("case", list(_cases("reference")))
def test_matrix_gradcheck(backend, device, case, seed):
    need(backend, *NOISE, *GN)
    fn, shapes = _cases(backend)[case]
    inputs = [torch.randn(*s, dtype=torch.float64, device=device, requires_grad=True) for s in shapes]
    # fast_mode: one random projection instead of a full Jacobian (the Triton interpreter is slow)
    assert gradcheck(fn, inputs, fast_mode=True)
    assert gradgradcheck(fn, inputs, fast_mode=True)


@fused
def test_matrix_regularizer_and_determinism(backend, device, seed):
    need(backend, *NOISE, *GN)
    B, num_ws, w_dim = 2, 3, 4
    W = torch.randn(num_ws * w_dim, 3 * 6 * 6, device=device) / 4
    ws0 = torch.randn(B, num_ws, w_dim, device=device)
    res = []
    for name in ("reference", backend, backend):
        reg = gx.PathLengthRegularizer(decay=0.5, backend=name).to(device)
        ws = ws0.clone().requires_grad_()
        img = torch.tanh(ws.reshape(B, -1) @ W).reshape(B, 3, 6, 6)
        loss = reg(img, ws, seed=seed)
        loss.backward()
        res.append((loss.detach(), reg.pl_mean.clone(), ws.grad))
    for k in range(3):
        torch.testing.assert_close(res[1][k], res[0][k], rtol=1e-4, atol=1e-4)
        assert torch.equal(res[1][k], res[2][k])  # deterministic
