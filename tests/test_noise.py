"""Instance noise (docs/semantics.md#instance-noise): ``x + σ·n`` with the docs/semantics.md#path-length-regularization-stylegan2 Philox stream, the annealed module,
gradients, and the fused-backend matrix."""

from __future__ import annotations

import pytest
import torch
from torch.autograd import gradcheck, gradgradcheck

import ganreg_ext as gx
from ganreg_ext.reference import philox
from helpers import DTYPES, LAYOUTS, NOISE, NOISE_ATOL, TOL, fused, make, need


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_instance_noise_reference(seed, dtype):
    x = (torch.randn(3, 2, 5, 7) * 2).to(dtype)
    sigma = float(torch.empty(()).uniform_(0.1, 2.0))
    out = gx.instance_noise(x, sigma, seed, backend="reference")
    assert out.dtype == dtype and out.shape == x.shape
    n = philox.normal_stream(x.numel(), seed).reshape(x.shape).double()
    exp = (x.double() + sigma * n).to(dtype)
    rtol, atol = TOL[dtype]
    torch.testing.assert_close(out, exp, rtol=max(rtol, 1e-6), atol=max(atol, 1e-6))
    assert not torch.equal(out, gx.instance_noise(x, sigma, seed + 1, backend="reference"))
    torch.testing.assert_close(gx.instance_noise(x, 0.0, seed, backend="reference"), x, rtol=0, atol=0)


def test_instance_noise_layouts_use_logical_index(seed):
    x = torch.randn(2, 3, 4, 5)
    a = gx.instance_noise(x, 0.5, seed, backend="reference")
    b = gx.instance_noise(x.contiguous(memory_format=torch.channels_last), 0.5, seed, backend="reference")
    torch.testing.assert_close(a, b)
    # any rank: [B, D] vectors get the stream over their flat index
    z = torch.randn(4, 9)
    torch.testing.assert_close(
        gx.instance_noise(z, 1.0, seed, backend="reference"), z + philox.normal_stream(36, seed).view(4, 9)
    )


def test_instance_noise_statistics(seed):
    x = torch.zeros(8, 4, 32, 32)
    n = gx.instance_noise(x, 0.3, seed, backend="reference")
    assert abs(n.mean().item()) < 0.01 and abs(n.std().item() - 0.3) < 0.01


def test_instance_noise_seed_none_is_reproducible():
    x = torch.randn(2, 3, 4, 4)
    torch.manual_seed(99)
    a = gx.instance_noise(x, 1.0, backend="reference")
    torch.manual_seed(99)
    b = gx.instance_noise(x, 1.0, backend="reference")
    assert torch.equal(a, b) and not torch.equal(a, gx.instance_noise(x, 1.0, backend="reference"))


def test_instance_noise_module_anneals(seed):
    """Sønderby 2016: σ_t = σ0 · max(0, 1 − t / T), linear to 0 and then 0."""
    m = gx.InstanceNoise(0.8, anneal_steps=4, backend="reference")
    x = torch.randn(2, 3, 4, 4)
    sigmas = []
    for t in range(7):
        sigmas.append(m.sigma)
        exp = gx.instance_noise(x, max(0.0, 0.8 * (1 - t / 4)), seed, backend="reference")
        torch.testing.assert_close(m(x, seed=seed), exp, rtol=0, atol=0)
        m.step()
    assert sigmas == pytest.approx([0.8, 0.6, 0.4, 0.2, 0.0, 0.0, 0.0])
    # the schedule is in the state_dict
    m2 = gx.InstanceNoise(0.8, anneal_steps=4)
    m3 = gx.InstanceNoise(0.8, anneal_steps=4)
    m3.step()
    m2.load_state_dict(m3.state_dict())
    assert m2.sigma == pytest.approx(0.6)


def test_instance_noise_gradcheck(seed):
    x = torch.randn(2, 3, 2, 2, dtype=torch.float64, requires_grad=True)
    fn = lambda x: gx.instance_noise(x, 0.7, seed, backend="reference")  # noqa: E731
    assert gradcheck(fn, (x,))
    assert gradgradcheck(fn, (x,))
    out = fn(x)
    v = torch.randn_like(out)
    (g,) = torch.autograd.grad(out, x, v)
    torch.testing.assert_close(g, v)  # identity in x


# =============================================================================================
# backend matrix

SHAPES = [(1, 3, 5, 7), (4, 3, 8, 8), (3, 17)]


@fused
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_matrix_instance_noise(backend, device, dtype, layout, seed):
    need(backend, *NOISE)
    rtol, atol = TOL[dtype]
    for shape in SHAPES:
        for s in (seed, seed + (9 << 32)):
            x0 = make(shape, dtype, device, layout)
            sigma = 0.75
            res = []
            for name in ("reference", backend):
                x = x0.detach().clone().requires_grad_()
                out = gx.instance_noise(x, sigma, s, backend=name)
                assert out.dtype == dtype and out.shape == x.shape
                v = torch.randn(out.shape, device=device, generator=torch.Generator(device).manual_seed(s & 0xFFFF)).to(dtype)
                out.backward(v)
                res.append((out.detach(), x.grad))
            # the stream agrees to 1e-5 absolute (docs/semantics.md#path-length-regularization-stylegan2), times σ
            torch.testing.assert_close(res[1][0], res[0][0], rtol=rtol, atol=atol + sigma * NOISE_ATOL, msg=f"{shape} {s}")
            torch.testing.assert_close(res[1][1], res[0][1], rtol=rtol, atol=atol)


@fused
def test_matrix_noise_is_the_stream(backend, device, seed):
    """``instance_noise(0, σ=1)`` materializes the noise (``noise_axpy``): the docs/semantics.md#path-length-regularization-stylegan2 stream to 1e-5."""
    need(backend, *NOISE)
    for shape, s in (((2, 3, 5, 7), seed), ((1, 1, 33, 31), seed + (3 << 32))):
        got = gx.instance_noise(torch.zeros(shape, device=device), 1.0, s, backend=backend)
        torch.testing.assert_close(got, philox.normal_like(shape, s, device), rtol=0, atol=NOISE_ATOL)


@fused
def test_matrix_gradcheck_and_determinism(backend, device, seed):
    need(backend, *NOISE)
    x = torch.randn(2, 3, 2, 2, dtype=torch.float64, device=device, requires_grad=True)
    fn = lambda x: gx.instance_noise(x, 0.7, seed, backend=backend)  # noqa: E731
    assert gradcheck(fn, (x,), fast_mode=True)
    assert gradgradcheck(fn, (x,), fast_mode=True)
    y = make((3, 4, 9, 11), torch.float16, device, "channels_last")
    a = gx.instance_noise(y, 0.3, seed, backend=backend)
    b = gx.instance_noise(y, 0.3, seed, backend=backend)
    assert torch.equal(a, b)
    m = gx.InstanceNoise(1.0, 10, backend=backend)
    torch.testing.assert_close(
        m(y.float(), seed=seed), gx.instance_noise(y.float(), 1.0, seed, backend="reference"), rtol=1e-5, atol=2e-5
    )


@fused
def test_matrix_expanded_noise_dot(backend, device, seed):
    """The noise-dot of an expanded (stride-0) tensor, and its second-order path: with a 0-d
    upstream gradient ``t``, ``∂/∂t ⟨∂(t·noise_dot(x))/∂x, 1⟩ = Σ y`` (``noise_axpy`` then ``noise_dot``
    of an expanded ones tensor: the path length backward of a ``.sum()``)."""
    need(backend, *NOISE)
    shape = (2, 3, 5, 6)
    y_sum = gx.path_length_noise(shape, seed, device=device, dtype=torch.float64).sum()
    x = torch.ones((), device=device).expand(shape)
    got = gx.path_length_noise_dot(x, seed, backend=backend)
    torch.testing.assert_close(got.double(), y_sum, rtol=1e-5, atol=1e-4)
    xl = torch.randn(shape, device=device, requires_grad=True)
    t = torch.tensor(0.7, device=device, requires_grad=True)
    (gx_,) = torch.autograd.grad(gx.path_length_noise_dot(xl, seed, backend=backend), xl, t, create_graph=True)
    gx_.sum().backward()
    torch.testing.assert_close(t.grad.double(), y_sum, rtol=1e-5, atol=1e-4)
