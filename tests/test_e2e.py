"""End to end: the penalties inside real training steps (small D and G), every backend against
hand-written eager autograd (the NVlabs recipes)."""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F

import ganreg_ext as gx
from helpers import DA, GN, NOISE, every_backend, need


def _grads(module):
    return [p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in module.parameters()]


def _assert_grads(got, exp, rtol, atol, what):
    assert any(e.abs().sum() > 0 for e in exp), "vacuous: no gradient reached the parameters"
    for k, (a, b) in enumerate(zip(got, exp)):
        torch.testing.assert_close(a, b, rtol=rtol, atol=atol, msg=f"{what}: parameter {k}")


class D(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.c2 = torch.nn.Conv2d(8, 8, 3, stride=2, padding=1)
        self.fc = torch.nn.Linear(8 * 4 * 4, 1)

    def forward(self, x):
        h = F.leaky_relu(self.c1(x), 0.2)
        h = F.softplus(self.c2(h))
        return self.fc(h.flatten(1))


class G(torch.nn.Module):
    """A tiny StyleGAN-like G: mapping MLP → ws [B, num_ws, w_dim]; synthesis modulates a learned
    constant by per-layer styles of ws, with convolutions and an upsampling, then toRGB."""

    def __init__(self, z_dim=8, w_dim=6, num_ws=3, ch=4):
        super().__init__()
        self.num_ws = num_ws
        self.mapping = torch.nn.Sequential(torch.nn.Linear(z_dim, 16), torch.nn.LeakyReLU(0.2), torch.nn.Linear(16, w_dim))
        self.const = torch.nn.Parameter(torch.randn(ch, 4, 4))
        self.affine = torch.nn.ModuleList([torch.nn.Linear(w_dim, ch) for _ in range(num_ws)])
        self.convs = torch.nn.ModuleList([torch.nn.Conv2d(ch, ch, 3, padding=1) for _ in range(num_ws - 1)])
        self.to_rgb = torch.nn.Conv2d(ch, 3, 1)

    def forward(self, z):
        w = self.mapping(z)
        ws = w.unsqueeze(1).repeat([1, self.num_ws, 1])
        return self.synthesis(ws), ws

    def synthesis(self, ws):
        x = self.const.unsqueeze(0).expand(ws.shape[0], -1, -1, -1)
        for k, conv in enumerate(self.convs):
            x = F.leaky_relu(conv(x * (1 + self.affine[k](ws[:, k]))[:, :, None, None]), 0.2)
            if k == 0:
                x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        return self.to_rgb(x * (1 + self.affine[-1](ws[:, -1]))[:, :, None, None])


@every_backend
def test_r1_through_conv_d(backend, device, seed):
    """NVlabs Dr1: ``r1_grads = autograd.grad(real_logits.sum(), real_img, create_graph=True)``;
    ``loss_Dr1 = r1_grads.square().sum([1,2,3]) * (gamma/2)``; ``(real_logits * 0 + loss_Dr1).mean().backward()``."""
    need(backend, *GN)
    d = D().to(device)
    d2 = copy.deepcopy(d)
    gamma = 0.8
    x = torch.randn(3, 3, 8, 8, device=device)
    # eager
    real_img = x.detach().requires_grad_(True)
    real_logits = d(real_img)
    (r1_grads,) = torch.autograd.grad(outputs=[real_logits.sum()], inputs=[real_img], create_graph=True, only_inputs=True)
    loss_Dr1 = r1_grads.square().sum([1, 2, 3]) * (gamma / 2)
    (real_logits * 0 + loss_Dr1).mean().backward()
    # ganreg_ext
    xi = x.detach().requires_grad_(True)
    logits = d2(xi)
    pen = gx.r1_penalty(gx.input_gradients(logits, xi), gamma, backend=backend)
    (logits * 0 + pen).mean().backward()
    _assert_grads(_grads(d2), _grads(d), 1e-4, 1e-6, "R1")


@every_backend
def test_wgan_gp_through_conv_d(backend, device, seed):
    need(backend, *GN)
    d = D().to(device)
    d2 = copy.deepcopy(d)
    real, fake = torch.randn(4, 3, 8, 8, device=device), torch.randn(4, 3, 8, 8, device=device)
    alpha = torch.rand(4, device=device)
    xi = (alpha.view(-1, 1, 1, 1) * real + (1 - alpha.view(-1, 1, 1, 1)) * fake).requires_grad_(True)
    out = d(xi)
    (g,) = torch.autograd.grad(out, xi, torch.ones_like(out), create_graph=True)
    gp = ((g.flatten(1).norm(2, dim=1) - 1) ** 2).mean() * 10
    (out.mean() + gp).backward()
    xi2 = gx.wgan_interpolate(real, fake, alpha=alpha).requires_grad_(True)
    out2 = d2(xi2)
    (out2.mean() + gx.gradient_penalty(gx.input_gradients(out2, xi2), backend=backend)).backward()
    _assert_grads(_grads(d2), _grads(d), 1e-4, 1e-6, "WGAN-GP")


@every_backend
def test_path_length_through_tiny_g(backend, device, seed):
    """NVlabs Gpl over 3 steps of SGD with the same noise: G parameter gradients and the pl_mean trajectory."""
    need(backend, *GN, *NOISE)
    g_eager = G().to(device)
    g_ours = copy.deepcopy(g_eager)
    opt_e = torch.optim.SGD(g_eager.parameters(), lr=0.05)
    opt_o = torch.optim.SGD(g_ours.parameters(), lr=0.05)
    decay, weight = 0.3, 2.0
    pl_mean = torch.zeros((), device=device)
    reg = gx.PathLengthRegularizer(decay=decay, weight=weight, backend=backend).to(device)
    batch_size = 4 // 2  # pl_batch_shrink = 2
    for step in range(3):
        z = torch.randn(batch_size, 8, device=device)
        noise_seed = seed * 7 + step
        # --- NVlabs loss.py Gpl, eager (pl_noise from the package's stream instead of randn_like)
        opt_e.zero_grad(set_to_none=True)
        gen_img, gen_ws = g_eager(z)
        pl_noise = gx.path_length_noise(gen_img.shape, noise_seed, device=device)
        (pl_grads,) = torch.autograd.grad(
            outputs=[(gen_img * pl_noise).sum()], inputs=[gen_ws], create_graph=True, only_inputs=True
        )
        pl_lengths = pl_grads.square().sum(2).mean(1).sqrt()
        new_mean = pl_mean.lerp(pl_lengths.mean(), decay)
        pl_mean = new_mean.detach().clone()
        pl_penalty = (pl_lengths - new_mean).square()
        loss_Gpl = pl_penalty * weight
        (gen_img[:, 0, 0, 0] * 0 + loss_Gpl).mean().backward()
        # --- ganreg_ext
        opt_o.zero_grad(set_to_none=True)
        img, ws = g_ours(z)
        loss = reg(img, ws, seed=noise_seed)
        (img[:, 0, 0, 0] * 0 + loss).mean().backward()
        torch.testing.assert_close(reg.pl_mean, pl_mean, rtol=1e-5, atol=1e-6, msg=f"pl_mean at step {step}")
        torch.testing.assert_close(loss, loss_Gpl.mean().detach(), rtol=1e-4, atol=1e-6)
        _assert_grads(_grads(g_ours), _grads(g_eager), 2e-4, 1e-6, f"Gpl step {step}")
        opt_e.step()
        opt_o.step()
    assert reg.pl_mean > 0


@every_backend
def test_diffaugment_g_step(backend, device, seed):
    """D(DiffAugment(G(z))): the generator's gradient passes through the augmentation (reference
    backend against the original code transcribed in test_augment; fused against the reference)."""
    need(backend, *DA)
    from test_augment import DiffAugment

    g1 = G().to(device)
    d = D().to(device)
    g2 = copy.deepcopy(g1)
    z = torch.randn(3, 8, device=device)
    s = seed + 1
    torch.manual_seed(s)
    if device == "cpu":
        img, _ = g1(z)
        aug = DiffAugment(img, "color,translation,cutout")
    else:  # the original samples on the tensor's device; compare with the reference instead
        params = gx.sample_diffaug_params(3, 8, 8, device=device)
        img, _ = g1(z)
        aug = gx.diff_augment(img, params=params, backend="reference")
    gx.ns_g_loss(d(aug)).backward()
    torch.manual_seed(s)
    params = gx.sample_diffaug_params(3, 8, 8, device=device)
    img2, _ = g2(z)
    gx.ns_g_loss(d(gx.diff_augment(img2, params=params, backend=backend))).backward()
    _assert_grads(_grads(g2), _grads(g1), 1e-4, 1e-6, "DiffAugment G step")
