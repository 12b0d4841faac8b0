"""ADA (issue 16): each transform against an independent eager formula, the sampler's distributions,
p = 0 bitwise, linearity and the adjoint identity, gradcheck/gradgradcheck, every fused backend
against the reference (dtypes, layouts, channel counts), R1 through the augmentation, the
controller's p trajectory by hand, state_dict, determinism, and bad input before any kernel."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch.autograd import gradcheck, gradgradcheck

import ganreg_ext as gx
from ganreg_ext.reference import ada as ref
from helpers import (
    ATOMIC_ADJOINT,
    DTYPES,
    LAYOUTS,
    assert_close,
    every_backend,
    fused,
    leaf,
    make,
    need,
)

OPS = ("ada_augment", "ada_augment_adj")
ALL = {n: 0.0 for n in ref.GEOM_OPS + ref.COLOR_OPS + ("cutout", "noise")}


def only(*names) -> dict:
    """Multipliers that switch every transform off but ``names``."""
    return {**ALL, **{n: 1.0 for n in names}}


def params(B, H, W, p=1.0, preset="bgc", gen=None, device="cpu", **kw):
    gen = gen or torch.Generator(device=device).manual_seed(torch.randint(0, 2**31, ()).item())
    return gx.sample_ada_params(B, H, W, p, preset, device=device, generator=gen, **kw)


def run(backend):
    return (lambda x, prm: gx.ada_augment(x, prm, backend=backend)) if backend else (lambda x, prm: gx.ada_augment(x, prm))


# ------------------------------------------------------------------------- the transforms, reference


def test_p0_is_identity_bitwise_reference(seed):
    x = torch.randn(3, 3, 9, 7)
    prm = params(3, 9, 7, p=0.0, cutout=True, noise=True)
    assert torch.equal(gx.ada_augment(x, prm, backend="reference"), x)


@pytest.mark.parametrize("size", [(8, 8), (7, 9)])
def test_pixel_blitting_matches_torch(seed, size):
    """x-flip, 90° rotations and integer translation (reflect padding) move pixels exactly."""
    H, W = size
    x = torch.randn(16, 3, H, W)
    prm = params(16, H, W, preset="b", multipliers=only("xflip"))
    flipped = (prm["geom"][:, 0, 0] < 0).view(-1, 1, 1, 1)
    assert 0 < int(flipped.sum()) < 16
    assert torch.equal(gx.ada_augment(x, prm, backend="reference"), torch.where(flipped, x.flip(-1), x))
    if H == W:
        prm = params(16, H, W, preset="b", multipliers=only("rotate90"))
        y = gx.ada_augment(x, prm, backend="reference")
        for b in range(16):
            assert any(torch.equal(y[b], torch.rot90(x[b], k, (1, 2))) for k in range(4)), b
    prm = params(16, H, W, preset="b", multipliers=only("xint"))
    y = gx.ada_augment(x, prm, backend="reference")
    for b in range(16):
        tx, ty = -int(prm["geom"][b, 0, 2]), -int(prm["geom"][b, 1, 2])  # shift of the content
        assert abs(tx) <= round(0.125 * W) and abs(ty) <= round(0.125 * H)
        cols = ref.reflect(torch.arange(W) - tx, W)
        rows = ref.reflect(torch.arange(H) - ty, H)
        assert torch.equal(y[b], x[b][:, rows][:, :, cols]), b
        if abs(tx) < W and abs(ty) < H:  # torch's reflect padding agrees where it applies
            xp = F.pad(x[b : b + 1], [W - 1, W - 1, H - 1, H - 1], mode="reflect")
            assert torch.equal(y[b], xp[0, :, H - 1 - ty : 2 * H - 1 - ty, W - 1 - tx : 2 * W - 1 - tx]), b


def test_reflect_index():
    i = torch.arange(-7, 12)  # n = 5: period 8, −1 → 1, 5 → 3
    assert torch.equal(ref.reflect(i, 5), torch.tensor([1, 2, 3, 4, 3, 2, 1, 0, 1, 2, 3, 4, 3, 2, 1, 0, 1, 2, 3]))
    assert torch.equal(ref.reflect(i, 1), torch.zeros_like(i))


@pytest.mark.parametrize("name", ["scale", "rotate_pre", "aniso", "rotate_post", "xfrac"])
def test_geometry_reproduces_quadratics(seed, name):
    """Keys' cubic reproduces quadratics: where the map does not minify (filter stretch 1) and the taps
    stay inside the image, the output is the quadratic evaluated at the mapped position (u, v), an
    independent check of the coordinate convention and of each geometric transform."""
    H = W = 24
    B = 32
    prm = params(B, H, W, preset="g", multipliers=only(name), device="cpu")
    g = prm["geom"].double()
    yy, xx = torch.meshgrid(torch.arange(H, dtype=torch.float64), torch.arange(W, dtype=torch.float64), indexing="ij")
    coef = torch.randn(6, dtype=torch.float64) * torch.tensor([1, 0.1, 0.1, 0.01, 0.01, 0.01], dtype=torch.float64)

    def quad(u, v):
        return coef[0] + coef[1] * u + coef[2] * v + coef[3] * u * u + coef[4] * u * v + coef[5] * v * v

    u = g[:, 0, 0, None, None] * xx + g[:, 0, 1, None, None] * yy + g[:, 0, 2, None, None]
    v = g[:, 1, 0, None, None] * xx + g[:, 1, 1, None, None] * yy + g[:, 1, 2, None, None]
    kx, ky = ref.stretch(g)
    inside = (u >= 2) & (u <= W - 3) & (v >= 2) & (v <= H - 3)
    sharp_x, sharp_y = (kx == 1)[:, None, None] & inside, (ky == 1)[:, None, None] & inside
    # a stretched (anti-aliasing) axis does not reproduce polynomials: test images that vary along
    # the unstretched axis only, and the full quadratic where neither axis is stretched
    zero = torch.zeros_like(xx)
    for img, want, mask in (
        (quad(xx, yy), quad(u, v), sharp_x & sharp_y),
        (quad(xx, zero), quad(u, 0 * u), sharp_x),
        (quad(zero, yy), quad(0 * v, v), sharp_y),
    ):
        y = gx.ada_augment(img.expand(B, 1, H, W).contiguous(), {**prm, "preset": "g"}, backend="reference")
        torch.testing.assert_close(y[:, 0][mask], want[mask], rtol=1e-9, atol=1e-9)
    assert (sharp_x | sharp_y).sum() > B * H * W // 8, "too few interior pixels to test"
    if name != "xfrac":  # the transforms act about the image centre
        c = torch.tensor([(W - 1) / 2, (H - 1) / 2], dtype=torch.float64)
        torch.testing.assert_close(g[:, :, :2] @ c + g[:, :, 2], c.expand(B, 2), rtol=0, atol=1e-5)  # float32 params


def test_geometry_distributions():
    """Parameter distributions of ADA appendix B, p = 1, large batch: log det of the linear part is
    −2·log(s) (isotropic scale; rotations and the anisotropic scale keep the area), the fractional
    translation has σ = 0.125·size, rotations are uniform."""
    B, H, W = 20000, 32, 32
    g = params(B, H, W, preset="g", multipliers=only("scale"))["geom"].double()
    logdet = torch.log(torch.det(g[:, :, :2]))
    assert abs(logdet.mean()) < 0.02 and abs(logdet.std() / (2 * ref.SCALE_STD) - 1) < 0.05
    g = params(B, H, W, preset="g", multipliers=only("aniso", "rotate_pre"))["geom"].double()
    torch.testing.assert_close(torch.det(g[:, :, :2]), torch.ones(B, dtype=torch.float64), rtol=1e-5, atol=1e-5)
    g = params(B, H, W, preset="g", multipliers=only("xfrac"))["geom"].double()
    t = -g[:, :, 2] / torch.tensor([W, H], dtype=torch.float64)
    assert abs(t.std() / ref.XFRAC_STD - 1) < 0.05 and t.mean().abs().max() < 0.005
    g = params(B, H, W, p=1.0, preset="g", multipliers=only("rotate_pre"))["geom"].double()
    ang = torch.atan2(g[:, 1, 0], g[:, 0, 0])
    # rotate_pre is drawn with 1 − √(1 − p) = 1 at p = 1: uniform on (−π, π)
    assert abs(ang.abs().mean() / (math.pi / 2) - 1) < 0.05
    g = params(B, H, W, p=0.5, preset="g", multipliers=only("rotate_pre", "rotate_post"))["geom"].double()
    rotated = (g[:, 0, 1].abs() > 1e-6).double().mean()
    assert abs(rotated - 0.5) < 0.02  # some rotation with probability p


def _pixels(c: int = 3, n: int = 64):
    return torch.randn(n, c, 4, 4) * 0.5


@pytest.mark.parametrize("name", ref.COLOR_OPS)
def test_colour_transforms(seed, name):
    """Each colour transform of ADA appendix B against its own formula; images in [−1, 1] around 0,
    luma axis v = (1, 1, 1)/√3."""
    B = 64
    x = _pixels(n=B)
    prm = params(B, 4, 4, preset="c", multipliers=only(name))
    y = gx.ada_augment(x, prm, backend="reference")
    v = torch.full((3,), 1 / math.sqrt(3))
    luma = torch.einsum("c,bchw->bhw", v, x)
    luma_y = torch.einsum("c,bchw->bhw", v, y)
    chroma, chroma_y = x - v[None, :, None, None] * luma[:, None], y - v[None, :, None, None] * luma_y[:, None]
    if name == "brightness":
        d = y - x
        assert torch.allclose(d, d[:, :1, :1, :1].expand_as(d), atol=1e-6)
        assert 0.1 < d[:, 0, 0, 0].std() < 0.35
    elif name == "contrast":
        r = y / x
        assert torch.allclose(r, r[:, :1, :1, :1].expand_as(r), rtol=1e-4)
        assert abs(r[:, 0, 0, 0].log().std() / ref.CONTRAST_STD - 1) < 0.5
    elif name == "lumaflip":
        flipped = torch.allclose(luma_y, -luma, atol=1e-5)
        per = [(torch.allclose(luma_y[b], -luma[b], atol=1e-5), torch.allclose(y[b], x[b], atol=1e-6)) for b in range(B)]
        assert all(f or same for f, same in per) and any(f for f, _ in per) and any(s for _, s in per)
        torch.testing.assert_close(chroma_y, chroma, atol=1e-5, rtol=1e-5)
        del flipped
    elif name == "hue":
        torch.testing.assert_close(luma_y, luma, atol=1e-5, rtol=1e-5)  # rotation about the luma axis
        torch.testing.assert_close(chroma_y.norm(dim=1), chroma.norm(dim=1), atol=1e-5, rtol=1e-5)
        assert not torch.allclose(y, x, atol=1e-3)
    elif name == "saturation":
        torch.testing.assert_close(luma_y, luma, atol=1e-5, rtol=1e-5)
        s = chroma_y.norm(dim=1) / chroma.norm(dim=1)  # chroma scaled by s per sample
        assert torch.allclose(s, s[:, :1, :1].expand_as(s), rtol=1e-3)
        assert abs(s[:, 0, 0].log().std() / ref.SATURATION_STD - 1) < 0.5


def test_grayscale_colour(seed):
    """One channel: the RGB transform of the gray pixel (g, g, g), averaged back to gray."""
    B = 16
    x = torch.randn(B, 1, 5, 5)
    prm = params(B, 5, 5, preset="c")
    y = gx.ada_augment(x, prm, backend="reference")
    rgb = gx.ada_augment(x.expand(B, 3, 5, 5).contiguous(), prm, backend="reference")
    torch.testing.assert_close(y, rgb.mean(1, keepdim=True), rtol=1e-5, atol=1e-5)


def test_cutout_and_noise(seed):
    B, C, H, W = 64, 3, 16, 16
    x = torch.randn(B, C, H, W)
    prm = params(B, H, W, preset="b", multipliers={**ALL, "cutout": 1.0}, cutout=True)
    y = gx.ada_augment(x, prm, backend="reference")
    zero = (y == 0).all(1)
    assert torch.equal(y, x * ~zero[:, None])
    frac = zero.double().mean((1, 2))
    assert 0.05 < frac.max() <= 0.25 + 1e-9  # a 0.5 × 0.5 square, clipped at the borders
    prm = params(B, H, W, preset="b", multipliers={**ALL, "noise": 1.0}, noise=True, channels=C)
    n = gx.ada_augment(x, prm, backend="reference") - x
    assert abs(n.std(dim=(1, 2, 3)).mean() / (ref.NOISE_STD * math.sqrt(2 / math.pi)) - 1) < 0.35


def test_determinism_given_a_generator():
    a = gx.sample_ada_params(8, 16, 16, 0.7, generator=torch.Generator().manual_seed(3), cutout=True)
    b = gx.sample_ada_params(8, 16, 16, 0.7, generator=torch.Generator().manual_seed(3), cutout=True)
    c = gx.sample_ada_params(8, 16, 16, 0.7, generator=torch.Generator().manual_seed(4), cutout=True)
    for k in ("geom", "color", "cutout"):
        assert torch.equal(a[k], b[k])
    assert not torch.equal(a["geom"], c["geom"])
    ada = gx.AdaptiveAugment(p=0.5, backend="reference")
    x = torch.randn(8, 3, 16, 16)
    assert torch.equal(ada(x, generator=torch.Generator().manual_seed(1)), ada(x, generator=torch.Generator().manual_seed(1)))


def test_p_as_tensor_matches_float():
    a = gx.sample_ada_params(8, 16, 16, 0.3, generator=torch.Generator().manual_seed(5))
    b = gx.sample_ada_params(8, 16, 16, torch.tensor(0.3), generator=torch.Generator().manual_seed(5))
    assert torch.equal(a["geom"], b["geom"]) and torch.equal(a["color"], b["color"])


def test_reference_gradcheck(seed):
    prm = params(2, 6, 5, cutout=True)
    x = torch.randn(2, 3, 6, 5, dtype=torch.float64, requires_grad=True)
    fn = lambda t: gx.ada_augment(t, prm, backend="reference")  # noqa: E731
    assert gradcheck(fn, (x,)) and gradgradcheck(fn, (x,))


# ------------------------------------------------------------------------- every fused backend


@fused
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_matrix(backend, device, dtype, layout, seed):
    need(backend, *OPS)
    for (B, C, H, W), preset in (((4, 3, 9, 7), "bgc"), ((1, 1, 8, 8), "bgc"), ((3, 5, 6, 11), "bg")):
        x = make((B, C, H, W), dtype, device, layout)
        prm = params(B, H, W, preset=preset, device=device, cutout=True)
        want = gx.ada_augment(x, prm, backend="reference")
        got = gx.ada_augment(x, prm, backend=backend)
        assert got.dtype == dtype and got.is_contiguous()
        assert_close(got, want, factor=8.0, msg=f"{backend} {preset} {(B, C, H, W)}")
        gy = torch.randn_like(want)
        xl = leaf(x)
        (gx_ref,) = torch.autograd.grad(gx.ada_augment(xl, prm, backend="reference"), xl, gy)
        (gx_fused,) = torch.autograd.grad(gx.ada_augment(xl, prm, backend=backend), xl, gy)
        assert_close(gx_fused, gx_ref, factor=8.0, msg=f"{backend} adjoint {preset} {(B, C, H, W)}")


@fused
def test_identity_bitwise(backend, device, seed):
    need(backend, *OPS)
    for dtype in (torch.float32, torch.float16):
        x = make((3, 3, 9, 7), dtype, device, "channels_last")
        prm = params(3, 9, 7, p=0.0, device=device, cutout=True)
        assert torch.equal(gx.ada_augment(x, prm, backend=backend), x)


@fused
def test_tiny_and_minifying_images(backend, device, seed):
    """1×1 and 1-row images (reflection of a single pixel) and strong minification (stretch 4)."""
    need(backend, *OPS)
    for H, W in ((1, 1), (1, 6), (5, 1)):
        x = torch.randn(2, 3, H, W, device=device)
        prm = params(2, H, W, device=device)
        assert_close(gx.ada_augment(x, prm, backend=backend), gx.ada_augment(x, prm, backend="reference"), factor=8.0)
    x = torch.randn(2, 3, 16, 16, device=device)
    prm = params(2, 16, 16, p=0.0, device=device)
    prm["geom"] = torch.tensor([[[5.0, 0.3, -20.0], [0.0, 3.0, 2.0]], [[0.0, -2.5, 30.0], [1.5, 0.0, -7.0]]], device=device)
    assert_close(gx.ada_augment(x, prm, backend=backend), gx.ada_augment(x, prm, backend="reference"), factor=8.0)


@every_backend
def test_linear_and_adjoint(backend, device, seed):
    """With fixed params ``A(x) − A(0)`` is linear and ⟨A(x) − A(0), y⟩ = ⟨x, Aᵀ(y)⟩ (float64)."""
    if backend != "reference":
        need(backend, *OPS)
    B, C, H, W = 3, 3, 10, 9
    prm = params(B, H, W, device=device, cutout=True)
    A = lambda t: gx.ada_augment(t, prm, backend=backend)  # noqa: E731
    x, x2, y = (torch.randn(B, C, H, W, dtype=torch.float64, device=device) for _ in range(3))
    a0 = A(torch.zeros_like(x))
    torch.testing.assert_close(A(2 * x - 3 * x2) - a0, 2 * (A(x) - a0) - 3 * (A(x2) - a0))
    xl = x.clone().requires_grad_()
    (aty,) = torch.autograd.grad(A(xl), xl, y)
    torch.testing.assert_close(((A(x) - a0) * y).sum(), (x * aty).sum(), rtol=1e-10, atol=1e-10)


@every_backend
def test_gradcheck_gradgradcheck(backend, device, seed):
    if backend != "reference":
        need(backend, *OPS)
    # fast mode (random projections): the op is linear, and the Triton interpreter is slow per call
    prm = params(2, 5, 6, device=device, cutout=True)
    x = torch.randn(2, 3, 5, 6, dtype=torch.float64, device=device, requires_grad=True)
    fn = lambda t: gx.ada_augment(t, prm, backend=backend)  # noqa: E731
    tol = 1e-12 if backend in ATOMIC_ADJOINT else 0.0  # atomicAdd adjoint: last bits vary (docs/semantics.md)
    assert gradcheck(fn, (x,), fast_mode=True, nondet_tol=tol) and gradgradcheck(fn, (x,), fast_mode=True, nondet_tol=tol)


@every_backend
def test_r1_through_adaptive_augment(backend, device, seed):
    """R1 on D(ADA(x)): the double backward runs through the augmentation; parameter gradients equal
    the reference's."""
    if backend != "reference":
        need(backend, *OPS)
    torch.manual_seed(0)
    D = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3), torch.nn.Softplus(), torch.nn.Flatten(), torch.nn.Linear(4 * 6 * 6, 1)
    ).double()
    D = D.to(device)
    x = torch.randn(4, 3, 8, 8, dtype=torch.float64, device=device)
    prm = params(4, 8, 8, p=0.8, device=device, cutout=True)
    out = {}
    for b in ("reference", backend):
        D.zero_grad()
        xr = x.clone().requires_grad_()
        logits = D(gx.AdaptiveAugment(backend=b).to(device)(xr, prm)).squeeze(1)
        pen = gx.r1_penalty(gx.input_gradients(logits, xr), gamma=10.0, backend=b)
        pen.backward()
        out[b] = [torch.zeros_like(p) if p.grad is None else p.grad.clone() for p in D.parameters()]
    assert any(g.abs().sum() > 0 for g in out[backend])
    for a, r in zip(out[backend], out["reference"]):
        torch.testing.assert_close(a, r, rtol=1e-9, atol=1e-12)


# ------------------------------------------------------------------------- the controller


def test_controller_trajectory_by_hand():
    """p over several intervals against a hand computation of ADA's rule."""
    torch.manual_seed(0)
    ada = gx.AdaptiveAugment(target=0.6, interval=3, kimg=0.05, p=0.1, p_max=0.9)
    p, acc, n, imgs, calls = 0.1, 0.0, 0, 0, 0
    for step in range(30):
        logits = torch.randn(8, 1) + (1.5 if step < 15 else -1.0)
        ada.update(logits)
        acc += float(torch.sign(logits).sum())
        n += logits.numel()
        imgs += 8
        calls += 1
        if calls % 3 == 0:
            r = acc / n
            p = min(max(p + math.copysign(1.0, r - 0.6) * (r != 0.6) * imgs / 50.0, 0.0), 0.9)
            acc, n, imgs = 0.0, 0, 0
            assert abs(float(ada.r_t) - r) < 1e-6
        assert abs(float(ada.p) - p) < 1e-6, (step, float(ada.p), p)
    assert ada.p.dtype == torch.float32 and ada.p.dim() == 0
    assert float(ada.p) == 0.0 or float(ada.p) < 0.9


def test_controller_state_dict_resumes():
    a = gx.AdaptiveAugment(interval=4, kimg=0.01)
    for _ in range(6):
        a.update(torch.ones(4))
    b = gx.AdaptiveAugment(interval=4, kimg=0.01)
    b.load_state_dict(a.state_dict())
    for m in (a, b):
        for _ in range(2):  # completes the interval started before the save
            m.update(-torch.ones(4))
    assert "p" in a.state_dict() and float(a.p) == float(b.p) and float(a.r_t) == float(b.r_t)


# ------------------------------------------------------------------------- sizes of real training (issue 22)


@fused
def test_batch_8_and_128px(backend, device, seed):
    """Batch >= 8 (the CPU adjoint's one-chunk-per-sample path) at 128 x 128 (the forward's row
    tiles), float64 against the reference: forward and adjoint. Interpreted Triton: 8 x 1 x 32 x 32."""
    need(backend, *OPS)
    B, C, H, W = (8, 1, 32, 32) if backend == "triton" and device == "cpu" else (8, 3, 128, 128)
    x = torch.randn(B, C, H, W, dtype=torch.float64, device=device)
    prm = params(B, H, W, device=device, cutout=True, preset="bgc" if C in (1, 3) else "bg")
    want = gx.ada_augment(x, prm, backend="reference")
    torch.testing.assert_close(gx.ada_augment(x, prm, backend=backend), want, rtol=1e-10, atol=1e-10 * float(x.abs().max()))
    gy = torch.randn_like(want)
    grads = []
    for name in (backend, "reference"):
        xl = leaf(x)
        grads.append(torch.autograd.grad(gx.ada_augment(xl, prm, backend=name), xl, gy)[0])
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-10, atol=1e-10 * float(gy.abs().max()) * 16)


@fused
@pytest.mark.parametrize("stretch", [2.25, 3.0, 4.0])
def test_adjoint_with_vertical_stretch_above_2(backend, device, stretch, seed):
    """A vertical stretch > 2 (more than 8 row taps, the Triton TAPS tile) through the adjoint too."""
    need(backend, *OPS)
    x = torch.randn(2, 3, 16, 12, dtype=torch.float64, device=device)
    prm = params(2, 16, 12, p=0.0, device=device)
    prm["geom"] = torch.tensor(
        [[[1.1, 0.2, -1.0], [0.3, stretch, -4.0]], [[0.9, -0.1, 2.0], [-0.2, stretch, 1.0]]], device=device
    )
    gy = torch.randn(2, 3, 16, 12, dtype=torch.float64, device=device)
    res = []
    for name in (backend, "reference"):
        xl = leaf(x)
        y = gx.ada_augment(xl, prm, backend=name)
        res.append((y.detach(), torch.autograd.grad(y, xl, gy)[0]))
    for p, q in zip(*res):
        torch.testing.assert_close(p, q, rtol=1e-10, atol=1e-10 * 16 * 16)


def test_controller_steps_by_images_not_logits():
    """update() with ``[B, k]`` logits (a patch discriminator): p moves by B images, not B·k."""
    for shape in ((4,), (4, 5), (4, 2, 3)):
        ada = gx.AdaptiveAugment(target=0.6, interval=1, kimg=0.004, p=0.0)
        ada.update(torch.ones(shape))  # r_t = 1 > target: p += 4 / (0.004·1000) = 1 (clamped at p_max)
        ada2 = gx.AdaptiveAugment(target=0.6, interval=1, kimg=1.0, p=0.5)
        ada2.update(-torch.ones(shape))  # r_t = −1: p −= 4 / 1000
        assert float(ada2.p) == pytest.approx(0.5 - 4 / 1000), shape
        assert float(ada.p) == pytest.approx(min(1.0, ada.p_max)), shape
