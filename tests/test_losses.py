"""Adversarial losses, LeCam and lazy regularization (docs/semantics.md#adversarial-losses-lecam-and-lazy-regularization) against transcriptions of their
anchors (StyleGAN2 / StudioGAN / google/lecam-gan / NVlabs training_loop.py)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.autograd import gradcheck, gradgradcheck

import ganreg_ext as gx


def _logits(B=6, dtype=torch.float64):
    return (torch.randn(B, 1, dtype=dtype) * 2).requires_grad_(), (torch.randn(B, 1, dtype=dtype) * 2).requires_grad_()


def _same(ours, anchor, inputs):
    torch.testing.assert_close(ours, anchor)
    for a, b in zip(torch.autograd.grad(ours, inputs, retain_graph=True), torch.autograd.grad(anchor, inputs, retain_graph=True)):
        torch.testing.assert_close(a, b)


def test_lsgan(seed):
    real, fake = _logits()
    # StudioGAN d_ls / g_ls (a=0, b=1, c=1)
    d_ls = (0.5 * (real - torch.ones_like(real)) ** 2 + 0.5 * fake**2).mean()
    _same(gx.lsgan_d_loss(real, fake), d_ls, (real, fake))
    _same(gx.lsgan_g_loss(fake), (0.5 * (fake - torch.ones_like(fake)) ** 2).mean(), (fake,))
    a, b, c = [float(v) for v in torch.randn(3)]
    _same(gx.lsgan_d_loss(real, fake, a, b), 0.5 * ((real - b) ** 2).mean() + 0.5 * ((fake - a) ** 2).mean(), (real, fake))
    _same(gx.lsgan_g_loss(fake, c), 0.5 * ((fake - c) ** 2).mean(), (fake,))
    # Pearson χ² coding a=−1, b=1, c=0
    _same(gx.lsgan_d_loss(real, fake, -1.0, 1.0), 0.5 * ((real - 1) ** 2).mean() + 0.5 * ((fake + 1) ** 2).mean(), (real, fake))


def test_non_saturating(seed):
    """NVlabs loss.py: loss_Gmain = softplus(−gen_logits); loss_Dgen = softplus(gen_logits);
    loss_Dreal = softplus(−real_logits)."""
    real, fake = _logits()
    _same(gx.ns_g_loss(fake), F.softplus(-fake).mean(), (fake,))
    _same(gx.ns_d_loss(real, fake), F.softplus(fake).mean() + F.softplus(-real).mean(), (real, fake))
    # equals the BCE-with-logits form of the original GAN
    bce = F.binary_cross_entropy_with_logits(real, torch.ones_like(real)) + F.binary_cross_entropy_with_logits(
        fake, torch.zeros_like(fake)
    )
    torch.testing.assert_close(gx.ns_d_loss(real, fake), bce)


def test_hinge_and_wgan(seed):
    real, fake = _logits()
    # StudioGAN d_hinge / g_hinge / d_wasserstein / g_wasserstein
    _same(gx.hinge_d_loss(real, fake), torch.mean(F.relu(1.0 - real)) + torch.mean(F.relu(1.0 + fake)), (real, fake))
    _same(gx.hinge_g_loss(fake), -torch.mean(fake), (fake,))
    _same(gx.wgan_d_loss(real, fake), torch.mean(fake - real), (real, fake))
    _same(gx.wgan_g_loss(fake), -torch.mean(fake), (fake,))


class EmaLosses:
    """google/lecam-gan ``ema_losses`` (the D_real / D_fake part), started at 0 like the buffers."""

    def __init__(self, init=0.0, decay=0.99, start_itr=0):
        self.decay, self.start_itr = decay, start_itr
        self.D_real = init
        self.D_fake = init

    def update(self, cur, mode, itr):
        decay = 0.0 if itr < self.start_itr else self.decay
        if mode == "D_real":
            self.D_real = self.D_real * decay + cur * (1 - decay)
        elif mode == "D_fake":
            self.D_fake = self.D_fake * decay + cur * (1 - decay)


def lecam_reg(real_pred, fake_pred, ema):
    return torch.mean(F.relu(real_pred - ema.D_fake).pow(2)) + torch.mean(F.relu(ema.D_real - fake_pred).pow(2))


@pytest.mark.parametrize("one_sided", [True, False])
def test_lecam_matches_official(seed, one_sided):
    decay, weight = 0.9, 0.3
    reg = gx.LeCamRegularizer(decay=decay, weight=weight, one_sided=one_sided)
    ema = EmaLosses(decay=decay)
    for itr in range(4):
        real = (torch.randn(8, 1) + 1).requires_grad_()
        fake = (torch.randn(8, 1) - 1).requires_grad_()
        ema.update(torch.mean(real).item(), "D_real", itr)
        ema.update(torch.mean(fake).item(), "D_fake", itr)
        if one_sided:
            exp = weight * lecam_reg(real, fake, ema)
        else:
            exp = weight * (torch.mean((real - ema.D_fake) ** 2) + torch.mean((ema.D_real - fake) ** 2))
        out = reg(real, fake)
        torch.testing.assert_close(reg.ema_real.item(), ema.D_real, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(reg.ema_fake.item(), ema.D_fake, rtol=1e-5, atol=1e-6)
        _same(out, exp, (real, fake))
    assert reg.ema_real.dim() == 0 and not reg.ema_real.requires_grad
    assert set(reg.state_dict()) == {"ema_real", "ema_fake"}


def test_lecam_one_sided_differs(seed):
    """The relu matters: with D(x) < α_F the one-sided real term is 0, the two-sided one is not."""
    reg1 = gx.LeCamRegularizer(decay=0.0, one_sided=True)
    reg2 = gx.LeCamRegularizer(decay=0.0, one_sided=False)
    real, fake = torch.full((4, 1), -1.0), torch.full((4, 1), 1.0)
    assert reg1(real, fake).item() == 0.0
    assert reg2(real, fake).item() > 0.0


def test_lecam_gradcheck(seed):
    real, fake = _logits(4)

    def fn(r, f):
        # decay=1 keeps the preset anchors: the EMA update is detached by design, so a numerical
        # derivative must not see it move
        reg = gx.LeCamRegularizer(decay=1.0, one_sided=False)
        reg.ema_real.fill_(0.3)
        reg.ema_fake.fill_(-0.2)
        return reg(r, f)

    assert gradcheck(fn, (real, fake))
    assert gradgradcheck(fn, (real, fake))


@pytest.mark.parametrize("fn", ["lsgan_d_loss", "ns_d_loss", "hinge_d_loss", "wgan_d_loss"])
def test_d_losses_gradcheck(seed, fn):
    real, fake = _logits(4)
    real = (real.detach() + 0.05).requires_grad_()  # keep off hinge kinks
    f = getattr(gx, fn)
    assert gradcheck(f, (real, fake))
    assert gradgradcheck(f, (real, fake))


@pytest.mark.parametrize("interval", [1, 4, 16])
def test_lazy_regularization_matches_nvlabs(interval):
    """NVlabs training_loop.py: mb_ratio = reg_interval / (reg_interval + 1); lr *= mb_ratio;
    betas = [beta ** mb_ratio for beta in betas]."""
    lr, betas = 0.0025, (0.1, 0.99)
    mb_ratio = interval / (interval + 1)
    exp_lr, exp_betas = lr * mb_ratio, [beta**mb_ratio for beta in betas]
    got_lr, got_betas = gx.lazy_regularization(interval, lr, betas)
    assert got_lr == pytest.approx(exp_lr, rel=1e-15)
    assert list(got_betas) == pytest.approx(exp_betas, rel=1e-15)
    assert gx.lazy_regularization(interval, lr)[1] == pytest.approx((0.0, 0.99**mb_ratio))
