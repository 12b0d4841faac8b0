"""Gradient-norm penalties (docs/semantics.md#gradient-norm-penalties-r1-r2-wgan-gp-roth-et-al-dragan-grad_sqnorm): the reference against independent transcriptions of the
anchors, gradcheck/gradgradcheck, and the fused-backend matrix (fused vs reference)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.autograd import gradcheck, gradgradcheck

import ganreg_ext as gx
from helpers import (
    DTYPES,
    GN,
    LAYOUTS,
    acc_dtype,
    assert_close,
    assert_ref64,
    assert_sum_close,
    every_backend,
    fused,
    leaf,
    make,
    need,
)

F64 = torch.float64


class TinyD(torch.nn.Module):
    """A small conv discriminator with an optional second (vector) input."""

    def __init__(self, c=3, extra=0):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(c, 4, 3, padding=1)
        self.conv2 = torch.nn.Conv2d(4, 4, 3, stride=2, padding=1)
        self.fc = torch.nn.Linear(4 + extra, 1)

    def forward(self, x, y=None):
        h = F.leaky_relu(self.conv1(x), 0.2)
        h = F.softplus(self.conv2(h)).mean([2, 3])  # smooth: second derivatives are non-trivial
        if y is not None:
            h = torch.cat([h, torch.tanh(y)], 1)
        return self.fc(h)


def _d_grads(params):
    return [p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in params]


# =============================================================================================
# reference vs the anchors


@pytest.mark.parametrize("gamma", [10.0, 0.37])
def test_r1_matches_nvlabs(seed, gamma):
    """NVlabs stylegan2-ada-pytorch loss.py: ``r1_grads.square().sum([1,2,3]) * (r1_gamma / 2)``."""
    D = TinyD()
    x = torch.randn(5, 3, 8, 8, requires_grad=True)
    # anchor
    (r1_grads,) = torch.autograd.grad(outputs=[D(x).sum()], inputs=[x], create_graph=True, only_inputs=True)
    r1_penalty = r1_grads.square().sum([1, 2, 3])
    loss_Dr1 = r1_penalty * (gamma / 2)
    loss_Dr1.mean().backward()
    exp_grads = _d_grads(D.parameters())
    D.zero_grad()
    # ours
    g = gx.input_gradients(D(x), x)
    per = gx.r1_penalty(g, gamma, reduction="none", backend="reference")
    torch.testing.assert_close(per, loss_Dr1.detach(), rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(gx.r1_penalty(g, gamma, reduction="sum", backend="reference"), loss_Dr1.sum().detach())
    torch.testing.assert_close(gx.r2_penalty(g, gamma, reduction="none", backend="reference"), loss_Dr1.detach())
    gx.r1_penalty(g, gamma, backend="reference").backward()
    for a, b in zip(_d_grads(D.parameters()), exp_grads):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)
    assert any(p.abs().sum() > 0 for p in exp_grads)
    # r1_loss = both steps in one call
    D.zero_grad()
    gx.r1_loss(D(x), x, gamma, backend="reference").backward()
    for a, b in zip(_d_grads(D.parameters()), exp_grads):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


def test_r1_default_gamma_is_10(seed):
    g = torch.randn(3, 2, 4, 4)
    torch.testing.assert_close(gx.r1_penalty(g, backend="reference"), (g.square().sum([1, 2, 3]) * 5).mean())
    torch.testing.assert_close(gx.r2_penalty(g, backend="reference"), (g.square().sum([1, 2, 3]) * 5).mean())


@pytest.mark.parametrize("one_sided", [False, True])
def test_wgan_gp_matches_gulrajani(seed, one_sided):
    """WGAN-GP (Gulrajani 2017, reference PyTorch port): per-sample α, per-sample norm,
    ``((gradients.norm(2, dim=1) - 1) ** 2).mean() * LAMBDA``; one-sided: relu(‖g‖ − 1)²."""
    B = 6
    # float64: the anchor and ours sum the same terms in another order; in float32 elements that cancel
    # differ by ~eps·(their largest terms), far above any bound relative to the result itself
    D = TinyD().double()
    real, fake = torch.randn(B, 3, 8, 8, dtype=F64), torch.randn(B, 3, 8, 8, dtype=F64)
    s = seed + 1
    # anchor
    torch.manual_seed(s)
    alpha = torch.rand(B, 1, 1, 1, dtype=F64)
    interpolates = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    # scale D so that half the gradient norms lie above the center 1 and half below (TinyD's own are
    # ~0.03: the one-sided clamp would zero every sample and the test would compare zeros)
    norms0 = torch.autograd.grad(D(interpolates).sum(), interpolates)[0].flatten(1).norm(dim=1)
    with torch.no_grad():  # D's last layer is linear: scaling it scales every input gradient
        k = 1 / norms0.sort().values[B // 2 - 1 : B // 2 + 1].mean()
        D.fc.weight.mul_(k)
        D.fc.bias.mul_(k)
    disc = D(interpolates)
    gradients = torch.autograd.grad(
        outputs=disc, inputs=interpolates, grad_outputs=torch.ones(disc.size(), dtype=F64), create_graph=True, retain_graph=True
    )[0]
    gradients = gradients.view(B, -1)
    norms = gradients.norm(2, dim=1).detach()
    assert (norms > 1).any() and (norms < 1).any(), norms  # the clamp is active in some samples, not in others
    dev = gradients.norm(2, dim=1) - 1
    if one_sided:
        dev = F.relu(dev)
    gp = (dev**2).mean() * 10
    gp.backward()
    exp_grads = _d_grads(D.parameters())
    D.zero_grad()
    # ours
    torch.manual_seed(s)
    xi = gx.wgan_interpolate(real, fake).requires_grad_(True)
    torch.testing.assert_close(xi, interpolates.detach(), rtol=0, atol=0)
    ours = gx.gradient_penalty(gx.input_gradients(D(xi), xi), one_sided=one_sided, backend="reference")
    torch.testing.assert_close(ours, gp.detach(), rtol=1e-12, atol=1e-14)
    ours.backward()
    for a, b in zip(_d_grads(D.parameters()), exp_grads):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12 * float(b.abs().max()))


def test_gradient_penalty_is_per_sample_not_global(seed):
    g = torch.randn(4, 3, 5, 5) * torch.tensor([0.1, 1.0, 3.0, 0.5]).view(4, 1, 1, 1)
    norms = g.flatten(1).norm(dim=1)
    torch.testing.assert_close(gx.gradient_penalty(g, backend="reference"), 10 * ((norms - 1) ** 2).mean())
    batch_global = 10 * (g.norm() - 1) ** 2
    assert not torch.allclose(gx.gradient_penalty(g, backend="reference"), batch_global)


def _with_norms(g, norms):
    """``g`` with each sample rescaled in place to the given norm."""
    return g.mul_((norms.to(g.device) / g.detach().double().flatten(1).norm(dim=1)).to(g.dtype).view(-1, *[1] * (g.dim() - 1)))


def test_gradient_penalty_options(seed):
    c, w, eps = 0.7, 3.5, 0.3
    n_target = torch.tensor([0.56, 0.65, 0.75, 0.9, 1.2])  # ‖g‖ = sqrt(s + eps) on both sides of c
    g = _with_norms(torch.randn(5, 7), (n_target.square() - eps).sqrt().double())
    s = g.square().sum(1)
    n = torch.sqrt(s + eps)
    ref = gx.gradient_penalty(g, center=c, weight=w, eps=eps, reduction="none", backend="reference")
    torch.testing.assert_close(ref, w * (n - c) ** 2)
    ref1 = gx.gradient_penalty(g, center=c, weight=w, eps=eps, one_sided=True, reduction="none", backend="reference")
    torch.testing.assert_close(ref1, w * F.relu(n - c) ** 2)
    assert (ref1 == 0).sum() == 2 and (ref1 > 0).sum() == 3  # the clamp is active in 2 samples, inactive in 3
    gr = g.clone().requires_grad_()
    gx.gradient_penalty(gr, center=c, weight=w, eps=eps, one_sided=True, reduction="sum", backend="reference").backward()
    torch.testing.assert_close(gr.grad, (2 * w * F.relu(n - c) / n).view(-1, 1) * g)
    assert (gr.grad[:2] == 0).all() and (gr.grad[2:] != 0).any(dim=1).all()
    torch.testing.assert_close(
        gx.gradient_penalty(g, center=c, weight=w, eps=eps, reduction="sum", backend="reference"), (w * (n - c) ** 2).sum()
    )


def test_roth_matches_rothk(seed):
    """rothk/Stabilizing_GANs ``Discriminator_Regularizer`` (TF) transcribed: ``reduce_mean((1−σ(D1))²·‖∇D1‖²
    + σ(D2)²·‖∇D2‖²)`` then ``disc_loss += (gamma/2)·disc_reg``; gradients flow into the logits."""
    B, gamma = 5, 0.1
    D = TinyD()
    xr = torch.randn(B, 3, 8, 8, requires_grad=True)
    xf = torch.randn(B, 3, 8, 8, requires_grad=True)

    def anchor():
        D1_logits, D2_logits = D(xr), D(xf)
        D1, D2 = torch.sigmoid(D1_logits), torch.sigmoid(D2_logits)
        grad_D1 = torch.autograd.grad(D1_logits.sum(), xr, create_graph=True)[0]
        grad_D2 = torch.autograd.grad(D2_logits.sum(), xf, create_graph=True)[0]
        n1 = grad_D1.reshape(B, -1).norm(dim=1, keepdim=True)
        n2 = grad_D2.reshape(B, -1).norm(dim=1, keepdim=True)
        assert n1.shape == D1.shape
        reg = ((1.0 - D1).square() * n1.square() + D2.square() * n2.square()).mean()
        return gamma / 2.0 * reg

    exp = anchor()
    exp.backward()
    exp_grads = _d_grads(D.parameters())
    D.zero_grad()
    lr, lf = D(xr), D(xf)
    ours = gx.roth_penalty(gx.input_gradients(lr, xr), lr, gx.input_gradients(lf, xf), lf, gamma, backend="reference")
    torch.testing.assert_close(ours, exp.detach(), rtol=1e-5, atol=1e-8)
    ours.backward()
    for a, b in zip(_d_grads(D.parameters()), exp_grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-8)


def test_roth_gradient_into_logits(seed):
    B = 4
    gr, gf = torch.randn(B, 6), torch.randn(B, 6)
    lr = torch.randn(B, 1, dtype=torch.float64, requires_grad=True)
    lf = torch.randn(B, dtype=torch.float64, requires_grad=True)
    out = gx.roth_penalty(gr.double(), lr, gf.double(), lf, 0.3, backend="reference")
    out.backward()
    sr, sf = gr.double().square().sum(1), gf.double().square().sum(1)
    sig_r, sig_f = torch.sigmoid(lr.detach().view(-1)), torch.sigmoid(lf.detach())
    # d/dl (1−σ)² s = −2(1−σ)σ(1−σ) s ;  d/dl σ² s = 2σ·σ(1−σ) s
    exp_lr = 0.15 * (-2 * (1 - sig_r) ** 2 * sig_r * sr) / B
    exp_lf = 0.15 * (2 * sig_f**2 * (1 - sig_f) * sf) / B
    torch.testing.assert_close(lr.grad.view(-1), exp_lr)
    torch.testing.assert_close(lf.grad, exp_lf)


def test_grad_sqnorm_multi_tensor(seed):
    D = TinyD(extra=5)
    x = torch.randn(4, 3, 8, 8, requires_grad=True)
    y = torch.randn(4, 5, requires_grad=True)
    gx_, gy = gx.input_gradients(D(x, y), (x, y))
    exp = gx_.square().sum([1, 2, 3]) + gy.square().sum(1)
    torch.testing.assert_close(gx.grad_sqnorm([gx_, gy], backend="reference"), exp)
    torch.testing.assert_close(gx.grad_sqnorm((gx_, gy), backend="reference"), exp)
    torch.testing.assert_close(gx.r1_penalty([gx_, gy], 2.0, reduction="none", backend="reference"), exp)
    assert gy.abs().sum() > 0


def test_grad_sqnorm_per_sample_false(seed):
    """Parameter-gradient norms: one scalar over tensors of unrelated shapes."""
    ts = [torch.randn(4, 3, 3, 3), torch.randn(4), torch.randn(1, 7), torch.randn(())]
    exp = sum(t.double().square().sum() for t in ts).float()
    out = gx.grad_sqnorm(ts, per_sample=False, backend="reference")
    assert out.dim() == 0 and out.dtype == torch.float32
    torch.testing.assert_close(out, exp)


@pytest.mark.parametrize("as_tensor", [False, True])
def test_grad_sqnorm_inv_scale_fp16(seed, as_tensor):
    """AMP: float16 gradients of a loss scaled by 2**10 would overflow when squared in fp16;
    inv_scale unscales in float32 before squaring."""
    g = torch.randn(3, 4, 6, 6) * 3
    scale = 2.0**10
    g16 = (g * scale).half()
    assert torch.isinf(g16.square()).any()  # the naive fp16 square overflows
    inv = torch.tensor(1 / scale) if as_tensor else 1 / scale
    out = gx.grad_sqnorm(g16, inv_scale=inv, backend="reference")
    assert out.dtype == torch.float32 and torch.isfinite(out).all()
    torch.testing.assert_close(out, g.square().sum([1, 2, 3]), rtol=2e-3, atol=1e-3)
    torch.testing.assert_close(
        gx.r1_penalty(g16, inv_scale=inv, backend="reference"), 5 * g.square().sum([1, 2, 3]).mean(), rtol=2e-3, atol=1e-3
    )


def test_input_gradients_with_scaler(seed):
    class FakeScaler:
        def scale(self, t):
            return t * 512.0

    D = TinyD()
    x = torch.randn(3, 3, 8, 8, requires_grad=True)
    g = gx.input_gradients(D(x), x)
    gs = gx.input_gradients(D(x), x, scaler=FakeScaler())
    torch.testing.assert_close(gs, g * 512)
    torch.testing.assert_close(gx.r1_penalty(gs, inv_scale=1 / 512, backend="reference"), gx.r1_penalty(g, backend="reference"))
    assert g.requires_grad  # create_graph=True


def test_wgan_interpolate(seed):
    real, fake = torch.randn(7, 2, 3, 3), torch.randn(7, 2, 3, 3)
    gen = torch.Generator().manual_seed(seed)
    out = gx.wgan_interpolate(real, fake, generator=gen)
    alpha = ((out - fake) / (real - fake)).flatten(1)
    torch.testing.assert_close(alpha, alpha[:, :1].expand_as(alpha), rtol=1e-3, atol=1e-4)  # one α per sample
    a = alpha[:, 0]
    assert ((a >= 0) & (a < 1)).all() and a.std() > 0
    gen2 = torch.Generator().manual_seed(seed)
    torch.testing.assert_close(out, gx.wgan_interpolate(real, fake, generator=gen2), rtol=0, atol=0)
    exp_alpha = torch.rand(7, generator=torch.Generator().manual_seed(seed)).view(7, 1, 1, 1)
    torch.testing.assert_close(out, exp_alpha * real + (1 - exp_alpha) * fake, rtol=0, atol=0)
    given = torch.rand(7)
    torch.testing.assert_close(
        gx.wgan_interpolate(real, fake, alpha=given), given.view(7, 1, 1, 1) * real + (1 - given.view(7, 1, 1, 1)) * fake
    )


def test_dragan_perturb_matches_studiogan(seed):
    """StudioGAN DRAGAN: ``x + 0.5·x.std()·torch.rand(x.size())``."""
    x = torch.randn(4, 3, 5, 5) * 2 + 1
    s = seed + 7
    torch.manual_seed(s)
    exp = x + 0.5 * x.std() * torch.rand(x.size())
    torch.manual_seed(s)
    torch.testing.assert_close(gx.dragan_perturb(x), exp, rtol=0, atol=0)
    gen = torch.Generator().manual_seed(s)
    exp_c = x + 1.3 * x.std() * torch.rand(x.size(), generator=torch.Generator().manual_seed(s))
    torch.testing.assert_close(gx.dragan_perturb(x, c=1.3, generator=gen), exp_c, rtol=0, atol=0)


# =============================================================================================
# gradients of the reference (float64)


def _f64(*shape):
    return torch.randn(*shape, dtype=torch.float64, requires_grad=True)


def _ref_cases(backend):
    kw = dict(backend=backend)
    return {
        "grad_sqnorm": (lambda a, b: gx.grad_sqnorm([a, b], inv_scale=0.7, **kw), [(2, 3), (2, 2, 2)]),
        "grad_sqnorm_total": (lambda a, b: gx.grad_sqnorm([a, b], per_sample=False, **kw), [(2, 3), (3,)]),
        "r1_penalty": (lambda a: gx.r1_penalty(a, 1.7, reduction="none", **kw), [(3, 2, 2)]),
        "gradient_penalty": (lambda a: gx.gradient_penalty(a * 0.5, center=0.8, weight=2.0, reduction="none", **kw), [(3, 4)]),
        "gradient_penalty_eps": (lambda a: gx.gradient_penalty(a, eps=0.1, one_sided=True, **kw), [(3, 4)]),
        "roth_penalty": (lambda a, la, b, lb: gx.roth_penalty(a, la, b, lb, 0.4, **kw), [(2, 3), (2, 1), (2, 2, 2), (2,)]),
    }


@pytest.mark.parametrize("case", list(_ref_cases("reference")))
def test_reference_gradcheck(seed, case):
    fn, shapes = _ref_cases("reference")[case]
    inputs = [_f64(*s) for s in shapes]
    if case == "gradient_penalty_eps":
        inputs = [(inputs[0].detach() * torch.tensor([[0.05], [0.5], [1.0]], dtype=torch.float64)).requires_grad_()]
    assert gradcheck(fn, inputs)
    assert gradgradcheck(fn, inputs)


def test_reference_gradcheck_helpers(seed):
    real, fake, alpha = _f64(3, 2, 2, 2), _f64(3, 2, 2, 2), torch.rand(3, dtype=torch.float64, requires_grad=True)
    assert gradcheck(lambda r, f, a: gx.wgan_interpolate(r, f, alpha=a), (real, fake, alpha))
    assert gradgradcheck(lambda r, f, a: gx.wgan_interpolate(r, f, alpha=a), (real, fake, alpha))
    x = _f64(2, 2, 3, 3)

    def drag(x):
        return gx.dragan_perturb(x, 0.5, generator=torch.Generator().manual_seed(seed))

    assert gradcheck(drag, (x,))
    assert gradgradcheck(drag, (x,))


@every_backend
def test_gradient_penalty_zero_norm_has_zero_grad(backend, device):
    need(backend, *GN)
    g = torch.zeros(3, 2, 4, 4, device=device, requires_grad=True)
    for kw in (dict(), dict(one_sided=True), dict(center=0.0)):
        g.grad = None
        out = gx.gradient_penalty(g, backend=backend, **kw)
        out.backward()
        assert torch.isfinite(out) and torch.isfinite(g.grad).all(), kw
        assert torch.equal(g.grad, torch.zeros_like(g)), kw
    # mixed batch: zero rows get zero gradient, the other rows the analytic one
    h = torch.randn(3, 5, device=device, dtype=torch.float64)
    h[1] = 0
    h.requires_grad_()
    gx.gradient_penalty(h, reduction="sum", backend=backend).backward()
    n = h.detach().norm(dim=1, keepdim=True)
    exp = torch.where(n > 0, 20 * (n - 1) * h.detach() / n.clamp_min(1e-30), torch.zeros_like(h))
    torch.testing.assert_close(h.grad, exp)


@every_backend
@pytest.mark.parametrize(
    "dtypes", [(torch.bfloat16, torch.float64), (torch.float64, torch.float16), (torch.float16, torch.float32)], ids=str
)
def test_mixed_dtype_list(backend, device, dtypes, seed):
    """Accumulation rule (``_contract``): float64 if ANY tensor of the list is float64, else float32;
    each element is converted to it before scaling, never to one input's dtype; gradients keep
    each tensor's dtype."""
    need(backend, *GN)
    h = make((3, 7), dtypes[1], device, "strided")
    if dtypes[1] == torch.float32:
        h[:, 3] = torch.tensor([1.0e5, -9.0e4, 7.0e4])  # beyond float16's 65504: must not pass through float16
    g = [leaf(make((3, 2, 4, 5), dtypes[0], device)), leaf(h)]
    inv = 0.375
    s = gx.grad_sqnorm(g, inv_scale=inv, backend=backend)
    assert s.dtype == acc_dtype(*dtypes)
    exp = sum((t.detach().double() * inv).square().flatten(1).sum(1) for t in g)
    assert_sum_close(s.double(), exp, exp, eps=torch.finfo(s.dtype).eps)
    w = torch.randn(3, device=device, dtype=s.dtype)
    grads = torch.autograd.grad(s, g, w)
    for t, d in zip(g, grads):
        assert d.dtype == t.dtype
        assert_close(d, (2 * inv * inv * w.double().view(-1, *[1] * (t.dim() - 1)) * t.detach().double()).to(t.dtype))


# =============================================================================================
# backend matrix: fused vs reference

SHAPES = [(1, 3, 5, 7), (4, 3, 8, 8), (3, 2, 9, 13), (2, 33)]


def _sqnorm_of(g, inv=1.0):
    """Σ (inv·g)² per sample in float64: the size of the terms of every penalty's sum."""
    return (g.detach().double() * inv).square().flatten(1).sum(1)


@fused
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_matrix_grad_sqnorm(backend, device, dtype, layout, seed):
    need(backend, *GN)
    for shape in SHAPES:
        inv = float(torch.empty(()).uniform_(0.25, 2.0))
        g0 = make(shape, dtype, device, layout)
        h0 = make((shape[0], 5), dtype, device, layout)  # a second input (multi-input D)
        outs, grads = [], []
        for name in ("reference", backend):
            a, b = leaf(g0), leaf(h0)
            s = gx.grad_sqnorm([a, b], inv_scale=inv, backend=name)
            assert s.shape == (shape[0],) and s.dtype == acc_dtype(dtype)
            w = torch.linspace(-1.0, 2.0, shape[0], device=device, dtype=s.dtype)
            (s * w).sum().backward()
            outs.append(s.detach())
            grads.append((a.grad, b.grad))
        assert_sum_close(outs[1], outs[0], outs[0])  # a sum of squares: Σ|terms| is the result
        for ga, gr in zip(grads[1], grads[0]):
            assert ga.dtype == dtype and ga.shape == gr.shape
            assert_close(ga, gr, msg=f"backward {shape}")
        # per_sample=False: a scalar over tensors of different batch sizes
        ts = [make(shape, dtype, device, layout), make((7,), dtype, device)]
        tot = [gx.grad_sqnorm(ts, per_sample=False, inv_scale=inv, backend=n) for n in ("reference", backend)]
        assert tot[1].dim() == 0
        assert_sum_close(tot[1], tot[0], tot[0])


@fused
def test_matrix_special_layouts(backend, device, seed):
    """Layouts beyond LAYOUTS: permuted dims, batch not outermost in memory, an expanded (stride-0,
    overlapping) view, a sliced view, more unmergeable dims than the kernels' stride planner holds
    (their contiguous fallback); forward and backward against the float64 reference."""
    need(backend, *GN)
    base = make((4, 6, 5, 3), torch.float32, device)
    views = [
        base.permute(0, 3, 1, 2),
        base.permute(2, 0, 1, 3),
        base.transpose(0, 1),
        base.expand(2, 4, 6, 5, 3)[1],
        base[:, 1:2].expand(4, 6, 5, 3),
        base[:, ::2, 1:],
        make((3, 4, 5, 4, 6), torch.float32, device)[:, ::2, ::2, ::2, ::2],  # 4 unmergeable dims per sample
        make((2, 4, 4, 4, 4, 4, 4), torch.float32, device)[:, ::2, ::2, ::2, ::2, ::2, ::2],
    ]
    for v in views:
        g = v.detach().requires_grad_()  # the view itself, strides kept (overlapping ones too)
        s = gx.grad_sqnorm(g, inv_scale=0.5, backend=backend)
        w = torch.rand(s.shape, device=device) + 0.5
        (d,) = torch.autograd.grad(s, g, w)
        g64 = v.detach().double()
        s64 = (0.5 * g64).square().flatten(1).sum(1)
        assert_ref64(s, s64, kind="sum", msg=f"sqnorm {tuple(v.stride())}")
        assert_ref64(d, 0.5 * w.double().view(-1, *[1] * (v.dim() - 1)) * g64, msg=f"scale {tuple(v.stride())}")
    # per_sample=False over parameter-like tensors of different shapes, a 0-d one included
    ps = [make((7, 3), torch.float32, device), make((5,), torch.float32, device), make((), torch.float32, device)]
    tot = gx.grad_sqnorm(ps, per_sample=False, backend=backend)
    assert_ref64(tot, sum(p.double().square().sum() for p in ps), kind="sum", msg="total")


@fused
def test_matrix_mixed_dtype_denormals(backend, device):
    """Found by fuzzing: float64 first, float32 denormals second: the list accumulates in float64
    (``_contract``), so the float32 squares must not be formed in float32 (they would underflow to 0)."""
    need(backend, *GN)
    a = torch.tensor([[1.5410e-40]], dtype=torch.float64, device=device)
    b = torch.tensor([[1.5410e-40]], dtype=torch.float32, device=device)
    for per_sample in (True, False):
        want = gx.grad_sqnorm([a, b], per_sample=per_sample, backend="reference")
        got = gx.grad_sqnorm([a, b], per_sample=per_sample, backend=backend)
        assert got.dtype == want.dtype == torch.float64
        torch.testing.assert_close(got, want, rtol=1e-12, atol=0)
        assert want.item() > 4e-80


@fused
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_matrix_penalties(backend, device, dtype, layout, seed):
    need(backend, *GN)
    c1, eps1 = 0.5, 1e-3
    cases = {  # (penalty, Σ|terms| of its sum given s_b)
        "r1": (lambda g, n: gx.r1_penalty(g, 3.0, reduction="none", backend=n), lambda s: 1.5 * s),
        "gp": (lambda g, n: gx.gradient_penalty(g, reduction="none", backend=n), lambda s: 10 * (s.sqrt() + 1) ** 2),
        "gp1": (
            lambda g, n: gx.gradient_penalty(g, center=c1, one_sided=True, eps=eps1, reduction="none", backend=n),
            lambda s: 10 * ((s + eps1).sqrt() + c1) ** 2,
        ),
    }
    clamped = set()
    for shape in SHAPES:
        # per-sample norms on both sides of the one-sided center: the clamp is active in some samples only
        g0 = _with_norms(make(shape, dtype, device, layout), c1 * torch.tensor([1.5, 0.5, 1.2, 0.8]).double()[: shape[0]])
        s = _sqnorm_of(g0)
        for cname, (fn, abs_sum) in cases.items():
            res = []
            for name in ("reference", backend):
                g = leaf(g0)
                out = fn(g, name)
                w = torch.randn(out.shape, device=device, dtype=out.dtype, generator=torch.Generator(device).manual_seed(seed))
                (out * w).sum().backward()
                res.append((out.detach(), g.grad))
            assert_sum_close(res[1][0], res[0][0], abs_sum(s))
            assert_close(res[1][1], res[0][1], msg=f"{cname} backward {shape}")
            if cname == "gp1":
                clamped |= set((res[0][0] > 0).tolist())
                assert torch.equal(res[1][1].flatten(1)[res[0][0] == 0], torch.zeros_like(res[1][1].flatten(1)[res[0][0] == 0]))
        # Roth: gradients into grads and logits
        gf0 = make(shape, dtype, device, layout)
        res = []
        for name in ("reference", backend):
            gr, gf = leaf(g0), leaf(gf0)
            lr = torch.linspace(-2, 2, shape[0], device=device, dtype=dtype).view(-1, 1).requires_grad_()
            lf = torch.linspace(1, -1, shape[0], device=device, dtype=dtype).requires_grad_()
            out = gx.roth_penalty(gr, lr, gf, lf, 0.5, backend=name)
            out.backward()
            res.append((out.detach(), gr.grad, lr.grad, lf.grad, gf.grad))
        assert_sum_close(res[1][0], res[0][0], res[0][0])  # positive terms
        for k in (1, 2, 3, 4):
            assert_close(res[1][k], res[0][k], msg=f"roth backward[{k}] {shape}")
    assert clamped == {True, False}, "the one-sided penalty must be active in some samples and clamped in others"


@fused
def test_matrix_inv_scale_fp16(backend, device, seed):
    need(backend, *GN)
    g = torch.randn(3, 4, 6, 6, device=device) * 3
    g16 = (g * 2.0**10).half().requires_grad_()
    out = gx.grad_sqnorm(g16, inv_scale=2.0**-10, backend=backend)
    assert torch.isfinite(out).all()
    want = gx.grad_sqnorm(g16.detach(), inv_scale=2.0**-10, backend="reference")
    assert_sum_close(out.detach(), want, want)
    out.sum().backward()
    assert torch.isfinite(g16.grad).all()


@fused
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_matrix_second_order_random_operands(backend, device, dtype, seed):
    """``dot`` of two DIFFERENT random operands and ``scale`` with random per-sample coefficients
    (never 1): with ``s = grad_sqnorm(g, inv)`` and random upstream ``w``, ``v``,
    ``dg = ∂(w·s)/∂g = scale(g, w, 2·inv²)``; then ``∂⟨dg, v⟩/∂w = 2·inv²·dot(v, g)`` and
    ``∂⟨dg, v⟩/∂g = scale(v, w, 2·inv²)``."""
    need(backend, *GN)
    inv = 0.37
    g0 = [make((3, 2, 5, 6), dtype, device, "channels_last"), make((3, 7), dtype, device, "strided")]
    v = [make(t.shape, dtype, device) for t in g0]
    w0 = torch.randn(3, device=device, dtype=acc_dtype(dtype))
    res = []
    for name in ("reference", backend):
        g, w = [leaf(t) for t in g0], w0.clone().requires_grad_()
        s = gx.grad_sqnorm(g, inv_scale=inv, backend=name)
        dg = torch.autograd.grad(s, g, w, create_graph=True)
        d2 = torch.autograd.grad(dg, g + [w], v)
        res.append(([d.detach() for d in dg], d2))
    for k in range(2):
        assert_close(res[1][0][k], res[0][0][k], msg=f"first order [{k}]")
        assert_close(res[1][1][k], res[0][1][k], msg=f"second order d/dg [{k}]")
    terms = sum((2 * inv * inv * a.double() * b.double()).flatten(1).abs().sum(1) for a, b in zip(v, g0))
    assert_sum_close(res[1][1][2], res[0][1][2], terms)  # d/dw: a signed sum, may cancel


@fused
@pytest.mark.parametrize("case", list(_ref_cases("reference")))
def test_matrix_gradcheck(backend, device, case, seed):
    need(backend, *GN)
    fn, shapes = _ref_cases(backend)[case]
    inputs = [torch.randn(*s, dtype=torch.float64, device=device, requires_grad=True) for s in shapes]
    # fast_mode: one random projection instead of a full Jacobian (the Triton interpreter is slow)
    assert gradcheck(fn, inputs, fast_mode=True)
    assert gradgradcheck(fn, inputs, fast_mode=True)


@fused
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=str)
def test_matrix_deterministic(backend, device, dtype, seed):
    need(backend, *GN)
    g = make((3, 3, 16, 17), dtype, device, "channels_last")
    h = make((3, 11), dtype, device)
    outs = []
    for _ in range(2):
        a, b = leaf(g), leaf(h)
        s = gx.grad_sqnorm([a, b], inv_scale=0.3, backend=backend)
        gp = gx.gradient_penalty([a, b], backend=backend)
        (s.sum() + gp).backward()
        outs.append((s, gp, a.grad, b.grad))
    for x, y in zip(*outs):
        assert torch.equal(x, y)


@fused
def test_matrix_create_graph_through_d(backend, device, seed):
    """R1/GP from autograd.grad(create_graph=True): the fused backward reaches D's parameters."""
    need(backend, *GN)
    D = TinyD().to(device).double()
    x = torch.randn(3, 3, 8, 8, device=device, dtype=torch.float64, requires_grad=True)
    res = []
    for name in ("reference", backend):
        D.zero_grad()
        g = gx.input_gradients(D(x), x)
        (gx.r1_penalty(g, backend=name) + gx.gradient_penalty(g, backend=name)).backward()
        res.append(_d_grads(D.parameters()))
    for a, b in zip(*res):
        torch.testing.assert_close(b, a, rtol=1e-9, atol=1e-12)


@fused
def test_matrix_expanded_grad_outputs(backend, device, seed):
    """``.sum().backward()`` hands the backward expanded (stride-0) gradients, first and second order."""
    need(backend, *GN)
    g0 = make((3, 2, 5, 6), torch.float32, device)
    h0 = make((3, 4), torch.float32, device)
    res = []
    for name in ("reference", backend):
        g, h = leaf(g0), leaf(h0)
        s = gx.grad_sqnorm([g, h], inv_scale=0.5, backend=name)
        gg, gh = torch.autograd.grad(s.sum(), [g, h], create_graph=True)  # coef = expand(1)
        (gg.sum() + gh.sum()).backward()  # scale/dot backward with expanded gouts
        res.append((gg.detach(), gh.detach(), g.grad, h.grad))
    for k in range(4):
        assert_close(res[1][k], res[0][k], msg=f"output {k}")
    tot = [gx.grad_sqnorm([leaf(g0)], per_sample=False, backend=n) for n in ("reference", backend)]
    assert_sum_close(tot[1].detach(), tot[0].detach(), tot[0].detach())
