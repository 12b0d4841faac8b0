"""Adaptive discriminator augmentation (Karras et al. 2020, "Training Generative Adversarial Networks
with Limited Data", appendix B), eager PyTorch: the parameter sampler and the truth every backend's
``ada_augment`` kernel is tested against (same op signature as ``ganreg_ext/ops/ada.py``).

With its parameters drawn, the pipe is affine in the image. Per sample ``b``, output pixel
``(x, y)`` (column, row), channel ``o``::

    (u, v)   = geom[b] · (x, y, 1)                      input position (inverse map, pixel indices)
    r_c      = Σ_{i,j} wx_i · wy_j · x[b, c, R_H(j), R_W(i)]   resampled channel c
    y[b,o]   = keep_b(x, y) · (Σ_c color[b, o, c] · r_c + affine · color[b, o, C])

* resampling filter: the Keys cubic (a = −0.5) ``k(s)``, stretched by ``kx = clamp(‖geom[b,0,:2]‖, 1, 4)``
  (``ky`` from row 1) where the map minifies (an anti-aliasing low-pass filter, as image resizers
  do), taps ``i = floor(u − 2kx) + 1 + t``, ``t < ceil(4kx)``, ``wx_i = k((u − i)/kx)`` normalised to
  sum 1 (``wy`` likewise); at integer positions with ``kx = 1`` the weights are exactly ``[0, 1, 0, 0]``,
  so flips, 90° rotations, integer shifts and the identity (p = 0) move pixels bitwise.
* ``R_n``: reflect padding (``−1 → 1``, ``n → n − 2``, periodic beyond), as ADA pads.
* ``color``: ``[B, C, C + 1]`` channel mixing + offset (``None``: identity); ``keep``: 0 inside the
  cutout rectangle ``|(x + ½)/W − cx| < s/2 and |(y + ½)/H − cy| < s/2`` (``cutout`` ``[B, 3]`` =
  ``cx, cy, s``; ``None``: keep all).

The adjoint (backward) is ``Σ`` of the same weights the other way; the pipe's linear part
(``affine=False``) is the adjoint's backward. Coordinates and sums in float32 (float64 for float64).
"""

from __future__ import annotations

import math

import torch

from .._contract import acc_dtype

KMAX = 4.0  # largest filter stretch (minification beyond 4× aliases)
PRESETS = ("b", "g", "c", "bg", "bc", "gc", "bgc")
# ADA appendix B, in the paper's order; (name, group)
GEOM_OPS = ("xflip", "rotate90", "xint", "scale", "rotate_pre", "aniso", "rotate_post", "xfrac")
COLOR_OPS = ("brightness", "contrast", "lumaflip", "hue", "saturation")
GROUP = {"xflip": "b", "rotate90": "b", "xint": "b", **{k: "g" for k in GEOM_OPS[3:]}, **{k: "c" for k in COLOR_OPS}}
# strengths (ADA defaults)
XINT_MAX = 0.125
SCALE_STD = 0.2 * math.log(2)
ROTATE_MAX = 1.0  # × π
ANISO_STD = 0.2 * math.log(2)
XFRAC_STD = 0.125
BRIGHTNESS_STD = 0.2
CONTRAST_STD = 0.5 * math.log(2)
HUE_MAX = 1.0  # × π
SATURATION_STD = 1.0 * math.log(2)
CUTOUT_SIZE = 0.5
NOISE_STD = 0.1


def keys_cubic(s: torch.Tensor) -> torch.Tensor:
    """Keys' cubic convolution kernel (a = −0.5): support (−2, 2), k(0) = 1, k(±1) = k(±2) = 0."""
    a = s.abs()
    a2, a3 = a * a, a * a * a
    near = 1.5 * a3 - 2.5 * a2 + 1.0
    far = -0.5 * a3 + 2.5 * a2 - 4.0 * a + 2.0
    return torch.where(a <= 1.0, near, torch.where(a < 2.0, far, torch.zeros_like(a)))


def reflect(i: torch.Tensor, n: int) -> torch.Tensor:
    """Reflect-padding index (``−1 → 1``, ``n → n − 2``), periodic with period ``2(n − 1)``."""
    if n == 1:
        return torch.zeros_like(i)
    period = 2 * (n - 1)
    m = torch.remainder(i, period)
    return torch.where(m >= n, period - m, m)


def _taps(pos: torch.Tensor, k: torch.Tensor, n: int, T: int):
    """Indices (reflected) and normalised weights ``[..., T]`` along one axis."""
    i = torch.floor(pos - 2.0 * k).unsqueeze(-1) + 1.0 + torch.arange(T, dtype=pos.dtype, device=pos.device)
    w = keys_cubic((pos.unsqueeze(-1) - i) / k.unsqueeze(-1))
    w = w / w.sum(-1, keepdim=True)
    return reflect(i.long(), n), w


def stretch(geom: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample filter stretch ``(kx, ky)`` = row norms of the map's linear part, clamped to [1, KMAX]."""
    g = geom.to(torch.float64) if geom.dtype == torch.float64 else geom.float()
    kx = torch.hypot(g[:, 0, 0], g[:, 0, 1]).clamp(1.0, KMAX)
    ky = torch.hypot(g[:, 1, 0], g[:, 1, 1]).clamp(1.0, KMAX)
    return kx, ky


def resample(x: torch.Tensor, geom: torch.Tensor) -> torch.Tensor:
    """Per sample: ``r[b, c, y, x] = Σ wx·wy·x[b, c, R(v-taps), R(u-taps)]`` (in ``x``'s dtype, which the
    caller makes the accumulation dtype)."""
    B, C, H, W = x.shape
    dt = x.dtype
    g = geom.to(dt)
    kx, ky = stretch(g)
    kx, ky = kx.to(dt), ky.to(dt)
    yy, xx = torch.meshgrid(torch.arange(H, dtype=dt, device=x.device), torch.arange(W, dtype=dt, device=x.device), indexing="ij")
    u = g[:, 0, 0, None, None] * xx + g[:, 0, 1, None, None] * yy + g[:, 0, 2, None, None]  # [B, H, W]
    v = g[:, 1, 0, None, None] * xx + g[:, 1, 1, None, None] * yy + g[:, 1, 2, None, None]
    Tx, Ty = int(torch.ceil(4.0 * kx).max()), int(torch.ceil(4.0 * ky).max())  # host read: the reference only
    ix, wx = _taps(u, kx[:, None, None].expand_as(u), W, Tx)  # [B, H, W, Tx]
    iy, wy = _taps(v, ky[:, None, None].expand_as(v), H, Ty)  # [B, H, W, Ty]
    idx = (iy.unsqueeze(-1) * W + ix.unsqueeze(-2)).reshape(B, 1, -1).expand(B, C, -1)  # [B, C, H·W·Ty·Tx]
    taps = torch.gather(x.reshape(B, C, H * W), 2, idx).reshape(B, C, H, W, Ty, Tx)
    return torch.einsum("bchwyx,bhwy,bhwx->bchw", taps, wy, wx)


def cutout_keep(cutout: torch.Tensor, H: int, W: int, dtype) -> torch.Tensor:
    """``[B, 1, H, W]`` mask: 0 inside each sample's cutout rectangle, else 1."""
    c = cutout.to(dtype)
    ys = (torch.arange(H, dtype=dtype, device=c.device) + 0.5) / H
    xs = (torch.arange(W, dtype=dtype, device=c.device) + 0.5) / W
    half = c[:, 2, None] / 2
    out_x = (xs[None, :] - c[:, 0, None]).abs() >= half  # [B, W]
    out_y = (ys[None, :] - c[:, 1, None]).abs() >= half  # [B, H]
    return (out_y[:, :, None] | out_x[:, None, :]).to(dtype)[:, None]


def ada_augment(x: torch.Tensor, geom: torch.Tensor, color, cutout, affine: bool = True) -> torch.Tensor:
    """The op (see the module docstring): resample by ``geom``, mix channels by ``color``, cut out."""
    dt = acc_dtype(x.dtype)
    B, C, H, W = x.shape
    r = resample(x.to(dt), geom)
    if color is not None:
        m = color.to(dt)
        r = torch.einsum("boc,bchw->bohw", m[:, :, :C], r)
        if affine:
            r = r + m[:, :, C, None, None]
    if cutout is not None:
        r = r * cutout_keep(cutout, H, W, dt)
    return r.to(x.dtype)


# ----------------------------------------------------------------------------------------- sampler


def _mat(B: int, n: int, device) -> torch.Tensor:
    return torch.eye(n, dtype=torch.float32, device=device).repeat(B, 1, 1)


def _translate2(tx: torch.Tensor, ty: torch.Tensor) -> torch.Tensor:
    m = _mat(len(tx), 3, tx.device)
    m[:, 0, 2], m[:, 1, 2] = tx, ty
    return m


def _scale2(sx: torch.Tensor, sy: torch.Tensor) -> torch.Tensor:
    m = _mat(len(sx), 3, sx.device)
    m[:, 0, 0], m[:, 1, 1] = sx, sy
    return m


def _rotate2(c: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """Rotation by the angle of (cos, sin) = (c, s), counter-clockwise in (x, y)."""
    m = _mat(len(c), 3, c.device)
    m[:, 0, 0], m[:, 0, 1], m[:, 1, 0], m[:, 1, 1] = c, -s, s, c
    return m


def _lognormal(B, std, gen, device):
    return torch.exp(torch.randn(B, device=device, generator=gen) * std)


def sample_ada_params(
    batch: int,
    height: int,
    width: int,
    p,
    preset: str,
    device,
    generator=None,
    cutout: bool = False,
    noise: bool = False,
    channels: int = 3,
    multipliers: dict | None = None,
) -> dict:
    """Draw ADA's transforms for ``batch`` images of ``height × width``. Each transform of the preset's
    groups (``b``: x-flip, 90° rotation, integer translation; ``g``: isotropic scale, pre-rotation,
    anisotropic scale, post-rotation, fractional translation; ``c``: brightness, contrast, luma flip,
    hue rotation, saturation; options cutout and noise) is applied to each sample with probability
    ``p · multipliers[name]`` (default 1; the two rotations with ``1 − √(1 − p·m)``, so that some
    rotation happens with ``p·m``).

    Returns ``geom`` ``[B, 2, 3]`` (output → input pixel map), ``color`` ``[B, 4, 4]`` (RGB + offset,
    images assumed in [−1, 1]), ``cutout`` ``[B, 3]`` (``cx, cy, size``, size 0 = none) and, with
    ``noise``, ``noise`` ``[B, channels, H, W]`` (``σ·n`` with ``σ ~ |N(0, 0.1²)|``, zero where not
    drawn; already masked by the cutout). All float32 on ``device``, drawn from ``generator`` in a
    fixed order; no host read of ``p``.
    """
    B, H, W = batch, height, width
    dev = torch.device(device) if device is not None else torch.device("cpu")
    gen = generator
    pt = p.to(dev, torch.float32) if isinstance(p, torch.Tensor) else torch.full((), float(p), device=dev)  # no copy
    mult = multipliers or {}

    def apply(name):  # [B] bool: this sample gets the transform
        prob = pt * float(mult.get(name, 1.0))
        if name.startswith("rotate_"):
            prob = 1.0 - torch.sqrt(torch.clamp(1.0 - prob, min=0.0))
        return torch.rand(B, device=dev, generator=gen) < prob

    one = torch.ones(B, device=dev)
    G = _mat(B, 3, dev)  # inverse map in centred pixel coordinates: G⁻¹ = T1⁻¹ · T2⁻¹ · …
    if "b" in preset:
        on = apply("xflip")
        flip = torch.randint(0, 2, (B,), device=dev, generator=gen).float() * on
        G = G @ _scale2(1.0 - 2.0 * flip, one)  # its own inverse
        on = apply("rotate90")
        k = torch.randint(0, 4, (B,), device=dev, generator=gen) * on  # quarter turns, exact cos/sin
        cos = (k == 0).float() - (k == 2).float()
        sin = (k == 1).float() - (k == 3).float()
        G = G @ _rotate2(cos, -sin)  # inverse of a rotation by k·90°
        on = apply("xint")
        t = (torch.rand(B, 2, device=dev, generator=gen) * 2 - 1) * XINT_MAX * on[:, None]
        G = G @ _translate2(-torch.round(t[:, 0] * W), -torch.round(t[:, 1] * H))
    if "g" in preset:
        on = apply("scale")
        s = torch.where(on, _lognormal(B, SCALE_STD, gen, dev), one)
        G = G @ _scale2(1.0 / s, 1.0 / s)
        for name in ("rotate_pre", "aniso", "rotate_post"):
            if name == "aniso":
                on = apply("aniso")
                s = torch.where(on, _lognormal(B, ANISO_STD, gen, dev), one)
                G = G @ _scale2(1.0 / s, s)
                continue
            on = apply(name)
            theta = (torch.rand(B, device=dev, generator=gen) * 2 - 1) * math.pi * ROTATE_MAX * on
            G = G @ _rotate2(torch.cos(theta), -torch.sin(theta))
        on = apply("xfrac")
        t = torch.randn(B, 2, device=dev, generator=gen) * XFRAC_STD * on[:, None]
        G = G @ _translate2(-t[:, 0] * W, -t[:, 1] * H)
    cx, cy = (W - 1) / 2, (H - 1) / 2  # to pixel indices: T(c) · G⁻¹ · T(−c)
    G = _translate2(one * cx, one * cy) @ G @ _translate2(-one * cx, -one * cy)

    Cm = _mat(B, 4, dev)  # forward colour matrix: later transforms multiply from the left
    if "c" in preset:
        v = torch.full((4,), 1 / math.sqrt(3), device=dev)
        v[3] = 0
        vv = torch.outer(v, v)
        eye = torch.eye(4, device=dev)
        on = apply("brightness")
        b = torch.randn(B, device=dev, generator=gen) * BRIGHTNESS_STD * on
        T = _mat(B, 4, dev)
        T[:, :3, 3] = b[:, None]
        Cm = T @ Cm
        on = apply("contrast")
        c = torch.where(on, _lognormal(B, CONTRAST_STD, gen, dev), one)
        T = _mat(B, 4, dev)
        T[:, 0, 0] = T[:, 1, 1] = T[:, 2, 2] = c
        Cm = T @ Cm
        on = apply("lumaflip")
        i = torch.randint(0, 2, (B,), device=dev, generator=gen).float() * on
        Cm = (eye - 2 * vv * i[:, None, None]) @ Cm
        on = apply("hue")
        theta = (torch.rand(B, device=dev, generator=gen) * 2 - 1) * math.pi * HUE_MAX * on
        vx = torch.zeros(4, 4, device=dev)  # cross-product matrix of the luma axis
        vx[0, 1], vx[0, 2], vx[1, 0], vx[1, 2], vx[2, 0], vx[2, 1] = -v[2], v[1], v[2], -v[0], -v[1], v[0]
        ct, st = torch.cos(theta)[:, None, None], torch.sin(theta)[:, None, None]
        R = ct * (eye - vv) + st * vx + vv  # Rodrigues about v (keeps the offset row/column)
        R[:, 3, 3] = 1
        Cm = R @ Cm
        on = apply("saturation")
        s = torch.where(on, _lognormal(B, SATURATION_STD, gen, dev), one)
        S = vv + (eye - vv) * s[:, None, None]
        S[:, 3, 3] = 1
        Cm = S @ Cm

    cut = torch.zeros(B, 3, device=dev)
    if cutout:
        on = apply("cutout")
        cut[:, :2] = torch.rand(B, 2, device=dev, generator=gen)
        cut[:, 2] = CUTOUT_SIZE * on
    out = {"geom": G[:, :2, :].contiguous(), "color": Cm, "cutout": cut}
    if noise:
        on = apply("noise")
        sigma = torch.randn(B, device=dev, generator=gen).abs() * NOISE_STD * on
        n = torch.randn(B, channels, H, W, device=dev, generator=gen) * sigma[:, None, None, None]
        out["noise"] = n * cutout_keep(cut, H, W, torch.float32) if cutout else n
    return out


def channel_color(color: torch.Tensor, channels: int) -> torch.Tensor:
    """The ``[B, C, C + 1]`` matrix the op applies, from ADA's RGB ``[B, 4, 4]``: the top 3 rows for
    RGB; for grayscale the luma-averaged row ``[mean_i Σ_j c_ij, mean_i c_i3]`` (an RGB transform of a
    gray pixel ``(g, g, g)``, averaged back to gray)."""
    if channels == 3:
        return color[:, :3, :].contiguous()
    if channels == 1:
        return torch.stack([color[:, :3, :3].sum(2).mean(1), color[:, :3, 3].mean(1)], 1)[:, None, :].contiguous()
    raise ValueError(f"ADA colour transforms need 1 or 3 channels, got {channels} (use a preset without 'c')")
