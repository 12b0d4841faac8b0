"""Consistency regularization (SPEC §4): CR, bCR, zCR against the StudioGAN transcriptions,
gradients, and the fused-backend matrix."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.autograd import gradcheck, gradgradcheck

import ganreg_ext as gx
from ganreg_ext import _dispatch
from helpers import DTYPES, FUSED_BACKENDS, LAYOUTS, assert_close, backend_device, make

OPS = ("sq_diff_sum", "diff_scale")


def need(backend: str, *ops: str) -> None:
    missing = [op for op in ops if backend not in _dispatch._KERNELS.get(op, {})]
    if missing:
        pytest.skip(f"backend {backend!r} has no kernel yet for {missing}")


l2_loss = torch.nn.MSELoss()  # StudioGAN's self.l2_loss


def _pair(shape, dtype=torch.float64):
    a = torch.randn(shape, dtype=dtype, requires_grad=True)
    b = (a.detach() + 0.3 * torch.randn(shape, dtype=dtype)).requires_grad_()
    return a, b


def _check_same(ours, anchor, inputs):
    torch.testing.assert_close(ours, anchor)
    ga = torch.autograd.grad(ours, inputs, retain_graph=True)
    gb = torch.autograd.grad(anchor, inputs, retain_graph=True)
    for x, y in zip(ga, gb):
        torch.testing.assert_close(x, y)
        assert x.abs().sum() > 0  # the gradient reaches both arguments (neither detached)


@pytest.mark.parametrize("shape", [(6, 1), (3, 10), (2, 3, 5, 7)])
def test_consistency_loss_matches_studiogan(seed, shape):
    out, out_aug = _pair(shape)
    w = float(torch.empty(()).uniform_(0.5, 20))
    _check_same(gx.consistency_loss(out, out_aug, w, backend="reference"), w * l2_loss(out, out_aug), (out, out_aug))
    _check_same(gx.consistency_loss(out, out_aug, backend="reference"), F.mse_loss(out, out_aug), (out, out_aug))


def test_bcr_matches_studiogan(seed):
    """StudioGAN bCR: ``real_lambda·l2(D(x), D(T(x))) + fake_lambda·l2(D(G(z)), D(T(G(z))))``."""
    r, ra = _pair((5, 1))
    f, fa = _pair((5, 1))
    anchor = 10.0 * l2_loss(r, ra) + 10.0 * l2_loss(f, fa)
    _check_same(gx.bcr_loss(r, ra, f, fa, backend="reference"), anchor, (r, ra, f, fa))
    anchor2 = 3.0 * l2_loss(r, ra) + 0.5 * l2_loss(f, fa)
    _check_same(gx.bcr_loss(r, ra, f, fa, lambda_real=3.0, lambda_fake=0.5, backend="reference"), anchor2, (r, ra, f, fa))


def test_zcr_matches_studiogan(seed):
    """StudioGAN zCR: D ``d_lambda·l2(D(G(z)), D(G(z+ε)))`` (20); G ``g_lambda·(−l2(G(z), G(z+ε)))`` (0.5)."""
    d, de = _pair((4, 1))
    _check_same(gx.zcr_discriminator_loss(d, de, backend="reference"), 20.0 * l2_loss(d, de), (d, de))
    img, img_e = _pair((2, 3, 4, 4))
    _check_same(gx.zcr_generator_loss(img, img_e, backend="reference"), 0.5 * (-1 * l2_loss(img, img_e)), (img, img_e))
    _check_same(gx.zcr_generator_loss(img, img_e, 2.0, backend="reference"), -2.0 * l2_loss(img, img_e), (img, img_e))


def test_perturb_latent(seed):
    z = torch.randn(6, 16)
    s = seed + 3
    torch.manual_seed(s)
    exp = z + 0.05 * torch.randn(z.shape)
    torch.manual_seed(s)
    torch.testing.assert_close(gx.perturb_latent(z), exp, rtol=0, atol=0)
    gen = torch.Generator().manual_seed(s)
    exp2 = z + 0.3 * torch.randn(z.shape, generator=torch.Generator().manual_seed(s))
    torch.testing.assert_close(gx.perturb_latent(z, 0.3, generator=gen), exp2, rtol=0, atol=0)
    big = gx.perturb_latent(torch.zeros(4000, 64), 0.05)
    assert abs(big.std().item() - 0.05) < 1e-3


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_low_precision_accumulates_in_float32(seed, dtype):
    a, b = torch.randn(4, 3, 8, 8).to(dtype), torch.randn(4, 3, 8, 8).to(dtype)
    out = gx.consistency_loss(a, b, backend="reference")
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, F.mse_loss(a.float(), b.float()))


def _cases(backend):
    kw = dict(backend=backend)
    return {
        "cr": (lambda a, b: gx.consistency_loss(a, b, 1.5, **kw), [(3, 2), (3, 2)]),
        "bcr": (lambda a, b, c, d: gx.bcr_loss(a, b, c, d, 2.0, 3.0, **kw), [(2, 1), (2, 1), (2, 3), (2, 3)]),
        "zcr_d": (lambda a, b: gx.zcr_discriminator_loss(a, b, **kw), [(4,), (4,)]),
        "zcr_g": (lambda a, b: gx.zcr_generator_loss(a, b, **kw), [(1, 2, 2, 2), (1, 2, 2, 2)]),
    }


@pytest.mark.parametrize("case", list(_cases("reference")))
def test_reference_gradcheck(case, seed):
    fn, shapes = _cases("reference")[case]
    inputs = [torch.randn(*s, dtype=torch.float64, requires_grad=True) for s in shapes]
    assert gradcheck(fn, inputs)
    assert gradgradcheck(fn, inputs)


# =============================================================================================
# backend matrix

SHAPES = [(1, 3, 5, 7), (3, 2, 9, 13)]  # images; D outputs [B, 1] are added for the contiguous layout
FB = pytest.mark.parametrize("backend", FUSED_BACKENDS) if FUSED_BACKENDS else pytest.mark.skip("no fused backend available")


def _restride(t):
    out = torch.empty_strided(t.shape, t.stride(), dtype=t.dtype, device=t.device)
    out.copy_(t.detach())
    return out.requires_grad_(True)


@FB
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_matrix_losses(backend, dtype, layout, seed):
    need(backend, *OPS)
    dev = backend_device(backend)
    fns = {
        "cr": lambda a, b, n: gx.consistency_loss(a, b, 1.5, backend=n),
        "zcr_d": lambda a, b, n: gx.zcr_discriminator_loss(a, b, backend=n),
        "zcr_g": lambda a, b, n: gx.zcr_generator_loss(a, b, backend=n),
    }
    for shape in SHAPES + ([(1, 1), (7, 1)] if layout == "contiguous" else []):
        lay = layout if len(shape) == 4 or layout != "channels_last" else "contiguous"
        a0, b0 = make(shape, dtype, dev, lay), make(shape, dtype, dev, "strided" if lay == "contiguous" else "contiguous")
        for cname, fn in fns.items():
            res = []
            for name in ("reference", backend):
                a, b = _restride(a0), _restride(b0)
                out = fn(a, b, name)
                assert out.dim() == 0 and out.dtype == _dispatch.acc_dtype(dtype)
                (out * 1.7).backward()
                res.append((out.detach(), a.grad, b.grad))
            assert_close(res[1][0], res[0][0], dtype, msg=f"{cname} forward {shape}")
            for k in (1, 2):
                assert res[1][k].dtype == dtype and res[1][k].shape == shape
                assert_close(res[1][k], res[0][k], dtype, msg=f"{cname} backward {shape}")
        # bCR: two pairs
        c0, d0 = make((shape[0], 1), dtype, dev), make((shape[0], 1), dtype, dev)
        res = []
        for name in ("reference", backend):
            xs = [_restride(t) for t in (a0, b0, c0, d0)]
            out = gx.bcr_loss(*xs, 2.0, 0.5, backend=name)
            out.backward()
            res.append([out.detach()] + [x.grad for x in xs])
        for k in range(5):
            assert_close(res[1][k], res[0][k], dtype, msg=f"bcr[{k}] {shape}")


@FB
@pytest.mark.parametrize("case", list(_cases("reference")))
def test_matrix_gradcheck(backend, case, seed):
    need(backend, *OPS)
    fn, shapes = _cases(backend)[case]
    inputs = [torch.randn(*s, dtype=torch.float64, device=backend_device(backend), requires_grad=True) for s in shapes]
    # fast_mode: one random projection instead of a full Jacobian (the Triton interpreter is slow)
    assert gradcheck(fn, inputs, fast_mode=True)
    assert gradgradcheck(fn, inputs, fast_mode=True)


@FB
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_matrix_deterministic(backend, dtype, seed):
    need(backend, *OPS)
    dev = backend_device(backend)
    a0, b0 = make((3, 3, 16, 17), dtype, dev, "channels_last"), make((3, 3, 16, 17), dtype, dev)
    res = []
    for _ in range(2):
        a, b = _restride(a0), _restride(b0)
        out = gx.zcr_generator_loss(a, b, backend=backend)
        out.backward()
        res.append((out, a.grad, b.grad))
    for x, y in zip(*res):
        assert torch.equal(x, y)


@FB
def test_matrix_expanded_grad_outputs(backend, seed):
    need(backend, *OPS)
    dev = backend_device(backend)
    a0, b0 = make((2, 3, 5, 6), torch.float32, dev), make((2, 3, 5, 6), torch.float32, dev)
    res = []
    for name in ("reference", backend):
        a, b = _restride(a0), _restride(b0)
        ga, gb = torch.autograd.grad(gx.consistency_loss(a, b, backend=name), [a, b], create_graph=True)
        (ga.sum() + 2 * gb.sum() + (ga * ga).sum()).backward()  # expanded and dense second-order gouts
        res.append((ga.detach(), gb.detach(), a.grad, b.grad))
    for k in range(4):
        torch.testing.assert_close(res[1][k], res[0][k], rtol=2e-5, atol=1e-6, msg=f"output {k}")
