"""Consistency regularization (docs/semantics.md#consistency-regularization-cr-bcr-zcr): CR, bCR, zCR against the StudioGAN transcriptions,
gradients, and the fused-backend matrix."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.autograd import gradcheck, gradgradcheck

import ganreg_ext as gx
from helpers import CONS, DTYPES, LAYOUTS, acc_dtype, assert_close, assert_sum_close, fused, leaf, make, need

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


def _sum_terms(fn_weight, a, b):
    """Σ|terms| of a loss ``weight·mean((a − b)²)`` (positive terms: the loss itself, in float64)."""
    return abs(fn_weight) * (a.detach().double() - b.detach().double()).square().mean()


@fused
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_matrix_losses(backend, device, dtype, layout, seed):
    need(backend, *CONS)
    fns = {  # (loss, its weight)
        "cr": (lambda a, b, n: gx.consistency_loss(a, b, 1.5, backend=n), 1.5),
        "zcr_d": (lambda a, b, n: gx.zcr_discriminator_loss(a, b, backend=n), 20.0),
        "zcr_g": (lambda a, b, n: gx.zcr_generator_loss(a, b, backend=n), 0.5),
    }
    for shape in SHAPES + ([(1, 1), (7, 1)] if layout == "contiguous" else []):
        a0, b0 = (
            make(shape, dtype, device, layout),
            make(shape, dtype, device, "strided" if layout == "contiguous" else "contiguous"),
        )
        for cname, (fn, weight) in fns.items():
            res = []
            for name in ("reference", backend):
                a, b = leaf(a0), leaf(b0)
                out = fn(a, b, name)
                assert out.dim() == 0 and out.dtype == acc_dtype(dtype)
                (out * 1.7).backward()
                res.append((out.detach(), a.grad, b.grad))
            assert_sum_close(res[1][0], res[0][0], _sum_terms(weight, a0, b0))
            for k in (1, 2):
                assert res[1][k].dtype == dtype and res[1][k].shape == shape
                assert_close(res[1][k], res[0][k], msg=f"{cname} backward {shape}")
        # bCR: two pairs
        c0, d0 = make((shape[0], 1), dtype, device), make((shape[0], 1), dtype, device)
        res = []
        for name in ("reference", backend):
            xs = [leaf(t) for t in (a0, b0, c0, d0)]
            out = gx.bcr_loss(*xs, 2.0, 0.5, backend=name)
            out.backward()
            res.append([out.detach()] + [x.grad for x in xs])
        assert_sum_close(res[1][0], res[0][0], _sum_terms(2.0, a0, b0) + _sum_terms(0.5, c0, d0))
        for k in range(1, 5):
            assert_close(res[1][k], res[0][k], msg=f"bcr[{k}] {shape}")


@fused
@pytest.mark.parametrize("case", list(_cases("reference")))
def test_matrix_gradcheck(backend, device, case, seed):
    need(backend, *CONS)
    fn, shapes = _cases(backend)[case]
    inputs = [torch.randn(*s, dtype=torch.float64, device=device, requires_grad=True) for s in shapes]
    # fast_mode: one random projection instead of a full Jacobian (the Triton interpreter is slow)
    assert gradcheck(fn, inputs, fast_mode=True)
    assert gradgradcheck(fn, inputs, fast_mode=True)


@fused
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_matrix_deterministic(backend, device, dtype, seed):
    need(backend, *CONS)
    a0, b0 = make((3, 3, 16, 17), dtype, device, "channels_last"), make((3, 3, 16, 17), dtype, device)
    res = []
    for _ in range(2):
        a, b = leaf(a0), leaf(b0)
        out = gx.zcr_generator_loss(a, b, backend=backend)
        out.backward()
        res.append((out, a.grad, b.grad))
    for x, y in zip(*res):
        assert torch.equal(x, y)


@fused
def test_matrix_expanded_grad_outputs(backend, device, seed):
    need(backend, *CONS)
    a0, b0 = make((2, 3, 5, 6), torch.float32, device), make((2, 3, 5, 6), torch.float32, device)
    res = []
    for name in ("reference", backend):
        a, b = leaf(a0), leaf(b0)
        ga, gb = torch.autograd.grad(gx.consistency_loss(a, b, backend=name), [a, b], create_graph=True)
        (ga.sum() + 2 * gb.sum() + (ga * ga).sum()).backward()  # expanded and dense second-order gouts
        res.append((ga.detach(), gb.detach(), a.grad, b.grad))
    for k in range(4):
        assert_close(res[1][k], res[0][k], msg=f"output {k}")
