"""Instance noise (SPEC §5): ``x + σ·n`` with the SPEC §3 Philox stream, the annealed module,
gradients, and the fused-backend matrix."""

from __future__ import annotations

import pytest
import torch
from torch.autograd import gradcheck, gradgradcheck

import ganreg_ext as gx
from ganreg_ext import _dispatch
from ganreg_ext.reference import philox
from helpers import DTYPES, FUSED_BACKENDS, LAYOUTS, TOL, backend_device, make

OPS = ("noise_axpy", "noise_dot")


def need(backend: str, *ops: str) -> None:
    missing = [op for op in ops if backend not in _dispatch._KERNELS.get(op, {})]
    if missing:
        pytest.skip(f"backend {backend!r} has no kernel yet for {missing}")


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
FB = pytest.mark.parametrize("backend", FUSED_BACKENDS) if FUSED_BACKENDS else pytest.mark.skip("no fused backend available")


@FB
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_matrix_instance_noise(backend, dtype, layout, seed):
    need(backend, *OPS)
    dev = backend_device(backend)
    rtol, atol = TOL[dtype]
    for shape in SHAPES:
        lay = layout if len(shape) == 4 or layout != "channels_last" else "contiguous"
        for s in (seed, seed + (9 << 32)):
            x0 = make(shape, dtype, dev, lay)
            sigma = 0.75
            res = []
            for name in ("reference", backend):
                x = x0.detach().clone().requires_grad_()
                out = gx.instance_noise(x, sigma, s, backend=name)
                assert out.dtype == dtype and out.shape == x.shape
                v = torch.randn(out.shape, device=dev, generator=torch.Generator(dev).manual_seed(s & 0xFFFF)).to(dtype)
                out.backward(v)
                res.append((out.detach(), x.grad))
            # the stream agrees to 1e-5 absolute (SPEC §3), times σ
            torch.testing.assert_close(res[1][0], res[0][0], rtol=rtol, atol=atol + sigma * 1e-5, msg=f"{shape} {s}")
            torch.testing.assert_close(res[1][1], res[0][1], rtol=rtol, atol=atol)


@FB
def test_matrix_gradcheck_and_determinism(backend, seed):
    need(backend, *OPS)
    dev = backend_device(backend)
    x = torch.randn(2, 3, 2, 2, dtype=torch.float64, device=dev, requires_grad=True)
    fn = lambda x: gx.instance_noise(x, 0.7, seed, backend=backend)  # noqa: E731
    assert gradcheck(fn, (x,), fast_mode=True)
    assert gradgradcheck(fn, (x,), fast_mode=True)
    y = make((3, 4, 9, 11), torch.float16, dev, "channels_last")
    a = gx.instance_noise(y, 0.3, seed, backend=backend)
    b = gx.instance_noise(y, 0.3, seed, backend=backend)
    assert torch.equal(a, b)
    m = gx.InstanceNoise(1.0, 10, backend=backend)
    torch.testing.assert_close(
        m(y.float(), seed=seed), gx.instance_noise(y.float(), 1.0, seed, backend="reference"), rtol=1e-5, atol=2e-5
    )


@FB
def test_matrix_expanded_grad_outputs(backend, seed):
    """The noise-dot of an expanded (stride-0) tensor: path length backward of a ``.sum()``."""
    need(backend, *OPS)
    dev = backend_device(backend)
    from ganreg_ext.ops import noise as ops

    x = torch.ones((), device=dev).expand(2, 3, 5, 6)
    got = ops.noise_dot(x, seed, 0.5, backend)
    exp = 0.5 * gx.path_length_noise(x.shape, seed, device=dev, dtype=torch.float64).sum() * (30**0.5)
    torch.testing.assert_close(got.double(), exp, rtol=1e-5, atol=1e-4)
    alpha = torch.tensor(0.7, device=dev, requires_grad=True)
    y = ops.noise_axpy(None, alpha, seed, 1.0, [2, 3, 5, 6], torch.float32, backend)
    y.sum().backward()  # d alpha = noise_dot(expanded ones)
    torch.testing.assert_close(
        alpha.grad.double(),
        gx.path_length_noise(x.shape, seed, device=dev, dtype=torch.float64).sum() * (30**0.5),
        rtol=1e-5,
        atol=1e-4,
    )
